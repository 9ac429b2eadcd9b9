//! Find the pinned OpenAI Codex CLI (`tests/agent-cli-versions.env`, installed by
//! `tests/install-agent-clis.sh` into `$OBRA_TOOLS_DIR/bin/codex`) and prepare a hermetic environment for it:
//! a temporary `CODEX_HOME` whose `config.toml` points a model provider at a fake Responses API, a temporary
//! HOME, and a dummy API key.

use std::path::{Path, PathBuf};

use serde_json::Value;
use tempfile::TempDir;

use crate::claude::{pinned, tools_dir};

/// The pinned Codex version, e.g. `"0.169.0"`.
pub fn pinned_version() -> &'static str {
    pinned("CODEX_VERSION")
}

/// One line telling how to install the pinned CLI.
pub fn install_hint() -> String {
    format!(
        "the Codex CLI {}@{} is not installed: run tests/install-agent-clis.sh (or set OBRA_CODEX_BIN)",
        pinned("CODEX_PACKAGE"),
        pinned_version()
    )
}

/// The `codex` binary of the pinned version: `$OBRA_CODEX_BIN`, else `$OBRA_TOOLS_DIR/bin/codex` when its
/// package is the pinned version; `None` when missing and `OBRA_TEST_SKIP` names `codex`.
///
/// # Panics
/// When it is missing and the user did not opt out: the message says how to install it.
pub fn require_codex() -> Option<PathBuf> {
    let found = locate();
    if found.is_none() {
        crate::requirements::missing("codex", &install_hint());
    }
    found
}

fn locate() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("OBRA_CODEX_BIN").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(bin));
    }
    let prefix = tools_dir();
    let bin = prefix.join("bin").join("codex");
    let package = prefix.join("lib/node_modules").join(pinned("CODEX_PACKAGE")).join("package.json");
    let version = std::fs::read_to_string(package)
        .ok()
        .and_then(|s| serde_json::from_str::<Value>(&s).ok())
        .and_then(|v| v["version"].as_str().map(str::to_string));
    (bin.is_file() && version.as_deref() == Some(pinned_version())).then_some(bin)
}

/// A hermetic environment for the CLI against a fake Responses API at `base_url` (without `/v1`).
pub struct CodexEnv {
    bin: PathBuf,
    _home: TempDir,
    _codex_home: TempDir,
    vars: Vec<(String, String)>,
}

impl CodexEnv {
    /// Make the temporary directories and the provider config.
    pub fn new(bin: &Path, base_url: &str) -> CodexEnv {
        let home = tempfile::Builder::new().prefix("obra-codex-home-").tempdir().unwrap();
        let codex_home = tempfile::Builder::new().prefix("obra-codex-config-").tempdir().unwrap();
        std::fs::write(
            codex_home.path().join("config.toml"),
            format!(
                "model = \"gpt-5\"\nmodel_provider = \"obra-fake\"\n\n[model_providers.obra-fake]\nname = \"obra fake\"\n\
                 base_url = \"{base_url}/v1\"\nwire_api = \"responses\"\nenv_key = \"OPENAI_API_KEY\"\n\
                 request_max_retries = 0\nstream_max_retries = 0\n"
            ),
        )
        .unwrap();
        let vars = vec![
            ("HOME".to_string(), home.path().display().to_string()),
            ("CODEX_HOME".to_string(), codex_home.path().display().to_string()),
            ("OPENAI_API_KEY".to_string(), "obra-testkit-dummy-key".to_string()),
            ("NO_COLOR".to_string(), "1".to_string()),
        ];
        CodexEnv { bin: bin.to_path_buf(), _home: home, _codex_home: codex_home, vars }
    }

    /// The binary.
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// The variables to set for the CLI (HOME, CODEX_HOME, OPENAI_API_KEY, NO_COLOR).
    pub fn vars(&self) -> &[(String, String)] {
        &self.vars
    }
}
