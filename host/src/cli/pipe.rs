//! A closed stdout (`obra logs | head -1`) ends the command quietly with status 0, as ripgrep does, instead
//! of a panic ("failed printing to stdout: Broken pipe") or an `error: Broken pipe` line.
//!
//! Obra cannot simply restore the default SIGPIPE action (which kills the process, status 141): it writes to
//! its agents' pipes and to sockets, where a reader that went away is an error to handle, not a reason to die.
//! So the Rust default (SIGPIPE ignored, writes fail with `EPIPE`) stays, and the two ways such a failure
//! surfaces on stdout are caught here: a panic of `println!` (or of any writer that panics on the error) and an
//! `io::Error` returned up to `main`. Both count only when stdout itself is a pipe whose reader has gone, so a
//! broken pipe to an agent is still reported.

use std::io::ErrorKind;

/// Whether standard output is a pipe (or socket) whose reading end has been closed.
pub fn stdout_closed() -> bool {
    #[cfg(unix)]
    {
        let mut fd = libc::pollfd { fd: libc::STDOUT_FILENO, events: libc::POLLOUT, revents: 0 };
        // SAFETY: one valid pollfd, a zero timeout; poll only reads and writes that struct.
        let ready = unsafe { libc::poll(&mut fd, 1, 0) };
        ready > 0 && fd.revents & libc::POLLERR != 0
    }
    #[cfg(not(unix))]
    {
        false
    }
}

/// Whether `error` (or one of its causes) is a broken pipe and stdout is the pipe that broke.
pub fn is_closed_stdout(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| cause.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == ErrorKind::BrokenPipe))
        && stdout_closed()
}

/// End the process quietly: nothing more can be shown to the reader that left.
pub fn exit_quietly() -> ! {
    std::process::exit(0)
}

/// Install a panic hook that turns a panic caused by writing to a closed stdout into a quiet exit with status 0,
/// and leaves every other panic to the hook that was there before.
pub fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if is_broken_pipe_message(message) && stdout_closed() {
            exit_quietly();
        }
        previous(info);
    }));
}

/// Whether a panic message is about a write that failed with `EPIPE`: `println!`'s "failed printing to
/// stdout: Broken pipe (os error 32)", or an `expect` on such a write (the error's `Debug` form, `kind:
/// BrokenPipe`).
fn is_broken_pipe_message(message: &str) -> bool {
    #[cfg(unix)]
    let epipe = std::io::Error::from_raw_os_error(libc::EPIPE).to_string();
    #[cfg(not(unix))]
    let epipe = std::io::Error::from(ErrorKind::BrokenPipe).to_string();
    message.contains(&epipe) || message.contains(&format!("kind: {:?}", ErrorKind::BrokenPipe))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_println_panic_message_is_recognised_and_others_are_not() {
        assert!(is_broken_pipe_message("failed printing to stdout: Broken pipe (os error 32)"));
        assert!(is_broken_pipe_message(
            "failed to write completion file: Os { code: 32, kind: BrokenPipe, message: \"Broken pipe\" }"
        ));
        assert!(!is_broken_pipe_message("index out of bounds: the len is 1 but the index is 1"));
    }

    #[test]
    fn a_broken_pipe_counts_only_when_stdout_is_closed() {
        // Under the test harness stdout is open (a terminal, a file or a live pipe), so even a broken-pipe
        // error is reported as an error: it came from somewhere else, e.g. an agent's stdin.
        let error = anyhow::Error::from(std::io::Error::from(ErrorKind::BrokenPipe)).context("writing the prompt");
        assert!(!stdout_closed());
        assert!(!is_closed_stdout(&error));
    }
}
