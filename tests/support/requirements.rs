//! What a test needs from the machine, and the one way to go without it.
//!
//! A test that needs a real component (an agent CLI, `sshd`, PostgreSQL, a tmpfs mount, kernel namespaces)
//! fails when it is missing, with the command that installs it. `bash tests/run.sh` (the README's test
//! command) installs or starts all of them first. The only way to skip is to say so: `OBRA_TEST_SKIP` lists
//! the components to go without (`claude,codex,aider,pytest,sshd,postgres,tmpfs,namespaces`, or `all`); each skip is appended to
//! `OBRA_TEST_SKIP_LOG`, which `tests/run.sh` prints at the end.

use std::io::Write;

/// The components `OBRA_TEST_SKIP` may name.
pub const COMPONENTS: [&str; 8] = ["claude", "codex", "aider", "pytest", "sshd", "postgres", "tmpfs", "namespaces"];

/// Whether the user opted out of tests needing `component`.
pub fn opted_out(component: &str) -> bool {
    std::env::var("OBRA_TEST_SKIP").is_ok_and(|list| {
        list.split(|c: char| c == ',' || c.is_whitespace()).any(|item| item == component || item == "all")
    })
}

/// `component` is missing: record the skip and return when the user opted out of it; otherwise fail the test
/// with `hint` (which says how to install it).
///
/// # Panics
/// Unless `OBRA_TEST_SKIP` names `component`.
pub fn missing(component: &str, hint: &str) {
    if !opted_out(component) {
        panic!(
            "{hint}\n(`bash tests/run.sh` sets up everything the tests need; to run without {component} instead, \
             set OBRA_TEST_SKIP={component} and the tests that need it are skipped and listed at the end)"
        );
    }
    let test = std::thread::current().name().unwrap_or("?").to_string();
    let binary = std::env::args().next().unwrap_or_default();
    let binary =
        binary.rsplit('/').next().unwrap_or("").rsplit_once('-').map_or(binary.as_str(), |(b, _)| b).to_string();
    eprintln!("skipped ({component}, OBRA_TEST_SKIP): {hint}");
    if let Some(log) = std::env::var_os("OBRA_TEST_SKIP_LOG")
        && let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(log)
    {
        let _ = writeln!(file, "{binary}::{test} (needs {component})");
    }
}
