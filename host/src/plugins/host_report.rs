//! What the plugin host reports: loaded plugins (`obra plugin list|info`), `obra plugin check` results, search
//! path load reports, and the errors of loading and lookup. All serde-serialisable for `--json`.

use std::path::PathBuf;

use serde::Serialize;

use super::cache::CacheOutcome;
use super::config::{LimitsConfig, WorkspaceAccess};
use super::grants::{EffectiveGrant, OriginSpec};
use super::manifest::{ManifestError, PluginKind};

/// Where a plugin came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum PluginSource {
    /// Embedded in the binary.
    Builtin,
    /// A plugin directory (holding `plugin.toml` and the component).
    Directory {
        /// The directory.
        path: PathBuf,
    },
}

/// The effective grant of a plugin, for display.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GrantSummary {
    /// Command patterns allowed (as YAML flow mappings).
    pub commands: Vec<String>,
    /// Environment variables its children may receive.
    pub env: Vec<String>,
    /// HTTP origins (or `config:<key>` entries) both manifest and config name.
    pub http: Vec<String>,
    /// Workspace access.
    pub workspace: WorkspaceAccess,
    /// LLM access.
    pub llm: bool,
    /// Key-value storage.
    pub kv: bool,
    /// Effective limits.
    pub limits: LimitsConfig,
    /// What the manifest requests but the config does not allow, with the config line to add.
    pub refused: Vec<String>,
}

impl GrantSummary {
    /// The summary of an effective grant.
    pub(crate) fn of(grant: &EffectiveGrant) -> Self {
        let allowed: Vec<OriginSpec> = grant.allowed.http.iter().filter_map(|h| OriginSpec::parse(h).ok()).collect();
        Self {
            commands: grant.commands.iter().map(|c| c.to_yaml_flow()).collect(),
            env: grant.env.iter().cloned().collect(),
            http: grant
                .requested
                .http
                .iter()
                .filter_map(|h| OriginSpec::parse(h).ok())
                .filter(|h| allowed.contains(h))
                .map(|h| h.to_string())
                .collect(),
            workspace: grant.workspace,
            llm: grant.llm,
            kv: grant.kv,
            limits: grant.limits,
            refused: grant.refused_requests(),
        }
    }
}

/// Everything `obra plugin list|info` shows about a loaded plugin.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PluginInfo {
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Kind.
    pub kind: PluginKind,
    /// WIT API version.
    pub api_version: String,
    /// One-line description.
    pub description: String,
    /// Where it came from.
    pub source: PluginSource,
    /// The component file (none for built-ins).
    pub component: Option<PathBuf>,
    /// sha256 of the component.
    pub sha256: String,
    /// Whether the compiled component came from the cache.
    pub cache: CacheOutcome,
    /// The component's imports.
    pub imports: Vec<String>,
    /// The effective grant.
    pub grant: GrantSummary,
    /// Whether it replaced a built-in plugin of the same name.
    pub overrides_builtin: bool,
    /// How many instances have been created so far (more than 1 means it was discarded after a failure).
    pub instances_created: u64,
}

/// Why loading or looking up a plugin failed. Every message names the plugin or file and what to do.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PluginHostError {
    /// The `plugins:` config section is invalid.
    #[error("invalid plugins configuration:\n  - {}", .0.join("\n  - "))]
    Config(Vec<String>),
    /// The engine could not be set up.
    #[error("{0}")]
    Engine(String),
    /// A file could not be read.
    #[error("{path}: {message}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What went wrong and what to do.
        message: String,
    },
    /// A manifest is invalid (or its sha256 does not match).
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The component was refused: bad imports or exports, not a component, does not compile or link.
    #[error("{file}: plugin {plugin:?} was refused:\n  - {}", .problems.join("\n  - "))]
    Refused {
        /// The plugin's name.
        plugin: String,
        /// The manifest or component file.
        file: String,
        /// Each problem.
        problems: Vec<String>,
    },
    /// A plugin has the name of a built-in and overriding is not allowed.
    #[error(
        "{file}: plugin {plugin:?} has the same name as a built-in plugin: rename it, or set plugins.allow_override_builtin: true in your config to let it replace the built-in"
    )]
    BuiltinClash {
        /// The name.
        plugin: String,
        /// The clashing manifest.
        file: String,
    },
    /// No plugin of that kind has that name.
    #[error("there is no {kind} plugin named {name:?}; {}", available_text(*.kind, .available))]
    NotFound {
        /// The kind looked for.
        kind: PluginKind,
        /// The name looked for.
        name: String,
        /// The names of the loaded plugins of that kind.
        available: Vec<String>,
    },
    /// The plugin exists but is of another kind.
    #[error("plugin {name:?} is a {actual}, not a {wanted}; {}", available_text(*.wanted, .available))]
    WrongKind {
        /// The name.
        name: String,
        /// Its kind.
        actual: PluginKind,
        /// The kind asked for.
        wanted: PluginKind,
        /// The names of the loaded plugins of the wanted kind.
        available: Vec<String>,
    },
}

fn available_text(kind: PluginKind, available: &[String]) -> String {
    if available.is_empty() {
        format!("no {kind} plugins are loaded")
    } else {
        format!("available {kind} plugins: {}", available.join(", "))
    }
}

/// The outcome of loading a search path: what loaded, what failed, what was shadowed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LoadReport {
    /// Names loaded.
    pub loaded: Vec<String>,
    /// Plugins that failed to load (the others still loaded).
    #[serde(serialize_with = "serialize_errors")]
    pub errors: Vec<PluginHostError>,
    /// Notes, e.g. a plugin shadowed by one of the same name earlier on the search path.
    pub notes: Vec<String>,
}

fn serialize_errors<S: serde::Serializer>(errors: &[PluginHostError], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(errors.iter().map(|e| e.to_string()))
}

/// One step of `obra plugin check`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckStep {
    /// `manifest`, `sha256`, `component`, `imports`, `exports`, `compile`, `link`.
    pub step: &'static str,
    /// Whether it passed.
    pub ok: bool,
    /// What was found, or what is wrong and what to do.
    pub detail: String,
}

/// The result of `obra plugin check <path>`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckReport {
    /// The path checked.
    pub path: PathBuf,
    /// The plugin's name, once the manifest parsed.
    pub name: Option<String>,
    /// Its kind, once the manifest parsed.
    pub kind: Option<PluginKind>,
    /// Every step run, in order (a failed step stops the ones that depend on it).
    pub steps: Vec<CheckStep>,
    /// The effective grant under the current config, once the manifest parsed.
    pub grant: Option<GrantSummary>,
    /// Whether every step passed.
    pub ok: bool,
}
