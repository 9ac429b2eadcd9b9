//! Find the pinned Aider CLI (PyPI `aider-chat`) and the environment that points it at a fake OpenAI server.
//!
//! The version is pinned in `tests/agent-cli-versions.env`; `tests/install-agent-clis.sh` installs it into a
//! Python venv `$OBRA_TOOLS_DIR/aider-venv` and links `$OBRA_TOOLS_DIR/bin/aider` (default `$OBRA_TOOLS_DIR`:
//! `<repo>/target/agent-clis`). Lookup order:
//! 1. `$OBRA_AIDER_BIN` (used as is, whatever its version);
//! 2. `$OBRA_TOOLS_DIR/bin/aider`, if `aider --version` reports the pinned version;
//! 3. `aider` on `PATH`, if it reports the pinned version.
//!
//! ```no_run
//! use obra_testkit::{FakeOpenAiChat, require_aider};
//! // None only when OBRA_TEST_SKIP opts out of this CLI (the skip is recorded); otherwise it panics.
//! let Some(cli) = require_aider() else { return };
//! let fake = FakeOpenAiChat::start([]);
//! let home = tempfile::tempdir().unwrap();
//! let vars = cli.vars(&fake.base_url(), home.path());
//! # let _ = vars;
//! ```

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::claude::tools_dir;

const VERSIONS_FILE: &str = include_str!("../agent-cli-versions.env");

/// The model name tests give aider: `openai/<name>` makes it use the OpenAI-compatible API at OPENAI_API_BASE.
pub const MODEL: &str = "openai/fake-coder";

fn pinned(key: &str) -> &'static str {
    VERSIONS_FILE
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("tests/agent-cli-versions.env has no {key}= line"))
}

/// The pinned Aider version (from `tests/agent-cli-versions.env`), e.g. `"0.86.2"`.
pub fn pinned_version() -> &'static str {
    pinned("AIDER_VERSION")
}

/// The PyPI package of the Aider CLI (`aider-chat`).
pub fn package_name() -> &'static str {
    pinned("AIDER_PACKAGE")
}

/// One line telling how to install the pinned CLI, for skip notices and CI failures.
pub fn install_hint() -> String {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf();
    format!(
        "the Aider CLI {}=={} is not installed: run `{}/tests/install-agent-clis.sh` \
         (or set OBRA_AIDER_BIN to an aider binary)",
        package_name(),
        pinned_version(),
        repo.display()
    )
}

/// A located `aider` binary.
#[derive(Debug, Clone)]
pub struct AiderCli {
    path: PathBuf,
}

impl AiderCli {
    /// Find the CLI (see the module docs for the order). The result is computed once per process.
    ///
    /// # Panics
    /// When `OBRA_AIDER_BIN` is set to a path that is not a file.
    pub fn locate() -> Option<AiderCli> {
        static FOUND: OnceLock<Option<PathBuf>> = OnceLock::new();
        FOUND.get_or_init(locate_uncached).clone().map(|path| AiderCli { path })
    }

    /// The binary's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory holding the binary, to put first on `PATH`.
    pub fn bin_dir(&self) -> &Path {
        self.path.parent().expect("a binary path has a parent")
    }

    /// The environment that points aider at an OpenAI-compatible server `base_url` (e.g.
    /// [`crate::FakeOpenAiChat::base_url`]; `/v1` is appended) with a dummy key, a HOME of its own (aider
    /// keeps its analytics id, caches and model metadata under `~/.aider`), no proxies for the loopback, no
    /// colours, and `PATH` with the binary's directory first.
    pub fn vars(&self, base_url: &str, home: &Path) -> Vec<(String, String)> {
        let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".to_string());
        vec![
            ("HOME".into(), home.display().to_string()),
            ("OPENAI_API_BASE".into(), format!("{}/v1", base_url.trim_end_matches('/'))),
            ("OPENAI_API_KEY".into(), "obra-testkit-dummy-api-key".into()),
            ("NO_PROXY".into(), "127.0.0.1,localhost".into()),
            ("no_proxy".into(), "127.0.0.1,localhost".into()),
            ("TERM".into(), "dumb".into()),
            ("NO_COLOR".into(), "1".into()),
            ("LANG".into(), std::env::var("LANG").unwrap_or_else(|_| "C.UTF-8".into())),
            ("PATH".into(), format!("{}:{path}", self.bin_dir().display())),
        ]
    }
}

fn reports_pinned(bin: &Path) -> bool {
    let Ok(out) = Command::new(bin).arg("--version").stdin(Stdio::null()).stderr(Stdio::null()).output() else {
        return false;
    };
    let expected = format!("aider {}", pinned_version());
    String::from_utf8_lossy(&out.stdout).lines().any(|l| l.trim() == expected)
}

fn locate_uncached() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("OBRA_AIDER_BIN").filter(|v| !v.is_empty()) {
        let bin = PathBuf::from(bin);
        assert!(bin.is_file(), "OBRA_AIDER_BIN={} is not a file", bin.display());
        return Some(bin);
    }
    let bin = tools_dir().join("bin").join("aider");
    if bin.is_file() && reports_pinned(&bin) {
        return Some(bin);
    }
    let on_path = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|dir| dir.join("aider")).find(|p| p.is_file()))?;
    reports_pinned(&on_path).then_some(on_path)
}

/// The CLI, or `None` when it is missing and `OBRA_TEST_SKIP` names `aider` (the skip is recorded).
///
/// # Panics
/// When the CLI is missing and the user did not opt out: the message says how to install it.
pub fn require_aider() -> Option<AiderCli> {
    let found = AiderCli::locate();
    if found.is_none() {
        crate::requirements::missing("aider", &install_hint());
    }
    found
}
