//! The `aider` agent's configuration and command line (pure, unit-tested natively).

use std::collections::BTreeMap;

use obra_plugin_sdk::PluginError;
use serde::Deserialize;

/// Prompts longer than this many bytes go in a file (`--message-file`) instead of the argument list.
pub const MAX_PROMPT_ARG_BYTES: usize = 100_000;

/// Flags every run gets: answer every question yes, never phone home, plain output, and never write Aider's own
/// files into the workspace or commit — Obra owns the repository's history (checkpoints, commits).
pub const FIXED_FLAGS: [&str; 13] = [
    "--yes-always",
    "--no-check-update",
    "--no-analytics",
    "--no-pretty",
    "--no-auto-commits",
    "--no-dirty-commits",
    "--no-gitignore",
    "--no-show-model-warnings",
    "--no-restore-chat-history",
    "--chat-history-file",
    "/dev/null",
    "--input-history-file",
    "/dev/null",
];

/// The `aider` agent's configuration (`agents.aider`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `--model`, e.g. `openai/gpt-4o-mini`, `anthropic/claude-sonnet-4-5`, `ollama_chat/qwen2.5-coder:32b`.
    #[serde(default)]
    pub model: String,
    /// `--edit-format`: `whole`, `diff`, `diff-fenced`, `udiff`, ...; default: the model's.
    #[serde(default)]
    pub edit_format: Option<String>,
    /// Files added to the chat (editable), relative to the workspace.
    #[serde(default)]
    pub files: Vec<String>,
    /// Files added read-only (`--read`).
    #[serde(default)]
    pub read: Vec<String>,
    /// `--map-tokens` for the repository map; default 0 (off: Obra's prompt carries the context).
    #[serde(default)]
    pub map_tokens: u32,
    /// More arguments, before the files.
    #[serde(default)]
    pub extra_args: Vec<String>,
    /// Environment variables set for Aider (each granted).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

impl Config {
    /// Parse and check the config JSON.
    pub fn parse(json: &str) -> Result<Config, PluginError> {
        let cfg: Config = obra_plugin_sdk::config(json)?;
        if cfg.model.trim().is_empty() {
            return Err(PluginError::fatal(
                "invalid config: at `model`: not set; name Aider's model, e.g. openai/gpt-4o-mini (see \
                 https://aider.chat/docs/llms.html)",
            ));
        }
        if matches!(&cfg.edit_format, Some(f) if f.trim().is_empty() || f.starts_with('-')) {
            return Err(PluginError::fatal("invalid config: at `edit_format`: not a format name"));
        }
        for (key, list) in [("files", &cfg.files), ("read", &cfg.read)] {
            for (i, f) in list.iter().enumerate() {
                if f.is_empty() || f.starts_with('-') || f.starts_with('/') || f.split('/').any(|c| c == "..") {
                    return Err(PluginError::fatal(format!(
                        "invalid config: at `{key}[{i}]`: {f:?} must be a path inside the workspace, relative to it"
                    )));
                }
            }
        }
        Ok(cfg)
    }
}

/// The arguments after `aider`; `message_file` replaces `--message` for long prompts.
pub fn arguments(cfg: &Config, prompt: &str, message_file: Option<&str>) -> Vec<String> {
    let mut args = vec!["--model".to_string(), cfg.model.clone()];
    if let Some(f) = &cfg.edit_format {
        args.extend(["--edit-format".into(), f.clone()]);
    }
    args.extend(["--map-tokens".into(), cfg.map_tokens.to_string()]);
    args.extend(FIXED_FLAGS.iter().map(|s| s.to_string()));
    match message_file {
        Some(file) => args.extend(["--message-file".into(), file.to_string()]),
        None => args.extend(["--message".into(), prompt.to_string()]),
    }
    for r in &cfg.read {
        args.extend(["--read".into(), r.clone()]);
    }
    args.extend(cfg.extra_args.iter().cloned());
    args.extend(cfg.files.iter().cloned());
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_never_lets_aider_commit_or_write_its_own_files() {
        let cfg = Config::parse(
            r#"{"model": "openai/gpt-4o-mini", "edit_format": "whole", "files": ["src/a.rs"], "read": ["README.md"]}"#,
        )
        .unwrap();
        let args = arguments(&cfg, "fix $(it)", None);
        let joined = args.join(" ");
        for flag in ["--no-auto-commits", "--no-dirty-commits", "--no-gitignore", "--chat-history-file /dev/null"] {
            assert!(joined.contains(flag), "{flag} in {joined}");
        }
        assert_eq!(&args[..6], ["--model", "openai/gpt-4o-mini", "--edit-format", "whole", "--map-tokens", "0"]);
        let m = args.iter().position(|a| a == "--message").unwrap();
        assert_eq!(args[m + 1], "fix $(it)", "the prompt is one argument");
        assert_eq!(&args[args.len() - 3..], ["--read", "README.md", "src/a.rs"]);
        let long = arguments(&cfg, "x", Some("/ws/.obra/prompts/p.md"));
        assert!(
            long.join(" ").contains("--message-file /ws/.obra/prompts/p.md") && !long.contains(&"--message".into())
        );
    }

    #[test]
    fn bad_configs_name_the_key() {
        for (json, key) in [
            (r#"{}"#, "model"),
            (r#"{"model": "m", "edit_format": "--x"}"#, "edit_format"),
            (r#"{"model": "m", "files": ["../etc/passwd"]}"#, "files[0]"),
            (r#"{"model": "m", "read": ["/abs"]}"#, "read[0]"),
            (r#"{"model": "m", "auto_commits": true}"#, "auto_commits"),
        ] {
            let e = Config::parse(json).unwrap_err();
            assert!(e.message().contains(key), "{json}: {}", e.message());
        }
    }
}
