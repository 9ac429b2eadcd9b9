//! The plugin's configuration and the `claude` command line it leads to (pure, unit-tested natively).

use std::collections::BTreeMap;

use obra_plugin_sdk::PluginError;
use serde::Deserialize;

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
    /// Tools the agent may use without asking, passed as `--allowedTools` (e.g. `"Bash(make:*)"`, `"WebFetch"`),
    /// on top of what `permission_mode` allows; default: none.
    #[serde(default)]
    pub allowed_tools: Vec<String>,
    /// Also allow the commands of the project's enabled gates (`gate_commands`) as `Bash(<command>:*)`;
    /// default: false (Obra's default config sets it true).
    #[serde(default)]
    pub allow_gate_commands: bool,
    /// The commands of the project's enabled gates (e.g. the `tests` gate's `python -m pytest -q`), filled in by
    /// Obra at run time when `allow_gate_commands` is true; a value in the config is replaced.
    #[serde(default)]
    pub gate_commands: Vec<String>,
    /// More arguments, appended after the ones above (e.g. `["--disallowedTools", "WebFetch"]`); default: none.
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
        for (i, tool) in cfg.allowed_tools.iter().enumerate() {
            if tool.trim().is_empty() {
                return Err(PluginError::fatal(format!(
                    "invalid config: at `allowed_tools[{i}]`: empty; name a tool, e.g. \"Bash(make test:*)\""
                )));
            }
        }
        Ok(cfg)
    }

    /// What goes to `--allowedTools`: `allowed_tools`, then (with `allow_gate_commands`) `Bash(<c>:*)` for each
    /// simple command of each gate command, without duplicates. Claude Code checks every simple command of a
    /// compound one (`a && b`, `a; b`, `a | b`) on its own, so `cd sub && pytest` becomes `Bash(cd sub:*)` and
    /// `Bash(pytest:*)`.
    pub fn allowed_tools(&self) -> Vec<String> {
        let mut tools: Vec<String> = Vec::new();
        let mut add = |tool: String| {
            if !tools.contains(&tool) {
                tools.push(tool);
            }
        };
        for tool in &self.allowed_tools {
            add(tool.trim().to_string());
        }
        if self.allow_gate_commands {
            for command in &self.gate_commands {
                for simple in simple_commands(command) {
                    add(format!("Bash({simple}:*)"));
                }
            }
        }
        tools
    }
}

/// The simple commands of a shell command line: split at `&&`, `||`, `;`, `|`, `&` and newlines outside quotes,
/// trimmed, empty ones dropped. Quotes and backslash escapes are kept as written (Claude Code matches the
/// command's text). A command with `$(`, backticks or a parenthesised group is kept whole: the CLI refuses to
/// pre-approve command substitution, so nothing narrower would match anyway.
pub fn simple_commands(command: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    let mut chars = command.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), _) if c == q => {
                quote = None;
                current.push(c);
            }
            (Some('"'), '\\') | (None, '\\') => {
                current.push(c);
                if let Some(next) = chars.next() {
                    current.push(next);
                }
            }
            (Some(_), _) => current.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                current.push(c);
            }
            (None, ';' | '\n') => parts.push(std::mem::take(&mut current)),
            (None, '&' | '|') => {
                // `2>&1`, `>&2`, `&>` are redirections, not separators.
                if c == '&' && (current.ends_with('>') || chars.peek() == Some(&'>')) {
                    current.push(c);
                    continue;
                }
                if chars.peek() == Some(&c) {
                    chars.next();
                }
                parts.push(std::mem::take(&mut current));
            }
            (None, _) => current.push(c),
        }
    }
    parts.push(current);
    if command.contains("$(") || command.contains('`') || parts.iter().any(|p| p.trim_start().starts_with('(')) {
        return vec![command.trim().to_string()].into_iter().filter(|c| !c.is_empty()).collect();
    }
    parts.into_iter().map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect()
}

/// The command line for one run: the arguments after `claude`, and the text for standard input.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    /// Arguments after the program name.
    pub args: Vec<String>,
    /// Standard input: the prompt (`claude -p` without a prompt argument reads it there), never on the command
    /// line, where every user of the machine could read it.
    pub stdin: String,
}

/// Build the arguments: `-p --output-format stream-json --verbose [--model M] [--max-turns N]
/// [--permission-mode X] [--allowedTools T]... [--append-system-prompt S] [--resume ID] <extra_args>`, with the
/// prompt on standard input.
pub fn invocation(cfg: &Config, prompt: &str, resume_session: Option<&str>) -> Invocation {
    let mut args: Vec<String> =
        ["-p", "--output-format", "stream-json", "--verbose"].iter().map(|s| s.to_string()).collect();
    let mut opt = |flag: &str, value: Option<String>| {
        if let Some(v) = value {
            args.push(flag.to_string());
            args.push(v);
        }
    };
    opt("--model", cfg.model.clone());
    opt("--max-turns", cfg.max_turns.map(|n| n.to_string()));
    opt("--permission-mode", cfg.permission_mode.clone());
    // One flag per tool: the flag takes several values, and one value holds spaces (`Bash(npm run test:*)`).
    for tool in cfg.allowed_tools() {
        opt("--allowedTools", Some(tool));
    }
    opt("--append-system-prompt", cfg.append_system_prompt.clone());
    opt("--resume", resume_session.map(str::to_string));
    args.extend(cfg.extra_args.iter().cloned());
    Invocation { args, stdin: prompt.to_string() }
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
        assert_eq!(inv.args, ["-p", "--output-format", "stream-json", "--verbose"]);
        assert_eq!(inv.stdin, "fix it");
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
    fn every_prompt_goes_to_stdin_never_to_the_command_line() {
        for prompt in ["short".to_string(), "x".repeat(200_000)] {
            let inv = invocation(&Config::default(), &prompt, Some("s"));
            assert_eq!(inv.args[0], "-p");
            assert_eq!(inv.args[1], "--output-format");
            assert!(!inv.args.contains(&prompt));
            assert_eq!(inv.stdin, prompt);
        }
    }

    #[test]
    fn allowed_tools_and_the_gates_commands_become_one_allowed_tools_flag_each() {
        let cfg = Config::parse(
            r#"{"permission_mode": "acceptEdits", "allowed_tools": ["WebFetch", "Bash(make:*)"],
                "allow_gate_commands": true,
                "gate_commands": ["python3 -m pytest -x -q", "ruff check . && mypy src", "make"]}"#,
        )
        .unwrap();
        let inv = invocation(&cfg, "p", None);
        let allowed: Vec<&str> =
            inv.args.windows(2).filter(|w| w[0] == "--allowedTools").map(|w| w[1].as_str()).collect();
        assert_eq!(
            allowed,
            ["WebFetch", "Bash(make:*)", "Bash(python3 -m pytest -x -q:*)", "Bash(ruff check .:*)", "Bash(mypy src:*)"]
        );
        // Without allow_gate_commands, only the configured tools.
        let off = Config::parse(r#"{"allowed_tools": ["Read"], "gate_commands": ["pytest"]}"#).unwrap();
        assert_eq!(off.allowed_tools(), ["Read"]);
        assert!(!invocation(&Config::default(), "p", None).args.contains(&"--allowedTools".to_string()));
    }

    #[test]
    fn gate_commands_split_into_simple_commands_outside_quotes() {
        let split = |c: &str| simple_commands(c);
        assert_eq!(split("pytest -q"), ["pytest -q"]);
        assert_eq!(split("cd sub && pytest"), ["cd sub", "pytest"]);
        assert_eq!(split("a || b; c | d\ne & f"), ["a", "b", "c", "d", "e", "f"]);
        assert_eq!(split("pytest -q 2>&1 | tail -5"), ["pytest -q 2>&1", "tail -5"]);
        assert_eq!(split("grep -q 'a|b; c' x && echo \"x && y\""), ["grep -q 'a|b; c' x", "echo \"x && y\""]);
        assert_eq!(split(r"echo a\;b"), [r"echo a\;b"]);
        assert_eq!(split("test $(cat n) = 1 && ok"), ["test $(cat n) = 1 && ok"]);
        assert_eq!(split("  "), Vec::<String>::new());
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
            (r#"{"allowed_tools": ["Read", " "]}"#, "allowed_tools[1]"),
            (r#"{"allowed_tools": "Read"}"#, "allowed_tools"),
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
