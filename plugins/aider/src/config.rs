//! The plugin's configuration and the `aider` command line it leads to (pure, unit-tested natively).

use std::collections::BTreeMap;

use obra_plugin_sdk::PluginError;
use serde::Deserialize;

/// Edit formats aider 0.86 knows (`aider --help`, `--edit-format`): anything else is refused before starting.
const EDIT_FORMATS: [&str; 8] = ["whole", "diff", "diff-fenced", "udiff", "udiff-simple", "patch", "architect", "ask"];

/// The `aider` agent's configuration (the agent's section of Obra's config). Every key is optional.
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `--model <model>` (a LiteLLM name such as `openai/gpt-4o` or `ollama_chat/qwen2.5-coder`); default:
    /// aider's own choice from the API keys it finds.
    #[serde(default)]
    pub model: Option<String>,
    /// `--edit-format <format>` (`whole`, `diff`, `udiff`, ...); default: the model's preferred format.
    #[serde(default)]
    pub edit_format: Option<String>,
    /// Files added to the chat for editing (`--file`), relative to the workspace; default: none (aider then
    /// creates or asks for the files the model names).
    #[serde(default)]
    pub files: Vec<String>,
    /// Read-only context files (`--read`), relative to the workspace; default: none.
    #[serde(default)]
    pub read: Vec<String>,
    /// `--map-tokens <n>`: the repository map's token budget; 0 (the default) turns the map off, so aider
    /// writes no `.aider.tags.cache.v4/` into the workspace.
    #[serde(default)]
    pub map_tokens: u32,
    /// Stream the model's reply (`--stream`); default false (`--no-stream`: one request, whole reply).
    #[serde(default)]
    pub stream: bool,
    /// How many of aider's own retries of a retryable API error (rate limit, 5xx, connection) to let happen
    /// before stopping it and reporting the error, so that Obra's retry policy decides; default 0.
    #[serde(default)]
    pub api_retries: u32,
    /// More arguments, appended after the ones above (e.g. `["--auto-test", "--test-cmd", "make test"]`);
    /// default: none.
    #[serde(default)]
    pub extra_args: Vec<String>,
    /// Environment variables set for the CLI (each name must be granted, see plugin.toml); default: none.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

impl Config {
    /// Parse and check the config JSON.
    pub fn parse(json: &str) -> Result<Config, PluginError> {
        let cfg: Config = obra_plugin_sdk::config(json)?;
        if matches!(&cfg.model, Some(m) if m.trim().is_empty()) {
            return Err(PluginError::fatal("invalid config: at `model`: empty"));
        }
        if let Some(format) = &cfg.edit_format
            && !EDIT_FORMATS.contains(&format.as_str())
        {
            return Err(PluginError::fatal(format!(
                "invalid config: at `edit_format`: unknown format `{format}`, expected one of {}",
                EDIT_FORMATS.join(", ")
            )));
        }
        for (key, paths) in [("files", &cfg.files), ("read", &cfg.read)] {
            if let Some(bad) = paths.iter().find(|p| p.trim().is_empty() || p.starts_with('-')) {
                return Err(PluginError::fatal(format!(
                    "invalid config: at `{key}`: `{bad}` is not a file path (empty, or starts with `-`)"
                )));
            }
        }
        Ok(cfg)
    }
}

/// The command line for one run: the arguments after `aider`, the text for standard input (`None`:
/// /dev/null), and the environment the plugin sets.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    /// Arguments after the program name.
    pub args: Vec<String>,
    /// Standard input: the prompt, which aider reads through `--message-file=/dev/stdin` (never on the command
    /// line, where every user of the machine could read it, and never in a file).
    pub stdin: String,
    /// Environment variables: the plugin's defaults, overridden by the config's `env`.
    pub env: Vec<(String, String)>,
}

/// Flags every run gets: answer yes to every question, touch nothing but the files it edits (no git at all:
/// Obra's sandbox keeps `.git/` read-only and Obra tracks and commits the changes itself; no .gitignore entry,
/// no chat or input history files, no update check, analytics or URL scraping), no shell commands suggested
/// by the model, plain output one message per line.
pub const FIXED_FLAGS: [&str; 18] = [
    "--yes-always",
    "--no-check-update",
    "--no-analytics",
    "--no-pretty",
    "--no-fancy-input",
    "--no-git",
    "--no-auto-commits",
    "--no-dirty-commits",
    "--no-gitignore",
    "--no-show-release-notes",
    "--no-show-model-warnings",
    "--no-restore-chat-history",
    "--no-detect-urls",
    "--no-notifications",
    "--no-suggest-shell-commands",
    "--chat-history-file=/dev/null",
    "--input-history-file=/dev/null",
    "--llm-history-file=/dev/null",
];

/// Build the invocation: `--message-file=/dev/stdin <FIXED_FLAGS> --map-tokens N --[no-]stream [--model M]
/// [--edit-format F] [--file F]... [--read R]... <extra_args>`.
pub fn invocation(cfg: &Config, prompt: &str) -> Invocation {
    let mut args = vec!["--message-file=/dev/stdin".to_string()];
    let stdin = prompt.to_string();
    args.extend(FIXED_FLAGS.iter().map(|s| s.to_string()));
    args.push("--map-tokens".into());
    args.push(cfg.map_tokens.to_string());
    args.push(if cfg.stream { "--stream" } else { "--no-stream" }.into());
    let mut opt = |flag: &str, value: &str| {
        args.push(flag.to_string());
        args.push(value.to_string());
    };
    if let Some(model) = &cfg.model {
        opt("--model", model);
    }
    if let Some(format) = &cfg.edit_format {
        opt("--edit-format", format);
    }
    for file in &cfg.files {
        opt("--file", file);
    }
    for file in &cfg.read {
        opt("--read", file);
    }
    args.extend(cfg.extra_args.iter().cloned());

    let defaults = [("COLUMNS", "4096"), ("PYTHONUNBUFFERED", "1"), ("NO_COLOR", "1"), ("TERM", "dumb")];
    let mut env: Vec<(String, String)> = defaults
        .iter()
        .filter(|(k, _)| !cfg.env.contains_key(*k))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    env.extend(cfg.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    Invocation { args, stdin, env }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed() -> Vec<String> {
        FIXED_FLAGS.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn empty_config_gives_the_minimal_command_line() {
        let cfg = Config::parse("").unwrap();
        let inv = invocation(&cfg, "fix it");
        let mut expected = vec!["--message-file=/dev/stdin".to_string()];
        expected.extend(fixed());
        expected.extend(["--map-tokens", "0", "--no-stream"].map(String::from));
        assert_eq!(inv.args, expected);
        assert_eq!(inv.stdin, "fix it");
        assert!(inv.env.contains(&("COLUMNS".into(), "4096".into())));
        assert!(inv.env.contains(&("PYTHONUNBUFFERED".into(), "1".into())));
    }

    #[test]
    fn every_option_maps_to_its_flag_and_env_overrides_the_defaults() {
        let cfg = Config::parse(
            r#"{"model": "openai/gpt-4o", "edit_format": "diff", "files": ["src/a.rs", "b.rs"],
                "read": ["CONVENTIONS.md"], "map_tokens": 1024, "stream": true, "api_retries": 2,
                "extra_args": ["--auto-test"], "env": {"COLUMNS": "200", "OPENAI_API_BASE": "http://x/v1"}}"#,
        )
        .unwrap();
        let inv = invocation(&cfg, "p");
        let tail: Vec<&str> = inv.args[1 + FIXED_FLAGS.len()..].iter().map(String::as_str).collect();
        assert_eq!(
            tail,
            [
                "--map-tokens",
                "1024",
                "--stream",
                "--model",
                "openai/gpt-4o",
                "--edit-format",
                "diff",
                "--file",
                "src/a.rs",
                "--file",
                "b.rs",
                "--read",
                "CONVENTIONS.md",
                "--auto-test"
            ]
        );
        assert_eq!(cfg.api_retries, 2);
        let columns: Vec<_> = inv.env.iter().filter(|(k, _)| k == "COLUMNS").collect();
        assert_eq!(columns, [&("COLUMNS".to_string(), "200".to_string())]);
        assert!(inv.env.contains(&("OPENAI_API_BASE".into(), "http://x/v1".into())));
    }

    #[test]
    fn every_prompt_goes_to_stdin_never_to_the_command_line() {
        for prompt in ["short".to_string(), "x".repeat(200_000)] {
            let inv = invocation(&Config::default(), &prompt);
            assert_eq!(inv.args[0], "--message-file=/dev/stdin");
            assert_eq!(inv.args[1], FIXED_FLAGS[0]);
            assert!(!inv.args.contains(&prompt));
            assert_eq!(inv.stdin, prompt);
        }
    }

    #[test]
    fn bad_configs_are_fatal_and_name_the_key() {
        for (json, key) in [
            (r#"{"model": " "}"#, "model"),
            (r#"{"edit_format": "yolo"}"#, "edit_format"),
            (r#"{"files": ["--exec"]}"#, "files"),
            (r#"{"read": [""]}"#, "read"),
            (r#"{"map_tokens": -1}"#, "map_tokens"),
            (r#"{"stream": "yes"}"#, "stream"),
            (r#"{"modle": "x"}"#, "modle"),
            (r#"{"extra_args": "--foo"}"#, "extra_args"),
        ] {
            let err = Config::parse(json).unwrap_err();
            assert_eq!(err.kind(), "fatal");
            assert!(err.message().contains(key), "{json}: {}", err.message());
        }
    }
}
