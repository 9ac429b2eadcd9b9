//! `plugin.toml`: the manifest every plugin ships beside its component.
//!
//! ```toml
//! api-version = "0.1.0"              # the obra:plugin WIT version the component was built against
//! name = "claude-code"               # lowercase letters, digits and dashes
//! version = "0.1.0"                  # the plugin's own version
//! kind = "agent"                     # agent | llm-provider | quality-gate | breakpoint-rule
//! description = "Runs Claude Code headless"   # optional, one line
//! wasm = "claude_code.wasm"          # the component, relative to plugin.toml (default: the only *.wasm beside it)
//! sha256 = "…64 hex digits…"         # optional: checked against the component's bytes
//!
//! [capabilities]                     # what the plugin asks for; the user's config must allow it too
//! commands = [ { program = "claude", args = ["-**"] } ]  # `*` = one non-option argument, `**` = any remaining
//!                                    # non-options (last only), `--format=*`/`-*` = one option, `-**` = anything
//! env = ["ANTHROPIC_API_KEY"]        # variables its children may receive
//! http = ["https://api.anthropic.com", "config:base_url"]  # origins, or the origin of a key of its config
//! workspace = "write"                # none | read | write
//! llm = false                        # may ask the configured LLM provider
//! kv = false                         # may keep key-value state
//!
//! [limits]                           # optional; may only lower the host's ceilings
//! memory-mb = 64
//! cpu-ms-per-call = 1000
//! call-timeout-secs = 60
//! host-call-timeout-secs = 60
//! max-output-bytes = 1048576
//! max-http-body-bytes = 1048576
//! max-file-read-bytes = 1048576
//! max-children = 4                   # quotas, per plugin: live child processes,
//! max-http-streams = 4               #   HTTP requests in flight plus open response streams,
//! kv-total-bytes = 1048576           #   the whole kv store, one kv value,
//! kv-value-bytes = 65536
//! log-bytes-per-call = 65536         #   log and progress bytes per export call
//! progress-bytes-per-call = 65536
//! ```
//!
//! Parsing checks the syntax, rejects unknown keys (suggesting the closest valid one), checks every value and the
//! API version; every error names the file, the key and what to do.

use std::fmt;
use std::ops::Range;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use toml::de::{DeTable, DeValue};

use super::bindings;
use super::config::{CommandPattern, WorkspaceAccess};
use super::grants::OriginSpec;

/// The four kinds of plugin, one per exported WIT interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PluginKind {
    /// Exports `agent`: runs a coding agent.
    Agent,
    /// Exports `llm-provider`: answers completion requests.
    LlmProvider,
    /// Exports `quality-gate`: checks an agent's work.
    QualityGate,
    /// Exports `breakpoint-rule`: decides whether the loop needs a human.
    BreakpointRule,
}

impl PluginKind {
    /// Every kind, in display order.
    pub const ALL: [PluginKind; 4] = [Self::Agent, Self::LlmProvider, Self::QualityGate, Self::BreakpointRule];

    /// The kebab-case name, which is also the name of the exported WIT interface.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Agent => "agent",
            Self::LlmProvider => "llm-provider",
            Self::QualityGate => "quality-gate",
            Self::BreakpointRule => "breakpoint-rule",
        }
    }

    /// Parse a kind name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `[capabilities]` a manifest requests: the same set of capabilities a user grants (see
/// [`super::config::UserGrant`]), so the effective grant is a field-by-field intersection of two values of one type.
pub type Capabilities = super::config::UserGrant;

/// The optional `[limits]` of a manifest: each may only lower the host's ceiling.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestLimits {
    /// Memory in MiB.
    pub memory_mb: Option<u64>,
    /// Guest CPU per call in ms.
    pub cpu_ms_per_call: Option<u64>,
    /// Wall clock per export call in seconds.
    pub call_timeout_secs: Option<u64>,
    /// Wall clock per host call in seconds.
    pub host_call_timeout_secs: Option<u64>,
    /// Output cap per process stream in bytes.
    pub max_output_bytes: Option<u64>,
    /// HTTP body cap in bytes.
    pub max_http_body_bytes: Option<u64>,
    /// File read cap in bytes.
    pub max_file_read_bytes: Option<u64>,
    /// Live child processes.
    pub max_children: Option<u64>,
    /// HTTP requests in flight plus open response streams.
    pub max_http_streams: Option<u64>,
    /// The whole kv store in bytes.
    pub kv_total_bytes: Option<u64>,
    /// One kv value in bytes.
    pub kv_value_bytes: Option<u64>,
    /// Log bytes per call.
    pub log_bytes_per_call: Option<u64>,
    /// Progress bytes per call.
    pub progress_bytes_per_call: Option<u64>,
}

/// A parsed and validated `plugin.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The WIT API version (one this host serves).
    pub api_version: String,
    /// The plugin's name: lowercase letters, digits and dashes.
    pub name: String,
    /// The plugin's version.
    pub version: String,
    /// Which interface it exports.
    pub kind: PluginKind,
    /// One line describing it.
    pub description: String,
    /// The component file relative to the manifest (`wasm` key), when given.
    pub wasm: Option<String>,
    /// The expected sha256 of the component, lowercase hex.
    pub sha256: Option<String>,
    /// What it requests.
    pub capabilities: Capabilities,
    /// Its own lower limits.
    pub limits: ManifestLimits,
}

/// A problem with a manifest: where (file, line, key) and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ManifestError {
    /// The manifest's path, or `built-in plugin <n>` for an embedded one.
    pub file: String,
    /// The 1-based line, when known.
    pub line: Option<usize>,
    /// The dotted key concerned (`capabilities.commands[0].args`), when there is one.
    pub key: Option<String>,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": key `{key}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// The keys each table of a manifest may hold.
const ROOT_KEYS: &[&str] =
    &["api-version", "name", "version", "kind", "description", "wasm", "sha256", "capabilities", "limits"];
const CAPABILITY_KEYS: &[&str] = &["commands", "env", "http", "workspace", "llm", "kv"];
const COMMAND_KEYS: &[&str] = &["program", "args"];
const LIMIT_KEYS: &[&str] = &[
    "memory-mb",
    "cpu-ms-per-call",
    "call-timeout-secs",
    "host-call-timeout-secs",
    "max-output-bytes",
    "max-http-body-bytes",
    "max-file-read-bytes",
    "max-children",
    "max-http-streams",
    "kv-total-bytes",
    "kv-value-bytes",
    "log-bytes-per-call",
    "progress-bytes-per-call",
];

/// The closest of `candidates` to `word`, when one is reasonably close.
pub(crate) fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score > 0.75)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// " (did you mean `x`?)" or nothing.
fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    closest(word, candidates).map(|c| format!(": did you mean `{c}`?")).unwrap_or_default()
}

/// The serde shape of the file; validated into [`Manifest`].
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawManifest {
    api_version: String,
    name: String,
    version: String,
    kind: String,
    #[serde(default)]
    description: String,
    wasm: Option<String>,
    sha256: Option<String>,
    #[serde(default)]
    capabilities: RawCapabilities,
    #[serde(default)]
    limits: RawLimits,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawCapabilities {
    #[serde(default)]
    commands: Vec<CommandPattern>,
    #[serde(default)]
    env: Vec<String>,
    #[serde(default)]
    http: Vec<String>,
    #[serde(default)]
    workspace: Option<String>,
    #[serde(default)]
    llm: bool,
    #[serde(default)]
    kv: bool,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawLimits {
    memory_mb: Option<u64>,
    cpu_ms_per_call: Option<u64>,
    call_timeout_secs: Option<u64>,
    host_call_timeout_secs: Option<u64>,
    max_output_bytes: Option<u64>,
    max_http_body_bytes: Option<u64>,
    max_file_read_bytes: Option<u64>,
    max_children: Option<u64>,
    max_http_streams: Option<u64>,
    kv_total_bytes: Option<u64>,
    kv_value_bytes: Option<u64>,
    log_bytes_per_call: Option<u64>,
    progress_bytes_per_call: Option<u64>,
}

/// Parses one manifest text, remembering the file name and text for error positions.
struct Parser<'a> {
    file: &'a str,
    text: &'a str,
}

impl Parser<'_> {
    fn error(&self, span: Option<Range<usize>>, key: Option<&str>, message: impl Into<String>) -> ManifestError {
        ManifestError {
            file: self.file.to_string(),
            line: span.map(|s| self.text[..s.start.min(self.text.len())].matches('\n').count() + 1),
            key: key.map(str::to_string),
            message: message.into(),
        }
    }

    /// Reject keys that are not part of the format, suggesting the closest valid key.
    fn check_keys(&self, table: &DeTable<'_>, prefix: &str, allowed: &[&str]) -> Result<(), ManifestError> {
        for (key, value) in table.iter() {
            let name = key.get_ref().as_ref();
            let path = if prefix.is_empty() { name.to_string() } else { format!("{prefix}.{name}") };
            if !allowed.contains(&name) {
                let table_name = if prefix.is_empty() { "the top level".to_string() } else { format!("[{prefix}]") };
                return Err(self.error(
                    Some(key.span()),
                    Some(&path),
                    format!(
                        "unknown key in {table_name}{}; valid keys are: {}",
                        did_you_mean(name, allowed.iter().copied()),
                        allowed.join(", ")
                    ),
                ));
            }
            match (prefix, name, value.get_ref()) {
                ("", "capabilities", DeValue::Table(t)) => self.check_keys(t, "capabilities", CAPABILITY_KEYS)?,
                ("", "limits", DeValue::Table(t)) => self.check_keys(t, "limits", LIMIT_KEYS)?,
                ("capabilities", "commands", DeValue::Array(items)) => {
                    for (i, item) in items.iter().enumerate() {
                        if let DeValue::Table(t) = item.get_ref() {
                            self.check_keys(t, &format!("capabilities.commands[{i}]"), COMMAND_KEYS)?;
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The dotted key whose value covers `offset`, to name it in a type error. Tables are searched whatever
    /// their own span (a `[table]`'s span may cover only its header).
    fn key_at(table: &DeTable<'_>, offset: usize, prefix: &str) -> Option<String> {
        for (key, value) in table.iter() {
            let path =
                if prefix.is_empty() { key.get_ref().to_string() } else { format!("{prefix}.{}", key.get_ref()) };
            let inside = value.span().contains(&offset) || key.span().contains(&offset);
            let found = match value.get_ref() {
                DeValue::Table(t) => Self::key_at(t, offset, &path),
                DeValue::Array(items) => items.iter().enumerate().find_map(|(i, v)| {
                    let item = format!("{path}[{i}]");
                    match v.get_ref() {
                        DeValue::Table(t) => {
                            Self::key_at(t, offset, &item).or_else(|| v.span().contains(&offset).then_some(item))
                        }
                        _ => v.span().contains(&offset).then_some(item),
                    }
                }),
                _ => None,
            };
            if found.is_some() {
                return found;
            }
            if inside {
                return Some(path);
            }
        }
        None
    }

    fn parse(&self) -> Result<Manifest, ManifestError> {
        let table = DeTable::parse(self.text)
            .map_err(|e| self.error(e.span(), None, format!("not valid TOML: {}", e.message().trim())))?;
        self.check_keys(table.get_ref(), "", ROOT_KEYS)?;
        let raw: RawManifest = toml::from_str(self.text).map_err(|e| {
            let key = e.span().and_then(|s| Self::key_at(table.get_ref(), s.start, ""));
            self.error(e.span(), key.as_deref(), e.message().trim().to_string())
        })?;
        self.validate(raw, table.get_ref())
    }

    fn span_of(table: &DeTable<'_>, key: &str) -> Option<Range<usize>> {
        let mut current = table;
        let mut parts = key.split('.').peekable();
        while let Some(part) = parts.next() {
            let (_, value) = current.iter().find(|(k, _)| k.get_ref().as_ref() == part)?;
            if parts.peek().is_none() {
                return Some(value.span());
            }
            match value.get_ref() {
                DeValue::Table(t) => current = t,
                _ => return Some(value.span()),
            }
        }
        None
    }

    fn validate(&self, raw: RawManifest, table: &DeTable<'_>) -> Result<Manifest, ManifestError> {
        let err = |key: &str, message: String| self.error(Self::span_of(table, key), Some(key), message);

        if !valid_name(&raw.name) {
            return Err(err(
                "name",
                format!(
                    "{:?} is not a valid plugin name: use 1 to 64 lowercase letters, digits and dashes, starting with a letter (e.g. \"my-gate\")",
                    raw.name
                ),
            ));
        }
        if !valid_version(&raw.version) {
            return Err(err(
                "version",
                format!("{:?} is not a version: write MAJOR.MINOR.PATCH, e.g. \"0.1.0\"", raw.version),
            ));
        }
        if !bindings::SUPPORTED_API_VERSIONS.contains(&raw.api_version.as_str()) {
            return Err(err(
                "api-version",
                format!(
                    "plugin {:?} is built for the Obra plugin API {}, but this Obra serves {}: rebuild the plugin against obra:plugin@{} and set api-version = \"{}\"",
                    raw.name,
                    raw.api_version,
                    bindings::SUPPORTED_API_VERSIONS.join(", "),
                    bindings::LATEST_API_VERSION,
                    bindings::LATEST_API_VERSION,
                ),
            ));
        }
        let kind = PluginKind::parse(&raw.kind).ok_or_else(|| {
            err(
                "kind",
                format!(
                    "{:?} is not a plugin kind{}; use one of: agent, llm-provider, quality-gate, breakpoint-rule",
                    raw.kind,
                    did_you_mean(&raw.kind, PluginKind::ALL.iter().map(|k| k.as_str()))
                ),
            )
        })?;
        if let Some(wasm) = &raw.wasm
            && (wasm.is_empty() || wasm.starts_with('/') || wasm.split(['/', '\\']).any(|p| p == ".."))
        {
            return Err(err(
                "wasm",
                format!("{wasm:?} must be a relative path inside the plugin's directory, e.g. \"my_plugin.wasm\""),
            ));
        }
        let sha256 = match raw.sha256 {
            Some(hash) => {
                let hash = hash.to_ascii_lowercase();
                if hash.len() != 64 || !hash.chars().all(|c| c.is_ascii_hexdigit()) {
                    return Err(err(
                        "sha256",
                        "must be 64 hexadecimal digits (the output of `sha256sum <component>.wasm`), or be left out"
                            .into(),
                    ));
                }
                Some(hash)
            }
            None => None,
        };

        let caps = raw.capabilities;
        for (i, command) in caps.commands.iter().enumerate() {
            if let Some(problem) = command.problem() {
                return Err(err("capabilities.commands", format!("command {}: {problem}", i + 1)));
            }
        }
        for var in &caps.env {
            if var.is_empty() || var.contains('=') || var.contains('\0') {
                return Err(err("capabilities.env", format!("{var:?} is not an environment variable name")));
            }
        }
        for origin in &caps.http {
            OriginSpec::parse(origin).map_err(|problem| err("capabilities.http", problem))?;
        }
        let workspace = match caps.workspace.as_deref() {
            None | Some("none") => WorkspaceAccess::None,
            Some("read") => WorkspaceAccess::Read,
            Some("write") => WorkspaceAccess::Write,
            Some(other) => {
                return Err(err(
                    "capabilities.workspace",
                    format!(
                        "{other:?} is not a workspace access{}; use \"none\", \"read\" or \"write\"",
                        did_you_mean(other, ["none", "read", "write"])
                    ),
                ));
            }
        };
        if kind == PluginKind::LlmProvider && caps.llm {
            return Err(err(
                "capabilities.llm",
                "an llm-provider may not ask the LLM capability (it would call itself): remove `llm = true`".into(),
            ));
        }
        let l = raw.limits;
        let limits = ManifestLimits {
            memory_mb: l.memory_mb,
            cpu_ms_per_call: l.cpu_ms_per_call,
            call_timeout_secs: l.call_timeout_secs,
            host_call_timeout_secs: l.host_call_timeout_secs,
            max_output_bytes: l.max_output_bytes,
            max_http_body_bytes: l.max_http_body_bytes,
            max_file_read_bytes: l.max_file_read_bytes,
            max_children: l.max_children,
            max_http_streams: l.max_http_streams,
            kv_total_bytes: l.kv_total_bytes,
            kv_value_bytes: l.kv_value_bytes,
            log_bytes_per_call: l.log_bytes_per_call,
            progress_bytes_per_call: l.progress_bytes_per_call,
        };
        for (key, value) in [
            ("limits.memory-mb", limits.memory_mb),
            ("limits.cpu-ms-per-call", limits.cpu_ms_per_call),
            ("limits.call-timeout-secs", limits.call_timeout_secs),
            ("limits.host-call-timeout-secs", limits.host_call_timeout_secs),
            ("limits.max-output-bytes", limits.max_output_bytes),
            ("limits.max-http-body-bytes", limits.max_http_body_bytes),
            ("limits.max-file-read-bytes", limits.max_file_read_bytes),
            ("limits.max-children", limits.max_children),
            ("limits.max-http-streams", limits.max_http_streams),
            ("limits.kv-total-bytes", limits.kv_total_bytes),
            ("limits.kv-value-bytes", limits.kv_value_bytes),
            ("limits.log-bytes-per-call", limits.log_bytes_per_call),
            ("limits.progress-bytes-per-call", limits.progress_bytes_per_call),
        ] {
            if value == Some(0) {
                return Err(err(key, "must be greater than 0 (or be left out for the host's limit)".into()));
            }
        }

        Ok(Manifest {
            api_version: raw.api_version,
            name: raw.name,
            version: raw.version,
            kind,
            description: raw.description,
            wasm: raw.wasm,
            sha256,
            capabilities: Capabilities {
                commands: caps.commands,
                env: caps.env,
                http: caps.http,
                workspace,
                llm: caps.llm,
                kv: caps.kv,
                // Only the user's config names protected paths a plugin may read.
                read_protected: Vec::new(),
            },
            limits,
        })
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-')
}

fn valid_version(version: &str) -> bool {
    let core = version.split(['-', '+']).next().unwrap_or_default();
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3 && parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

/// The lowercase hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Manifest {
    /// Parse and validate a manifest's text. `file` names it in errors (a path, or `built-in plugin x`).
    pub fn parse(file: &str, text: &str) -> Result<Manifest, ManifestError> {
        Parser { file, text }.parse()
    }

    /// Check the component's bytes against the manifest's `sha256`, when it has one.
    pub fn verify_sha256(&self, file: &str, component: &[u8]) -> Result<(), ManifestError> {
        let Some(expected) = &self.sha256 else {
            return Ok(());
        };
        let actual = sha256_hex(component);
        if &actual == expected {
            return Ok(());
        }
        Err(ManifestError {
            file: file.to_string(),
            line: None,
            key: Some("sha256".into()),
            message: format!(
                "the component's sha256 is {actual} but the manifest says {expected}: the component was changed or rebuilt; reinstall the plugin or update sha256"
            ),
        })
    }

    /// The fully qualified name of the WIT interface this plugin must export, e.g. `obra:plugin/agent@0.1.0`.
    pub fn export_interface(&self) -> String {
        format!("obra:plugin/{}@{}", self.kind, self.api_version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
api-version = "0.1.0"
name = "echo-agent"
version = "0.1.0"
kind = "agent"
description = "Echoes"

[capabilities]
commands = [ { program = "sh", args = ["-c", "*"] } ]
env = ["PATH"]
http = ["http://127.0.0.1:8080", "config:base_url"]
workspace = "read"
kv = true

[limits]
memory-mb = 64
"#;

    fn parse(text: &str) -> Result<Manifest, ManifestError> {
        Manifest::parse("plugins/x/plugin.toml", text)
    }

    #[test]
    fn a_complete_manifest_parses() {
        let m = parse(GOOD).unwrap();
        assert_eq!(m.name, "echo-agent");
        assert_eq!(m.kind, PluginKind::Agent);
        assert_eq!(m.capabilities.workspace, WorkspaceAccess::Read);
        assert_eq!(m.capabilities.commands[0].args, vec!["-c", "*"]);
        assert!(m.capabilities.kv);
        assert_eq!(m.limits.memory_mb, Some(64));
        assert_eq!(m.export_interface(), "obra:plugin/agent@0.1.0");
    }

    #[test]
    fn unknown_key_names_file_line_key_and_suggests_the_closest() {
        let text = GOOD.replace("kind = \"agent\"", "knd = \"agent\"");
        let e = parse(&text).unwrap_err();
        assert_eq!(e.file, "plugins/x/plugin.toml");
        assert_eq!(e.line, Some(5));
        assert_eq!(e.key.as_deref(), Some("knd"));
        assert!(e.to_string().contains("did you mean `kind`?"), "{e}");
    }

    #[test]
    fn unknown_nested_key_is_named_with_its_table() {
        let e = parse(&GOOD.replace("memory-mb", "memory-mib")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("limits.memory-mib"));
        assert!(e.message.contains("did you mean `memory-mb`?"), "{e}");
        let e = parse(&GOOD.replace("program =", "programme =")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("capabilities.commands[0].programme"));
        assert!(e.message.contains("`program`"), "{e}");
    }

    #[test]
    fn wrong_type_names_the_key() {
        let e = parse(&GOOD.replace("memory-mb = 64", "memory-mb = \"lots\"")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("limits.memory-mb"), "{e}");
        assert_eq!(e.line, Some(16));
    }

    #[test]
    fn unsupported_api_version_names_both_versions() {
        let e = parse(&GOOD.replace("api-version = \"0.1.0\"", "api-version = \"0.9.0\"")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("api-version"));
        assert!(e.message.contains("0.9.0") && e.message.contains("serves 0.1.0"), "{e}");
    }

    #[test]
    fn bad_values_are_explained() {
        let e = parse(&GOOD.replace("kind = \"agent\"", "kind = \"agnet\"")).unwrap_err();
        assert!(e.message.contains("did you mean `agent`"), "{e}");
        let e = parse(&GOOD.replace("name = \"echo-agent\"", "name = \"Echo Agent\"")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("name"));
        let e = parse(&GOOD.replace("\"-c\", \"*\"", "\"**\", \"-c\"")).unwrap_err();
        assert!(e.message.contains("last argument pattern"), "{e}");
        let e = parse(&GOOD.replace("workspace = \"read\"", "workspace = \"rw\"")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("capabilities.workspace"));
        let e = parse(&GOOD.replace("http://127.0.0.1:8080", "127.0.0.1")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("capabilities.http"), "{e}");
        let e = parse("name = \"x\"\n[[broken").unwrap_err();
        assert!(e.message.starts_with("not valid TOML"), "{e}");
        let e = parse(&GOOD.replace("description = \"Echoes\"", "")).unwrap();
        assert_eq!(e.description, "");
    }

    #[test]
    fn llm_provider_may_not_request_llm() {
        let text = GOOD.replace("kind = \"agent\"", "kind = \"llm-provider\"").replace("kv = true", "llm = true");
        let e = parse(&text).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("capabilities.llm"));
    }

    #[test]
    fn sha256_is_verified() {
        let bytes = b"component bytes";
        let text = format!("{GOOD}\n").replace(
            "description = \"Echoes\"",
            &format!("description = \"Echoes\"\nsha256 = \"{}\"", sha256_hex(bytes).to_uppercase()),
        );
        let m = parse(&text).unwrap();
        m.verify_sha256("x.wasm", bytes).unwrap();
        let e = m.verify_sha256("x.wasm", b"other").unwrap_err();
        assert!(e.message.contains("reinstall the plugin"), "{e}");
        let e = parse(&GOOD.replace("description = \"Echoes\"", "sha256 = \"abc\"")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("sha256"));
    }
}
