//! Tracing setup (human-readable log lines on stderr, filtered by `-v` or `RUST_LOG`), the production log
//! ([`production`]) and privacy redaction ([`redact`]).

pub mod production;
pub mod redact;

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Install the global subscriber. `verbosity` 0 shows warnings, 1 info, 2 or more debug; `RUST_LOG` wins.
/// Below debug, the file watcher's library (`notify`) says errors only: it warns once per event it cannot follow,
/// and a workspace whose directories are renamed in a loop (an agent, or anything it started) would otherwise
/// flood stderr with millions of lines.
pub fn init(verbosity: u8) {
    let default = match verbosity {
        0 => "warn,notify=error",
        1 => "info,notify=error",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .with_target(false)
        .try_init();
}
