//! `PluginsConfig`: the `plugins:` section of Obra's configuration.
//!
//! It holds what the *user* allows. What a plugin actually gets is the intersection of this and what its
//! manifest requests (see [`super::grants`]). The defaults here are the defaults of `config/default.yaml`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// The `plugins:` section of the configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginsConfig {
    /// Extra directories searched for `<name>/plugin.toml`, after the project's `.obra/plugins/` and the user's
    /// `~/.local/share/obra/plugins/`.
    pub search_path: Vec<PathBuf>,
    /// Where compiled components are cached; `None` means `$XDG_CACHE_HOME/obra/components` (or
    /// `~/.cache/obra/components`).
    pub cache_dir: Option<PathBuf>,
    /// Whether a plugin found on the search path (or given by path) may replace a built-in plugin of the same
    /// name. When false, such a clash is an error.
    pub allow_override_builtin: bool,
    /// Host-wide ceilings; a manifest's `[limits]` may only lower them.
    pub limits: LimitsConfig,
    /// What the user allows each plugin, by plugin name.
    pub grants: BTreeMap<String, UserGrant>,
    /// The sha256 each named plugin's component must have (on top of its manifest's own `sha256`), so a
    /// plugin directory rewritten in the workspace, manifest and all, is refused.
    pub pins: BTreeMap<String, String>,
}

impl Default for PluginsConfig {
    /// The `plugins:` section of `config/default.yaml`: the scalar defaults here, the per-plugin grants read
    /// from the YAML itself (they change with the built-ins' manifests); a test keeps the two equal.
    fn default() -> Self {
        Self {
            search_path: Vec::new(),
            cache_dir: None,
            allow_override_builtin: false,
            limits: LimitsConfig::default(),
            grants: default_grants().clone(),
            pins: BTreeMap::new(),
        }
    }
}

/// `plugins.grants` of the embedded `config/default.yaml`, parsed once.
fn default_grants() -> &'static BTreeMap<String, UserGrant> {
    static GRANTS: OnceLock<BTreeMap<String, UserGrant>> = OnceLock::new();
    GRANTS.get_or_init(|| {
        let yaml: serde_yaml::Value = serde_yaml::from_str(DEFAULT_YAML)
            .unwrap_or_else(|e| panic!("the embedded config/default.yaml is invalid: {e}"));
        match yaml.get("plugins").and_then(|p| p.get("grants")) {
            Some(grants) => serde_yaml::from_value(grants.clone())
                .unwrap_or_else(|e| panic!("plugins.grants of the embedded config/default.yaml is invalid: {e}")),
            None => BTreeMap::new(),
        }
    })
}

/// The embedded default configuration.
const DEFAULT_YAML: &str = include_str!("../../../config/default.yaml");

/// Host-wide resource ceilings for every plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Linear memory a plugin instance may use, in MiB; growing past it traps.
    pub memory_mb: u64,
    /// Guest CPU time per export call, in milliseconds (counted in epoch ticks of about 10 ms while guest code
    /// runs); exhausting it traps.
    pub cpu_ms_per_call: u64,
    /// Wall-clock limit of one export call, in seconds (agents run long).
    pub call_timeout_secs: u64,
    /// Wall-clock limit of one host capability call (a process run, an HTTP request, ...), in seconds.
    pub host_call_timeout_secs: u64,
    /// At most this many bytes are kept of each of a process's stdout and stderr.
    pub max_output_bytes: u64,
    /// Largest HTTP response body a plugin may receive, in bytes.
    pub max_http_body_bytes: u64,
    /// Largest file a plugin may read from the workspace, in bytes.
    pub max_file_read_bytes: u64,
    /// Quota: programs one plugin may have running at once, over all its calls (a `run` in progress or a
    /// spawned child not yet dropped).
    pub max_children: u64,
    /// Quota: HTTP requests in flight plus response streams open at once, per plugin.
    pub max_http_streams: u64,
    /// Quota: the plugin's whole kv store, in bytes (each key counts its value plus 256 bytes).
    pub kv_total_bytes: u64,
    /// Quota: the largest value of one kv key, in bytes.
    pub kv_value_bytes: u64,
    /// Quota: bytes of log lines one export call may write; later lines of that call are dropped.
    pub log_bytes_per_call: u64,
    /// Quota: bytes of progress lines one export call may send; later lines of that call are dropped.
    pub progress_bytes_per_call: u64,
}

impl LimitsConfig {
    /// Every limit with its key under `plugins.limits`, in the order of `config/default.yaml`.
    pub fn entries(&self) -> [(&'static str, u64); 13] {
        [
            ("memory_mb", self.memory_mb),
            ("cpu_ms_per_call", self.cpu_ms_per_call),
            ("call_timeout_secs", self.call_timeout_secs),
            ("host_call_timeout_secs", self.host_call_timeout_secs),
            ("max_output_bytes", self.max_output_bytes),
            ("max_http_body_bytes", self.max_http_body_bytes),
            ("max_file_read_bytes", self.max_file_read_bytes),
            ("max_children", self.max_children),
            ("max_http_streams", self.max_http_streams),
            ("kv_total_bytes", self.kv_total_bytes),
            ("kv_value_bytes", self.kv_value_bytes),
            ("log_bytes_per_call", self.log_bytes_per_call),
            ("progress_bytes_per_call", self.progress_bytes_per_call),
        ]
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            memory_mb: 256,
            cpu_ms_per_call: 60_000,
            call_timeout_secs: 7200,
            host_call_timeout_secs: 7200,
            max_output_bytes: 4 * 1024 * 1024,
            max_http_body_bytes: 16 * 1024 * 1024,
            max_file_read_bytes: 16 * 1024 * 1024,
            max_children: 32,
            max_http_streams: 32,
            kv_total_bytes: 16 * 1024 * 1024,
            kv_value_bytes: 1024 * 1024,
            log_bytes_per_call: 1024 * 1024,
            progress_bytes_per_call: 1024 * 1024,
        }
    }
}

/// A set of capabilities: what the user allows one plugin (`plugins.grants.<name>`), and, as
/// [`super::manifest::Capabilities`], what a manifest requests. The effective grant is the intersection of the two.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UserGrant {
    /// Programs the plugin may run, each with argument patterns.
    pub commands: Vec<CommandPattern>,
    /// Environment variables the plugin's children may receive: passed through from Obra's environment when
    /// set there, or set explicitly by the plugin.
    pub env: Vec<String>,
    /// HTTP origins (`scheme://host[:port]`) the plugin may reach, or `config:<key>` for the origin of the URL
    /// stored under `<key>` in the plugin's own config section.
    pub http: Vec<String>,
    /// Access to the task's workspace files.
    pub workspace: WorkspaceAccess,
    /// Whether the plugin may ask the configured LLM provider.
    pub llm: bool,
    /// Whether the plugin may keep key-value state.
    pub kv: bool,
    /// Paths inside the protected directories (`.obra/`, the git directory) the plugin may read, each named
    /// explicitly (`.git/HEAD`, or a directory such as `.git/refs` for everything below it). Only the user's
    /// config grants these, only for reading, and only with `workspace: read` or `write` granted too.
    pub read_protected: Vec<String>,
}

/// A program and the argument lists it may be run with.
///
/// Argument patterns: a literal matches itself; `*` matches exactly one argument that is not an option (does not
/// start with `-`); `**` matches any remaining arguments (zero or more) when none is an option; `<prefix>*`
/// (`--format=*`, `-*` for any one option) matches one argument starting with the prefix; `-**` matches any
/// remaining arguments, options included. `**` and `-**` may only be last. No `args` means the program runs
/// without arguments (ADR 36).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandPattern {
    /// The program exactly as the plugin names it (`claude`, `/usr/bin/git`); no path lookup is done to match.
    pub program: String,
    /// Argument patterns.
    #[serde(default)]
    pub args: Vec<String>,
}

impl CommandPattern {
    /// A pattern from a program and argument patterns.
    pub fn new(program: &str, args: &[&str]) -> Self {
        Self { program: program.to_string(), args: args.iter().map(|a| a.to_string()).collect() }
    }

    /// Why this pattern is malformed, if it is (`**` anywhere but last, an empty program).
    pub fn problem(&self) -> Option<String> {
        if self.program.trim().is_empty() {
            return Some("the program is empty".to_string());
        }
        let last = self.args.len().saturating_sub(1);
        self.args.iter().position(|a| super::grants::ArgPattern::parse(a).is_rest()).filter(|&i| i != last).map(|i| {
            format!(
                "{:?} may only be the last argument pattern (it is argument {} of {})",
                self.args[i],
                i + 1,
                self.args.len()
            )
        })
    }

    /// The pattern as it would be written in YAML config, e.g. `{ program: sh, args: ["-c", "*"] }`.
    pub fn to_yaml_flow(&self) -> String {
        let args: Vec<String> = self.args.iter().map(|a| format!("{a:?}")).collect();
        format!("{{ program: {}, args: [{}] }}", self.program, args.join(", "))
    }
}

/// How much of the workspace a plugin may touch. `write` includes `read`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkspaceAccess {
    /// No access.
    #[default]
    None,
    /// Read files and list directories.
    Read,
    /// Read, create, replace and delete files.
    Write,
}

impl WorkspaceAccess {
    /// The lowercase name used in config and manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Read => "read",
            Self::Write => "write",
        }
    }
}

impl PluginsConfig {
    /// Check the values serde cannot: malformed command patterns, bad origins, zero limits. Each problem names
    /// its key (`plugins.grants.<name>.commands[0].args`) and what to do.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        for (key, value) in self.limits.entries() {
            if value == 0 {
                problems.push(format!("plugins.limits.{key}: must be greater than 0"));
            }
        }
        for (name, grant) in &self.grants {
            for (i, command) in grant.commands.iter().enumerate() {
                if let Some(problem) = command.problem() {
                    problems.push(format!("plugins.grants.{name}.commands[{i}]: {problem}"));
                }
            }
            for (i, origin) in grant.http.iter().enumerate() {
                if let Err(problem) = super::grants::OriginSpec::parse(origin) {
                    problems.push(format!("plugins.grants.{name}.http[{i}]: {problem}"));
                }
            }
            for (i, path) in grant.read_protected.iter().enumerate() {
                if let Err(problem) = super::caps::workspace::protected_grant_problem(path) {
                    problems.push(format!("plugins.grants.{name}.read_protected[{i}]: {problem}"));
                }
            }
            for (i, var) in grant.env.iter().enumerate() {
                if var.is_empty() || var.contains('=') || var.contains('\0') {
                    problems
                        .push(format!("plugins.grants.{name}.env[{i}]: {var:?} is not an environment variable name"));
                }
            }
        }
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }

    /// The grant the user gives `plugin` (an empty grant when the config names none).
    pub fn grant_for(&self, plugin: &str) -> UserGrant {
        self.grants.get(plugin).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_yaml() {
        let yaml = r#"
search_path: []
cache_dir: null
allow_override_builtin: false
limits:
  memory_mb: 256
  cpu_ms_per_call: 60000
  call_timeout_secs: 7200
  host_call_timeout_secs: 7200
  max_output_bytes: 4194304
  max_http_body_bytes: 16777216
  max_file_read_bytes: 16777216
"#;
        let parsed: PluginsConfig = serde_yaml::from_str(yaml).unwrap();
        let default = PluginsConfig::default();
        assert_eq!(parsed.limits, default.limits);
        assert_eq!(parsed.search_path, default.search_path);
        assert!(default.validate().is_ok());
        assert_eq!(default.grants["claude-code"].commands, vec![CommandPattern::new("claude", &["-**"])]);
    }

    #[test]
    fn default_is_the_plugins_section_of_default_yaml() {
        let yaml: serde_yaml::Value = serde_yaml::from_str(DEFAULT_YAML).unwrap();
        let section = yaml.get("plugins").expect("config/default.yaml has a plugins: section");
        let parsed: PluginsConfig = serde_yaml::from_value(section.clone()).unwrap();
        assert_eq!(parsed, PluginsConfig::default(), "keep PluginsConfig::default() and config/default.yaml equal");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = serde_yaml::from_str::<PluginsConfig>("limits: { memory_mbb: 3 }").unwrap_err();
        assert!(err.to_string().contains("memory_mbb"), "{err}");
        let err = serde_yaml::from_str::<PluginsConfig>("grants: { x: { comands: [] } }").unwrap_err();
        assert!(err.to_string().contains("comands"), "{err}");
    }

    #[test]
    fn grants_parse_from_yaml() {
        let yaml = r#"
grants:
  claude-code:
    commands: [ { program: claude, args: ["**"] } ]
    env: [ANTHROPIC_API_KEY]
    http: ["https://api.anthropic.com", "config:base_url"]
    workspace: write
    llm: false
    kv: true
"#;
        let cfg: PluginsConfig = serde_yaml::from_str(yaml).unwrap();
        let g = &cfg.grants["claude-code"];
        assert_eq!(g.workspace, WorkspaceAccess::Write);
        assert!(g.kv);
        assert!(cfg.validate().is_ok());
    }

    #[test]
    fn double_star_not_last_is_a_validation_error_naming_the_key() {
        let mut cfg = PluginsConfig::default();
        cfg.grants.insert(
            "x".into(),
            UserGrant { commands: vec![CommandPattern::new("git", &["**", "status"])], ..Default::default() },
        );
        cfg.limits.memory_mb = 0;
        let problems = cfg.validate().unwrap_err();
        assert!(problems.iter().any(|p| p.starts_with("plugins.grants.x.commands[0]: \"**\" may only be the last")));
        assert!(problems.iter().any(|p| p.starts_with("plugins.limits.memory_mb")));
    }

    #[test]
    fn yaml_flow_rendering_is_pasteable() {
        let p = CommandPattern::new("sh", &["-c", "*"]);
        assert_eq!(p.to_yaml_flow(), r#"{ program: sh, args: ["-c", "*"] }"#);
        let back: CommandPattern = serde_yaml::from_str(&p.to_yaml_flow()).unwrap();
        assert_eq!(back, p);
    }
}
