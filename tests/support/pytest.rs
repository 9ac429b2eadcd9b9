//! Find the pinned pytest, the test command of the end-to-end tests in which the real agent runs a project's
//! tests through its own shell tool.
//!
//! The version is pinned in `tests/agent-cli-versions.env`; `tests/install-agent-clis.sh` installs it into a
//! Python venv `$OBRA_TOOLS_DIR/pytest-venv` and links `$OBRA_TOOLS_DIR/bin/pytest`. Lookup order:
//! 1. `$OBRA_PYTEST_BIN` (used as is, whatever its version);
//! 2. `$OBRA_TOOLS_DIR/bin/pytest`, if `pytest --version` reports the pinned version;
//! 3. `pytest` on `PATH`, if it reports the pinned version.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::claude::tools_dir;

const VERSIONS_FILE: &str = include_str!("../agent-cli-versions.env");

/// The pinned pytest version (from `tests/agent-cli-versions.env`), e.g. `"8.3.5"`.
pub fn pinned_version() -> &'static str {
    VERSIONS_FILE
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("PYTEST_VERSION="))
        .expect("tests/agent-cli-versions.env has no PYTEST_VERSION= line")
}

/// One line telling how to install the pinned pytest, for the failure (or recorded skip) when it is missing.
pub fn install_hint() -> String {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf();
    format!(
        "pytest {} is not installed: run `{}/tests/install-agent-clis.sh` (or set OBRA_PYTEST_BIN to a pytest \
         binary)",
        pinned_version(),
        repo.display()
    )
}

fn reports_pinned(bin: &Path) -> bool {
    let Ok(out) = Command::new(bin).arg("--version").stdin(Stdio::null()).output() else {
        return false;
    };
    // pytest 8 prints `pytest 8.3.5` on stdout (older versions on stderr).
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    text.lines().any(|l| l.trim() == format!("pytest {}", pinned_version()))
}

fn locate_uncached() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("OBRA_PYTEST_BIN").filter(|v| !v.is_empty()) {
        let bin = PathBuf::from(bin);
        assert!(bin.is_file(), "OBRA_PYTEST_BIN={} is not a file", bin.display());
        return Some(bin);
    }
    let bin = tools_dir().join("bin").join("pytest");
    if bin.is_file() && reports_pinned(&bin) {
        return Some(bin);
    }
    let on_path = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|dir| dir.join("pytest")).find(|p| p.is_file()))?;
    reports_pinned(&on_path).then_some(on_path)
}

/// The pytest binary, or `None` when it is missing and `OBRA_TEST_SKIP` names `pytest` (the skip is recorded).
///
/// # Panics
/// When pytest is missing and the user did not opt out: the message says how to install it.
pub fn require_pytest() -> Option<PathBuf> {
    static FOUND: OnceLock<Option<PathBuf>> = OnceLock::new();
    let found = FOUND.get_or_init(locate_uncached).clone();
    if found.is_none() {
        crate::requirements::missing("pytest", &install_hint());
    }
    found
}
