//! Find the pinned Aider (`tests/agent-cli-versions.env`, installed by `tests/install-agent-clis.sh` into a
//! virtualenv under `$OBRA_TOOLS_DIR`, linked as `$OBRA_TOOLS_DIR/bin/aider`) and prepare a hermetic environment
//! that points it at a fake OpenAI chat-completions server.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use tempfile::TempDir;

use crate::claude::{pinned, tools_dir};

/// The pinned Aider version, e.g. `"0.86.2"`.
pub fn pinned_version() -> &'static str {
    pinned("AIDER_VERSION")
}

/// One line telling how to install it.
pub fn install_hint() -> String {
    format!(
        "Aider {}=={} is not installed: run tests/install-agent-clis.sh (or set OBRA_AIDER_BIN)",
        pinned("AIDER_PACKAGE"),
        pinned_version()
    )
}

/// The `aider` binary of the pinned version. `None` outside CI when missing; panics with CI=true.
pub fn require_aider() -> Option<PathBuf> {
    static FOUND: OnceLock<Option<PathBuf>> = OnceLock::new();
    let found = FOUND.get_or_init(locate).clone();
    if found.is_none() {
        let ci = std::env::var("CI").unwrap_or_default();
        if ci.eq_ignore_ascii_case("true") || ci == "1" {
            panic!("{} (CI is set, so a missing CLI fails the test instead of skipping it)", install_hint());
        }
    }
    found
}

fn locate() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("OBRA_AIDER_BIN").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(bin));
    }
    let bin = tools_dir().join("bin").join("aider");
    if !bin.exists() {
        return None;
    }
    let out = Command::new(&bin)
        .arg("--version")
        .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).contains(pinned_version()).then_some(bin)
}

/// A hermetic environment for Aider against a fake chat-completions server at `base_url` (without `/v1`).
pub struct AiderEnv {
    bin: PathBuf,
    _home: TempDir,
    vars: Vec<(String, String)>,
}

impl AiderEnv {
    /// A temporary HOME, the fake's URL as `OPENAI_API_BASE`, and a dummy key.
    pub fn new(bin: &Path, base_url: &str) -> AiderEnv {
        let home = tempfile::Builder::new().prefix("obra-aider-home-").tempdir().unwrap();
        let vars = vec![
            ("HOME".to_string(), home.path().display().to_string()),
            ("OPENAI_API_BASE".to_string(), format!("{base_url}/v1")),
            ("OPENAI_API_KEY".to_string(), "obra-testkit-dummy-key".to_string()),
            ("NO_COLOR".to_string(), "1".to_string()),
        ];
        AiderEnv { bin: bin.to_path_buf(), _home: home, vars }
    }

    /// The binary.
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// The variables to set for Aider.
    pub fn vars(&self) -> &[(String, String)] {
        &self.vars
    }
}
