//! The plugin's configuration and the `claude` command line it leads to (pure, unit-tested natively).

use std::collections::BTreeMap;

use obra_plugin_sdk::PluginError;
use serde::Deserialize;

/// Prompts longer than this many bytes go to the CLI's standard input instead of its argument list (Linux
/// refuses a single argument of 128 KiB or more).
pub const MAX_PROMPT_ARG_BYTES: usize = 100_000;

/// The `claude-code` agent's configuration (the agent's section of Obra's config). Every key is optional.
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `--model <model>`; default: the CLI's own default model.
    #[serde(default)]
    pub model: Option<String>,
    /// `--max-turns <n>`; default: no limit but the CLI's.
    #[serde(default)]
    pub max_turns: Option<u32>,
    /// `--permission-mode <mode>`, e.g. `acceptEdits` or `bypassPermissions`; default: the CLI's (which
    /// refuses edits in headless mode, so set this for real work).
    #[serde(default)]
    pub permission_mode: Option<String>,
    /// `--append-system-prompt <text>`; default: none.
    #[serde(default)]
    pub append_system_prompt: Option<String>,
    /// More arguments, appended after the ones above (e.g. `["--allowedTools", "Read,Edit"]`); default: none.
    #[serde(default)]
    pub extra_args: Vec<String>,
    /// Environment variables set for the CLI (each name must be granted, see plugin.toml); default: none.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Keep at most this many bytes of the CLI's stderr (for crash reports); default: the grant's cap.
    #[serde(default)]
    pub max_stderr_bytes: Option<u64>,
}

/// Permission modes the CLI knows (`claude --help`): anything else is refused before starting it.
const PERMISSION_MODES: [&str; 5] = ["acceptEdits", "bypassPermissions", "default", "dontAsk", "plan"];

impl Config {
    /// Parse and check the config JSON.
    pub fn parse(json: &str) -> Result<Config, PluginError> {
        let cfg: Config = obra_plugin_sdk::config(json)?;
        if let Some(mode) = &cfg.permission_mode
            && !PERMISSION_MODES.contains(&mode.as_str())
        {
            return Err(PluginError::fatal(format!(
                "invalid config: at `permission_mode`: unknown mode `{mode}`, expected one of {}",
                PERMISSION_MODES.join(", ")
            )));
        }
        if cfg.max_turns == Some(0) {
            return Err(PluginError::fatal("invalid config: at `max_turns`: must be at least 1"));
        }
        if matches!(&cfg.model, Some(m) if m.trim().is_empty()) {
            return Err(PluginError::fatal("invalid config: at `model`: empty"));
        }
        Ok(cfg)
    }
}

/// The command line for one run: the arguments after `claude`, and the text for standard input (`None`:
/// /dev/null).
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    /// Arguments after the program name.
    pub args: Vec<String>,
    /// Standard input: the prompt when it is too long for an argument.
    pub stdin: Option<String>,
}

/// Build the arguments: `-p <prompt> --output-format stream-json --verbose [--model M] [--max-turns N]
/// [--permission-mode X] [--append-system-prompt S] [--resume ID] <extra_args>`.
pub fn invocation(cfg: &Config, prompt: &str, resume_session: Option<&str>) -> Invocation {
    let mut args = vec!["-p".to_string()];
    let stdin = if prompt.len() > MAX_PROMPT_ARG_BYTES {
        Some(prompt.to_string())
    } else {
        args.push(prompt.to_string());
        None
    };
    args.extend(["--output-format", "stream-json", "--verbose"].iter().map(|s| s.to_string()));
    let mut opt = |flag: &str, value: Option<String>| {
        if let Some(v) = value {
            args.push(flag.to_string());
            args.push(v);
        }
    };
    opt("--model", cfg.model.clone());
    opt("--max-turns", cfg.max_turns.map(|n| n.to_string()));
    opt("--permission-mode", cfg.permission_mode.clone());
    opt("--append-system-prompt", cfg.append_system_prompt.clone());
    opt("--resume", resume_session.map(str::to_string));
    args.extend(cfg.extra_args.iter().cloned());
    Invocation { args, stdin }
}

/// What `claude auth status` says.
#[derive(Debug, Clone, PartialEq)]
pub enum Auth {
    /// Logged in, e.g. `api_key from ANTHROPIC_API_KEY`.
    LoggedIn(String),
    /// Not logged in and no key.
    LoggedOut,
}

/// Read the JSON `claude auth status` prints (`loggedIn`, `authMethod`, `apiKeySource`).
pub fn auth_status(stdout: &str) -> Result<Auth, String> {
    let v: serde_json::Value =
        serde_json::from_str(stdout.trim()).map_err(|e| format!("`claude auth status` printed no JSON ({e})"))?;
    match v.get("loggedIn").and_then(serde_json::Value::as_bool) {
        Some(true) => {
            let method = v.get("authMethod").and_then(serde_json::Value::as_str).unwrap_or("unknown method");
            Ok(Auth::LoggedIn(match v.get("apiKeySource").and_then(serde_json::Value::as_str) {
                Some(source) => format!("{method} from {source}"),
                None => method.to_string(),
            }))
        }
        Some(false) => Ok(Auth::LoggedOut),
        None => Err("`claude auth status` has no `loggedIn` field".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_gives_the_minimal_command_line() {
        let cfg = Config::parse("").unwrap();
        let inv = invocation(&cfg, "fix it", None);
        assert_eq!(inv.args, ["-p", "fix it", "--output-format", "stream-json", "--verbose"]);
        assert_eq!(inv.stdin, None);
    }

    #[test]
    fn every_option_maps_to_its_flag() {
        let cfg = Config::parse(
            r#"{"model": "sonnet", "max_turns": 7, "permission_mode": "acceptEdits",
                "append_system_prompt": "Be brief.", "extra_args": ["--allowedTools", "Read"],
                "env": {"IS_SANDBOX": "1"}}"#,
        )
        .unwrap();
        let inv = invocation(&cfg, "p", Some("sess-1"));
        assert_eq!(
            inv.args,
            [
                "-p",
                "p",
                "--output-format",
                "stream-json",
                "--verbose",
                "--model",
                "sonnet",
                "--max-turns",
                "7",
                "--permission-mode",
                "acceptEdits",
                "--append-system-prompt",
                "Be brief.",
                "--resume",
                "sess-1",
                "--allowedTools",
                "Read"
            ]
        );
        assert_eq!(cfg.env["IS_SANDBOX"], "1");
    }

    #[test]
    fn huge_prompts_go_to_stdin() {
        let prompt = "x".repeat(MAX_PROMPT_ARG_BYTES + 1);
        let inv = invocation(&Config::default(), &prompt, None);
        assert_eq!(inv.args[0], "-p");
        assert_eq!(inv.args[1], "--output-format");
        assert_eq!(inv.stdin.as_deref(), Some(prompt.as_str()));
    }

    #[test]
    fn bad_configs_are_fatal_and_name_the_key() {
        for (json, key) in [
            (r#"{"max_turns": "5"}"#, "max_turns"),
            (r#"{"max_turns": 0}"#, "max_turns"),
            (r#"{"permission_mode": "yolo"}"#, "permission_mode"),
            (r#"{"model": " "}"#, "model"),
            (r#"{"modle": "x"}"#, "modle"),
            (r#"{"extra_args": "--foo"}"#, "extra_args"),
        ] {
            let err = Config::parse(json).unwrap_err();
            assert_eq!(err.kind(), "fatal");
            assert!(err.message().contains(key), "{json}: {}", err.message());
        }
    }

    #[test]
    fn auth_status_is_read_from_the_cli_json() {
        let key = r#"{"loggedIn": true, "authMethod": "api_key", "apiProvider": "firstParty",
                      "apiKeySource": "ANTHROPIC_API_KEY"}"#;
        assert_eq!(auth_status(key), Ok(Auth::LoggedIn("api_key from ANTHROPIC_API_KEY".into())));
        let none = r#"{"loggedIn": false, "authMethod": "none", "apiProvider": "firstParty"}"#;
        assert_eq!(auth_status(none), Ok(Auth::LoggedOut));
        assert!(auth_status("error: unknown command 'auth'").is_err());
        assert!(auth_status("{}").is_err());
    }
}
