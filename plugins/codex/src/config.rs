//! The `codex` agent's configuration and the `codex exec` command line it leads to (pure, unit-tested natively).

use std::collections::BTreeMap;

use obra_plugin_sdk::PluginError;
use serde::Deserialize;

/// Sandbox modes `codex exec -s` knows.
const SANDBOXES: [&str; 3] = ["read-only", "workspace-write", "danger-full-access"];

/// Approval policies Codex knows.
const APPROVALS: [&str; 4] = ["untrusted", "on-failure", "on-request", "never"];

/// The `codex` agent's configuration (`agents.codex`); every key optional.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `-m <model>`; default: Codex's configured model.
    #[serde(default)]
    pub model: Option<String>,
    /// `-s <mode>`: `read-only`, `workspace-write` or `danger-full-access`; default: Codex's.
    #[serde(default)]
    pub sandbox: Option<String>,
    /// `--dangerously-bypass-approvals-and-sandbox`, for environments that are sandboxed already (containers,
    /// VMs) where Codex's own sandbox cannot start; default false.
    #[serde(default)]
    pub bypass_approvals_and_sandbox: bool,
    /// `-c approval_policy=...`; default `never` (a headless run has nobody to ask).
    #[serde(default = "default_approval")]
    pub approval_policy: String,
    /// `-p <profile>` of Codex's config; default none.
    #[serde(default)]
    pub profile: Option<String>,
    /// More `-c key=value` overrides (TOML values), e.g. `model_provider="local"`.
    #[serde(default)]
    pub config_overrides: Vec<String>,
    /// More arguments before the prompt.
    #[serde(default)]
    pub extra_args: Vec<String>,
    /// Environment variables set for the CLI (each granted).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

fn default_approval() -> String {
    "never".into()
}

fn fatal(key: &str, message: impl std::fmt::Display) -> PluginError {
    PluginError::fatal(format!("invalid config: at `{key}`: {message}"))
}

impl Config {
    /// Parse and check the config JSON.
    pub fn parse(json: &str) -> Result<Config, PluginError> {
        let cfg: Config = obra_plugin_sdk::config(json)?;
        if let Some(s) = &cfg.sandbox
            && !SANDBOXES.contains(&s.as_str())
        {
            return Err(fatal("sandbox", format!("unknown mode `{s}`, expected one of {}", SANDBOXES.join(", "))));
        }
        if cfg.sandbox.is_some() && cfg.bypass_approvals_and_sandbox {
            return Err(fatal("bypass_approvals_and_sandbox", "cannot be combined with `sandbox`; choose one"));
        }
        if !APPROVALS.contains(&cfg.approval_policy.as_str()) {
            return Err(fatal(
                "approval_policy",
                format!("unknown policy `{}`, expected one of {}", cfg.approval_policy, APPROVALS.join(", ")),
            ));
        }
        for (i, o) in cfg.config_overrides.iter().enumerate() {
            if !o.contains('=') || o.starts_with('=') {
                return Err(fatal(&format!("config_overrides[{i}]"), format!("{o:?} is not key=value")));
            }
        }
        if matches!(&cfg.model, Some(m) if m.trim().is_empty()) {
            return Err(fatal("model", "empty"));
        }
        Ok(cfg)
    }
}

/// The command line for one run: the arguments after `codex`, and the text for standard input.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    /// Arguments after the program name.
    pub args: Vec<String>,
    /// Standard input: the prompt (`-` as the last argument), never on the command line, where every user of
    /// the machine could read it.
    pub stdin: String,
}

/// `exec --json --skip-git-repo-check [-m M] [-s S | --dangerously-bypass-approvals-and-sandbox] [-p P]
/// -c approval_policy="..." [-c k=v ...] <extra_args> [resume <SESSION>] -`, with the prompt on standard input.
pub fn invocation(cfg: &Config, prompt: &str, resume_session: Option<&str>) -> Invocation {
    let mut args: Vec<String> = ["exec", "--json", "--skip-git-repo-check"].iter().map(|s| s.to_string()).collect();
    let mut opt = |flag: &str, value: &Option<String>| {
        if let Some(v) = value {
            args.push(flag.to_string());
            args.push(v.clone());
        }
    };
    opt("-m", &cfg.model);
    opt("-s", &cfg.sandbox);
    opt("-p", &cfg.profile);
    if cfg.bypass_approvals_and_sandbox {
        args.push("--dangerously-bypass-approvals-and-sandbox".into());
    }
    args.push("-c".into());
    args.push(format!("approval_policy=\"{}\"", cfg.approval_policy));
    for o in &cfg.config_overrides {
        args.push("-c".into());
        args.push(o.clone());
    }
    args.extend(cfg.extra_args.iter().cloned());
    if let Some(session) = resume_session {
        args.push("resume".into());
        args.push(session.to_string());
    }
    args.push("-".into());
    Invocation { args, stdin: prompt.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_minimal_command_line_asks_for_json_and_never_for_approval() {
        let inv = invocation(&Config::parse("").unwrap(), "fix it", None);
        assert_eq!(inv.args, ["exec", "--json", "--skip-git-repo-check", "-c", "approval_policy=\"never\"", "-"]);
        assert_eq!(inv.stdin, "fix it");
    }

    #[test]
    fn every_option_maps_to_its_flag_and_resume_comes_before_the_prompt() {
        let cfg = Config::parse(
            r#"{"model": "gpt-5", "sandbox": "workspace-write", "profile": "ci", "approval_policy": "on-failure",
                "config_overrides": ["model_provider=\"local\""], "extra_args": ["--color", "never"]}"#,
        )
        .unwrap();
        let inv = invocation(&cfg, "p", Some("0192-thread"));
        assert_eq!(
            inv.args,
            [
                "exec",
                "--json",
                "--skip-git-repo-check",
                "-m",
                "gpt-5",
                "-s",
                "workspace-write",
                "-p",
                "ci",
                "-c",
                "approval_policy=\"on-failure\"",
                "-c",
                "model_provider=\"local\"",
                "--color",
                "never",
                "resume",
                "0192-thread",
                "-"
            ]
        );
        let bypass = Config::parse(r#"{"bypass_approvals_and_sandbox": true}"#).unwrap();
        assert!(invocation(&bypass, "p", None).args.contains(&"--dangerously-bypass-approvals-and-sandbox".into()));
    }

    #[test]
    fn every_prompt_goes_to_stdin_never_to_the_command_line() {
        for prompt in ["short".to_string(), "x".repeat(200_000)] {
            let inv = invocation(&Config::parse("").unwrap(), &prompt, Some("s"));
            assert_eq!(inv.args.last().map(String::as_str), Some("-"));
            assert!(!inv.args.contains(&prompt));
            assert_eq!(inv.stdin, prompt);
        }
    }

    #[test]
    fn bad_configs_name_the_key() {
        for (json, key) in [
            (r#"{"sandbox": "yolo"}"#, "sandbox"),
            (r#"{"sandbox": "read-only", "bypass_approvals_and_sandbox": true}"#, "bypass_approvals_and_sandbox"),
            (r#"{"approval_policy": "sometimes"}"#, "approval_policy"),
            (r#"{"config_overrides": ["novalue"]}"#, "config_overrides[0]"),
            (r#"{"model": " "}"#, "model"),
            (r#"{"modle": "x"}"#, "modle"),
        ] {
            let e = Config::parse(json).unwrap_err();
            assert!(e.message().contains(key), "{json}: {}", e.message());
        }
    }
}
