//! The `command` agent's configuration and the command line it leads to (pure, unit-tested natively).

use std::collections::BTreeMap;

use obra_plugin_sdk::PluginError;
use serde::Deserialize;

/// How the prompt reaches the program.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PromptVia {
    /// As (part of) an argument: `{prompt}` in `args`. Any user of the machine can read it there (`ps`,
    /// `/proc/<pid>/cmdline`) while the program runs.
    Argument,
    /// On standard input (the default when no argument holds `{prompt}` or `{prompt_file}`).
    Stdin,
    /// In a file the program opens by the path `{prompt_file}` in `args`: `/dev/stdin`, which carries the
    /// prompt (nothing is written to disk; a program that must seek in the file cannot use it).
    File,
}

/// How to read the program's standard output.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// Plain text: the summary is its tail; success is the exit code.
    #[default]
    Text,
    /// JSON Lines: the final event (the last matching `result_match`, else the last object) gives the fields.
    Jsonl,
}

/// Which JSON line is the final result: the last whose value at `path` equals `equals`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Match {
    /// A JSON pointer, e.g. `/type`.
    pub path: String,
    /// The value there, e.g. `"result"`.
    pub equals: serde_json::Value,
}

/// Where the fields of the final JSON event are (JSON pointers, e.g. `/result`); each optional.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Output {
    /// `text` or `jsonl`.
    #[serde(default)]
    pub format: Format,
    /// Which line is the final result (jsonl).
    #[serde(default)]
    pub result_match: Option<Match>,
    /// The agent's final message.
    #[serde(default)]
    pub summary_path: Option<String>,
    /// The session id, for resuming.
    #[serde(default)]
    pub session_path: Option<String>,
    /// A flag (true) or message (non-empty string) that marks the run as failed (an API error).
    #[serde(default)]
    pub error_path: Option<String>,
    /// Prompt tokens.
    #[serde(default)]
    pub input_tokens_path: Option<String>,
    /// Generated tokens.
    #[serde(default)]
    pub output_tokens_path: Option<String>,
    /// Cost in US dollars.
    #[serde(default)]
    pub cost_path: Option<String>,
    /// Model turns.
    #[serde(default)]
    pub turns_path: Option<String>,
}

/// The `command` agent's configuration (`agents.command`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The program (granted in `plugins.grants.command.commands`).
    #[serde(default)]
    pub program: String,
    /// The argument template; placeholders `{prompt}`, `{prompt_file}`, `{workspace}`, `{session_id}`,
    /// `{task_id}`, `{task_title}`, `{iteration}`; `{{` and `}}` for literal braces.
    #[serde(default = "default_args")]
    pub args: Vec<String>,
    /// How the prompt reaches the program; `None` (the default): as `args` say, i.e. `argument` when an
    /// argument holds `{prompt}`, `file` when one holds `{prompt_file}`, else `stdin`. See
    /// [`Config::prompt_via`].
    #[serde(default)]
    pub prompt_via: Option<PromptVia>,
    /// Appended to `args` when a session is resumed (e.g. `["--resume", "{session_id}"]`); empty: never resume.
    #[serde(default)]
    pub resume_args: Vec<String>,
    /// How to read the output.
    #[serde(default)]
    pub output: Output,
    /// Exit codes that mean success.
    #[serde(default = "default_success")]
    pub success_exit_codes: Vec<i32>,
    /// Text in the output or error output (case-insensitive) that means a rate limit.
    #[serde(default = "default_rate_limit")]
    pub rate_limit_patterns: Vec<String>,
    /// Variables set for the program (each granted in `plugins.grants.command.env`).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Arguments for `health` (the program's version).
    #[serde(default = "default_version_args")]
    pub version_args: Vec<String>,
    /// Keep at most this many bytes of the program's error output.
    #[serde(default)]
    pub max_output_bytes: Option<u64>,
}

fn default_args() -> Vec<String> {
    Vec::new()
}
fn default_success() -> Vec<i32> {
    vec![0]
}
fn default_rate_limit() -> Vec<String> {
    vec!["rate limit".into(), "rate_limit".into(), "too many requests".into()]
}
fn default_version_args() -> Vec<String> {
    vec!["--version".into()]
}

/// The placeholders an argument may hold.
pub const PLACEHOLDERS: [&str; 7] =
    ["prompt", "prompt_file", "workspace", "session_id", "task_id", "task_title", "iteration"];

/// What the placeholders stand for in one run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Values<'a> {
    /// The prompt.
    pub prompt: &'a str,
    /// The prompt file's absolute path (prompt_via: file), else empty.
    pub prompt_file: &'a str,
    /// The workspace's absolute path.
    pub workspace: &'a str,
    /// The session being resumed, else empty.
    pub session_id: &'a str,
    /// The task's id.
    pub task_id: u64,
    /// The task's title.
    pub task_title: &'a str,
    /// The loop iteration.
    pub iteration: u32,
}

/// Expand one template argument; `Err` names an unknown placeholder or an unclosed brace.
pub fn expand(template: &str, v: &Values<'_>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            out.push(tail.as_bytes()[0] as char);
            rest = &tail[2..];
            continue;
        }
        if tail.starts_with('}') {
            return Err(format!("a lone `}}` in {template:?}; write `}}}}` for a literal brace"));
        }
        let Some(end) = tail.find('}') else {
            return Err(format!("an unclosed `{{` in {template:?}; write `{{{{` for a literal brace"));
        };
        let name = &tail[1..end];
        let value = match name {
            "prompt" => v.prompt.to_string(),
            "prompt_file" => v.prompt_file.to_string(),
            "workspace" => v.workspace.to_string(),
            "session_id" => v.session_id.to_string(),
            "task_id" => v.task_id.to_string(),
            "task_title" => v.task_title.to_string(),
            "iteration" => v.iteration.to_string(),
            other => {
                return Err(format!(
                    "unknown placeholder `{{{other}}}` in {template:?}; use one of {}",
                    PLACEHOLDERS.map(|p| format!("{{{p}}}")).join(", ")
                ));
            }
        };
        out.push_str(&value);
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn fatal(key: &str, message: impl std::fmt::Display) -> PluginError {
    PluginError::fatal(format!("invalid config: at `{key}`: {message}"))
}

impl Config {
    /// How the prompt reaches the program: `prompt_via` when set, else `argument` when an argument holds
    /// `{prompt}`, `file` when one holds `{prompt_file}`, else `stdin` (kept out of the argument list, where
    /// every user of the machine could read it).
    pub fn prompt_via(&self) -> PromptVia {
        match self.prompt_via {
            Some(via) => via,
            None if self.mentions("prompt") => PromptVia::Argument,
            None if self.mentions("prompt_file") => PromptVia::File,
            None => PromptVia::Stdin,
        }
    }

    /// Whether an argument of the template holds the placeholder `{name}`.
    fn mentions(&self, name: &str) -> bool {
        self.args.iter().any(|a| a.contains(&format!("{{{name}}}")))
    }

    /// Parse and check the config JSON.
    pub fn parse(json: &str) -> Result<Config, PluginError> {
        let cfg: Config = obra_plugin_sdk::config(json)?;
        if cfg.program.trim().is_empty() {
            return Err(fatal(
                "program",
                "not set: name the agent's program in agents.command.program (and grant it in \
                 plugins.grants.command.commands)",
            ));
        }
        let probe = Values::default();
        for (key, list) in [("args", &cfg.args), ("resume_args", &cfg.resume_args), ("version_args", &cfg.version_args)]
        {
            for (i, a) in list.iter().enumerate() {
                expand(a, &probe).map_err(|e| fatal(&format!("{key}[{i}]"), e))?;
            }
        }
        let mentions = |name: &str| cfg.mentions(name);
        match cfg.prompt_via() {
            PromptVia::Argument if !mentions("prompt") => {
                return Err(fatal("args", "prompt_via is argument but no argument holds {prompt}"));
            }
            PromptVia::File if !mentions("prompt_file") => {
                return Err(fatal("args", "prompt_via is file but no argument holds {prompt_file}"));
            }
            _ => {}
        }
        if !cfg.resume_args.is_empty() && !cfg.resume_args.iter().any(|a| a.contains("{session_id}")) {
            return Err(fatal("resume_args", "must hold {session_id}"));
        }
        let o = &cfg.output;
        for (key, path) in [
            ("output.summary_path", &o.summary_path),
            ("output.session_path", &o.session_path),
            ("output.error_path", &o.error_path),
            ("output.input_tokens_path", &o.input_tokens_path),
            ("output.output_tokens_path", &o.output_tokens_path),
            ("output.cost_path", &o.cost_path),
            ("output.turns_path", &o.turns_path),
            ("output.result_match.path", &o.result_match.as_ref().map(|m| m.path.clone())),
        ] {
            if let Some(p) = path
                && !p.is_empty()
                && !p.starts_with('/')
            {
                return Err(fatal(
                    key,
                    format!("{p:?} is not a JSON pointer; write it like /result or /usage/input_tokens"),
                ));
            }
        }
        if o.format == Format::Text && (o.result_match.is_some() || o.session_path.is_some()) {
            return Err(fatal("output.format", "paths need `format: jsonl`"));
        }
        if cfg.success_exit_codes.is_empty() {
            return Err(fatal("success_exit_codes", "must list at least one code (usually 0)"));
        }
        Ok(cfg)
    }

    /// The arguments for one run (and `resume_args` when resuming).
    pub fn arguments(&self, v: &Values<'_>) -> Result<Vec<String>, PluginError> {
        let mut args = Vec::new();
        for (i, a) in self.args.iter().enumerate() {
            args.push(expand(a, v).map_err(|e| fatal(&format!("args[{i}]"), e))?);
        }
        if !v.session_id.is_empty() {
            for (i, a) in self.resume_args.iter().enumerate() {
                args.push(expand(a, v).map_err(|e| fatal(&format!("resume_args[{i}]"), e))?);
            }
        }
        Ok(args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values<'a>(prompt: &'a str, session: &'a str) -> Values<'a> {
        Values {
            prompt,
            prompt_file: "/ws/.obra/prompt-3-1.md",
            workspace: "/ws",
            session_id: session,
            task_id: 3,
            task_title: "Fix it",
            iteration: 1,
        }
    }

    #[test]
    fn templates_expand_every_placeholder_and_keep_the_prompt_one_argument() {
        let cfg = Config::parse(
            r#"{"program": "my-agent", "args": ["--task={task_id}/{iteration}", "-p", "{prompt}", "--in", "{workspace}",
                "{{literal}}"], "resume_args": ["--resume", "{session_id}"]}"#,
        )
        .unwrap();
        let hostile = "fix $(rm -rf ~); it's \"done\" `id` && echo {prompt} | tee x\nline two";
        let args = cfg.arguments(&values(hostile, "")).unwrap();
        assert_eq!(args, ["--task=3/1", "-p", hostile, "--in", "/ws", "{literal}"]);
        let resumed = cfg.arguments(&values("p", "sess-9")).unwrap();
        assert_eq!(&resumed[resumed.len() - 2..], ["--resume", "sess-9"]);
    }

    #[test]
    fn bad_configs_name_the_key_and_say_what_to_write() {
        for (json, key) in [
            (r#"{}"#, "program"),
            (r#"{"program": "a", "args": ["{promt}"]}"#, "args[0]"),
            (r#"{"program": "a", "args": ["{prompt"]}"#, "args[0]"),
            (r#"{"program": "a", "prompt_via": "argument", "args": ["x"]}"#, "args"),
            (r#"{"program": "a", "prompt_via": "file", "args": ["{prompt}"]}"#, "args"),
            (r#"{"program": "a", "resume_args": ["--resume"]}"#, "resume_args"),
            (r#"{"program": "a", "output": {"format": "jsonl", "summary_path": "result"}}"#, "output.summary_path"),
            (r#"{"program": "a", "output": {"session_path": "/s"}}"#, "output.format"),
            (r#"{"program": "a", "success_exit_codes": []}"#, "success_exit_codes"),
            (r#"{"program": "a", "prompt_via": "pigeon"}"#, "prompt_via"),
            (r#"{"program": "a", "outptu": {}}"#, "outptu"),
        ] {
            let e = Config::parse(json).unwrap_err();
            assert_eq!(e.kind(), "fatal");
            assert!(e.message().contains(key), "{json}: {}", e.message());
        }
        let e = Config::parse(r#"{"program": "a", "args": ["{nope}"]}"#).unwrap_err();
        assert!(e.message().contains("{prompt}, {prompt_file}"), "{}", e.message());
    }

    #[test]
    fn without_prompt_via_the_args_decide_and_the_default_keeps_the_prompt_out_of_argv() {
        let via = |json: &str| Config::parse(json).unwrap().prompt_via();
        assert_eq!(via(r#"{"program": "a"}"#), PromptVia::Stdin);
        assert_eq!(via(r#"{"program": "a", "args": ["--quiet"]}"#), PromptVia::Stdin);
        assert_eq!(via(r#"{"program": "a", "args": ["-p", "{prompt}"]}"#), PromptVia::Argument);
        assert_eq!(via(r#"{"program": "a", "args": ["--file={prompt_file}"]}"#), PromptVia::File);
        assert_eq!(via(r#"{"program": "a", "args": ["{prompt}"], "prompt_via": "stdin"}"#), PromptVia::Stdin);
        let cfg = Config::parse(r#"{"program": "a"}"#).unwrap();
        assert!(cfg.arguments(&values("the secret prompt", "")).unwrap().is_empty());
    }

    #[test]
    fn stdin_needs_no_placeholder() {
        let cfg = Config::parse(r#"{"program": "a", "args": ["--stdin"], "prompt_via": "stdin"}"#).unwrap();
        assert_eq!(cfg.arguments(&values("p", "")).unwrap(), ["--stdin"]);
    }
}
