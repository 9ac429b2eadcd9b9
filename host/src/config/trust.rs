//! Trust in a project's capability grants and plugin pins (ADR 34).
//!
//! `plugins.grants` and `plugins.pins` decide what the sandboxed plugins may do. A file inside the project's
//! workspace (`.obra/config.yaml`, or a profile file kept there) can be written by the agent Obra supervises,
//! so the grants and pins such a file names are honoured only after the user approved that exact content
//! with `obra config trust` (like `direnv allow`). The approval — the project root and the sha256 of the
//! canonical grants and pins — is kept outside the workspace, in the user's data directory
//! (`$XDG_DATA_HOME/obra/trusted-projects.json`, or `~/.local/share/obra/`). Grants and pins of the built-in
//! defaults, the user's config, the environment and `--set` need no approval.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use serde_yaml::Value;
use sha2::{Digest, Sha256};

use super::layers::{Layer, LayerSource};
use super::{ConfigError, LoadedConfig, resolve};

/// The keys of `plugins:` that only trusted layers may set.
pub const POLICY_KEYS: &[&str] = &["grants", "pins"];

/// The grants and pins that layers inside a project's workspace set, in canonical form.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectPolicy {
    /// The project root the policy belongs to (canonical when it exists).
    pub root: PathBuf,
    /// Each workspace layer that sets grants or pins: its file and its `plugins.grants` / `plugins.pins`.
    pub layers: Vec<PolicyLayer>,
    /// sha256 of the canonical JSON of `layers` (paths relative to the root).
    pub sha256: String,
}

/// The grants and pins of one layer whose file is inside the workspace.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyLayer {
    /// The file.
    pub file: PathBuf,
    /// Its `plugins.grants`, if it sets any.
    pub grants: Option<Value>,
    /// Its `plugins.pins`, if it sets any.
    pub pins: Option<Value>,
}

/// Whether a project's grants and pins may be used.
#[derive(Debug, Clone, PartialEq)]
pub enum TrustStatus {
    /// No layer inside the workspace sets grants or pins: nothing to approve.
    NotNeeded,
    /// The user approved exactly this content.
    Trusted(ProjectPolicy),
    /// Never approved.
    Untrusted(ProjectPolicy),
    /// Approved once, but the content changed since (`approved_at` is when).
    Changed(ProjectPolicy, String),
}

impl TrustStatus {
    /// Whether the project's grants and pins may be honoured.
    pub fn is_trusted(&self) -> bool {
        matches!(self, Self::NotNeeded | Self::Trusted(_))
    }

    /// One line for `obra config show` and `obra doctor`.
    pub fn summary(&self) -> String {
        match self {
            Self::NotNeeded => "the project config grants nothing and pins nothing (nothing to approve)".into(),
            Self::Trusted(p) => format!("the project's grants and pins are trusted (sha256 {})", short(&p.sha256)),
            Self::Untrusted(p) => format!(
                "the project's grants and pins (in {}) are NOT trusted: run `obra config trust` after reviewing them",
                p.files()
            ),
            Self::Changed(p, at) => format!(
                "the project's grants and pins (in {}) changed since you trusted them on {at}: run `obra config \
                 trust` after reviewing them",
                p.files()
            ),
        }
    }

    /// The error that refuses a run, listing what the project grants and how to approve it; `None` when the
    /// grants may be used.
    pub fn refusal(&self) -> Option<String> {
        let (policy, why) = match self {
            Self::NotNeeded | Self::Trusted(_) => return None,
            Self::Untrusted(p) => (p, "you have not approved them".to_string()),
            Self::Changed(p, at) => (p, format!("they changed since you approved them on {at}")),
        };
        Some(format!(
            "the project configuration grants capabilities or pins plugins, and {why}. Files inside the workspace \
             can be written by the agent, so their grants count only once you approve them.\n{}\nReview this, \
             then approve exactly this content with `obra config trust` (in {}), or move the grants to your user \
             config ({}).",
            policy.describe(),
            policy.root.display(),
            dirs::config_dir()
                .map(|d| d.join("obra").join("config.yaml").display().to_string())
                .unwrap_or_else(|| "~/.config/obra/config.yaml".into())
        ))
    }
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

impl ProjectPolicy {
    /// The files, comma-separated.
    pub fn files(&self) -> String {
        self.layers.iter().map(|l| l.file.display().to_string()).collect::<Vec<_>>().join(", ")
    }

    /// What each file grants and pins, as indented YAML.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for layer in &self.layers {
            out.push_str(&format!("  {}:\n", layer.file.display()));
            for (key, value) in [("grants", &layer.grants), ("pins", &layer.pins)] {
                if let Some(value) = value {
                    let yaml = serde_yaml::to_string(value).unwrap_or_default();
                    out.push_str(&format!("    plugins.{key}:\n"));
                    for line in yaml.lines() {
                        out.push_str(&format!("      {line}\n"));
                    }
                }
            }
        }
        out.trim_end().to_string()
    }
}

/// Whether `file` lies inside the project at `root` (compared canonically when both exist).
fn inside(file: &Path, root: &Path) -> bool {
    let canon = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    let file = match file.parent() {
        Some(parent) => canon(parent).join(file.file_name().unwrap_or_default()),
        None => file.to_path_buf(),
    };
    file.starts_with(canon(root))
}

/// Whether a layer's file is inside the workspace at `root`, where the agent can write it.
fn is_workspace_layer(source: &LayerSource, root: &Path) -> bool {
    match source {
        LayerSource::Project(_) => true,
        LayerSource::Profile(_, Some(path)) | LayerSource::User(path) => inside(path, root),
        _ => false,
    }
}

fn plugins_key<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    value.get("plugins").and_then(|p| p.get(key)).filter(|v| !v.is_null())
}

/// The grants and pins the workspace layers of `loaded` set, or `None` when they set none.
pub fn project_policy(loaded: &LoadedConfig, root: &Path) -> Option<ProjectPolicy> {
    let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    let mut layers = Vec::new();
    for layer in &loaded.layers {
        if !is_workspace_layer(&layer.source, &root) {
            continue;
        }
        let (grants, pins) = (plugins_key(&layer.value, "grants").cloned(), plugins_key(&layer.value, "pins").cloned());
        if grants.is_none() && pins.is_none() {
            continue;
        }
        let file = match &layer.source {
            LayerSource::Project(p) | LayerSource::User(p) | LayerSource::Profile(_, Some(p)) => p.clone(),
            _ => continue,
        };
        layers.push(PolicyLayer { file, grants, pins });
    }
    if layers.is_empty() {
        return None;
    }
    let canonical: Vec<serde_json::Value> = layers
        .iter()
        .map(|l| {
            let rel = l.file.strip_prefix(&root).unwrap_or(&l.file);
            serde_json::json!({
                "file": rel.display().to_string(),
                "grants": l.grants.as_ref().map(canonical_json),
                "pins": l.pins.as_ref().map(canonical_json),
            })
        })
        .collect();
    let text = serde_json::to_string(&canonical_json_value(&serde_json::Value::Array(canonical))).unwrap_or_default();
    let sha256 = hex::encode(Sha256::digest(text.as_bytes()));
    Some(ProjectPolicy { root, layers, sha256 })
}

/// YAML as JSON with every mapping's keys sorted, so key order and formatting do not change the hash.
pub fn canonical_json(value: &Value) -> serde_json::Value {
    let json = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
    canonical_json_value(&json)
}

fn canonical_json_value(value: &serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let sorted: BTreeMap<&String, serde_json::Value> =
                map.iter().map(|(k, v)| (k, canonical_json_value(v))).collect();
            let mut out = serde_json::Map::new();
            for (k, v) in sorted {
                out.insert(k.clone(), v);
            }
            serde_json::Value::Object(out)
        }
        serde_json::Value::Array(items) => serde_json::Value::Array(items.iter().map(canonical_json_value).collect()),
        other => other.clone(),
    }
}

/// `loaded` without the grants and pins of its workspace layers: what the plugin host may use while the
/// project's policy is not trusted.
pub fn without_workspace_policy(loaded: &LoadedConfig, root: &Path) -> Result<LoadedConfig, ConfigError> {
    let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    let layers: Vec<Layer> = loaded
        .layers
        .iter()
        .map(|layer| {
            let mut layer = layer.clone();
            if is_workspace_layer(&layer.source, &root)
                && let Some(plugins) = layer.value.get_mut("plugins").and_then(Value::as_mapping_mut)
            {
                for key in POLICY_KEYS {
                    plugins.remove(*key);
                }
            }
            layer
        })
        .collect();
    resolve(layers)
}

/// One approval: the sha256 of the canonical grants and pins, and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    /// sha256 of the approved content.
    pub sha256: String,
    /// When it was approved (RFC 3339, UTC).
    pub approved_at: String,
    /// The files the approved content came from, for people reading the store.
    #[serde(default)]
    pub files: Vec<String>,
}

/// The approvals of one user, by project root; kept outside every workspace.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrustStore {
    /// Format version (1).
    #[serde(default = "one")]
    pub version: u32,
    /// Project root -> approval.
    #[serde(default)]
    pub projects: BTreeMap<String, Approval>,
}

fn one() -> u32 {
    1
}

impl TrustStore {
    /// The store's file: `$XDG_DATA_HOME/obra/trusted-projects.json` (or `~/.local/share/obra/...`).
    pub fn default_path() -> Result<PathBuf> {
        let base = dirs::data_dir().context("cannot find the user's data directory (set HOME or XDG_DATA_HOME)")?;
        Ok(base.join("obra").join("trusted-projects.json"))
    }

    /// Read the store at `path`; a missing file is an empty store, an unreadable or corrupt one an error that
    /// says what to do (it is never overwritten silently).
    pub fn read(path: &Path) -> Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text).with_context(|| {
                format!(
                    "the trust store {} is not valid JSON; fix it or delete it (then approve your projects again \
                     with `obra config trust`)",
                    path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read the trust store {}", path.display())),
        }
    }

    /// Write the store to `path` atomically (a temporary file renamed over it).
    pub fn write(&self, path: &Path) -> Result<()> {
        let dir = path.parent().context("the trust store path has no directory")?;
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let tmp = tempfile::NamedTempFile::new_in(dir).with_context(|| format!("cannot write in {}", dir.display()))?;
        std::fs::write(tmp.path(), serde_json::to_string_pretty(self)? + "\n")
            .with_context(|| format!("cannot write {}", tmp.path().display()))?;
        tmp.persist(path).with_context(|| format!("cannot replace {}", path.display()))?;
        Ok(())
    }

    /// The status of `policy` (or of a project whose workspace sets no grants or pins).
    pub fn status(&self, policy: Option<ProjectPolicy>) -> TrustStatus {
        let Some(policy) = policy else { return TrustStatus::NotNeeded };
        match self.projects.get(&policy.root.display().to_string()) {
            Some(a) if a.sha256 == policy.sha256 => TrustStatus::Trusted(policy),
            Some(a) => {
                let at = a.approved_at.clone();
                TrustStatus::Changed(policy, at)
            }
            None => TrustStatus::Untrusted(policy),
        }
    }

    /// Record the user's approval of `policy`.
    pub fn approve(&mut self, policy: &ProjectPolicy) {
        let approved_at = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        let files = policy.layers.iter().map(|l| l.file.display().to_string()).collect();
        self.projects
            .insert(policy.root.display().to_string(), Approval { sha256: policy.sha256.clone(), approved_at, files });
    }

    /// Forget the approval of the project at `root`; whether there was one.
    pub fn revoke(&mut self, root: &Path) -> bool {
        let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
        self.projects.remove(&root.display().to_string()).is_some()
    }
}

/// The trust status of the project at `root` under `loaded`, read from the user's trust store.
pub fn status_of(loaded: &LoadedConfig, root: &Path) -> Result<TrustStatus> {
    let policy = project_policy(loaded, root);
    if policy.is_none() {
        return Ok(TrustStatus::NotNeeded);
    }
    Ok(TrustStore::read(&TrustStore::default_path()?)?.status(policy))
}

/// Approve the grants and pins `loaded` takes from the workspace at `root`; the approved policy, or `None`
/// when there is nothing to approve.
pub fn approve(loaded: &LoadedConfig, root: &Path) -> Result<Option<ProjectPolicy>> {
    let Some(policy) = project_policy(loaded, root) else { return Ok(None) };
    let path = TrustStore::default_path()?;
    let mut store = TrustStore::read(&path)?;
    if path.starts_with(&policy.root) {
        bail!(
            "the trust store {} would be inside the project's workspace, where the agent can write it; set \
             XDG_DATA_HOME to a directory outside {}",
            path.display(),
            policy.root.display()
        );
    }
    store.approve(&policy);
    store.write(&path)?;
    Ok(Some(policy))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ConfigSources, load};

    /// A project at `<tmp>/p` with `project` as its `.obra/config.yaml` and `user` as the user's config (kept
    /// outside the project).
    fn loaded(tmp: &Path, project: &str, user: &str) -> (PathBuf, LoadedConfig) {
        let root = tmp.join("p");
        std::fs::create_dir_all(root.join(".obra")).unwrap();
        std::fs::write(root.join(".obra/config.yaml"), project).unwrap();
        std::fs::write(tmp.join("user.yaml"), user).unwrap();
        let sources = ConfigSources {
            project_root: Some(root.clone()),
            user_file: Some(tmp.join("user.yaml")),
            ..Default::default()
        };
        (root, load(&sources).unwrap())
    }

    const GRANT: &str =
        "plugins:\n  grants:\n    command:\n      commands: [{program: a, args: [\"**\"]}]\n      env: [PATH, HOME]\n";

    #[test]
    fn the_hash_is_of_the_content_not_its_formatting_and_only_workspace_layers_count() {
        let tmp = tempfile::tempdir().unwrap();
        let (root, config) = loaded(tmp.path(), GRANT, "");
        let policy = project_policy(&config, &root).unwrap();
        assert_eq!(policy.layers.len(), 1);
        assert!(policy.describe().contains("program: a"), "{}", policy.describe());

        let reformatted = "# a comment\nplugins:\n  grants:\n    command:\n      env: [PATH, HOME]\n      commands:\n        - program: a\n          args: ['**']\n";
        let (_, same) = loaded(tmp.path(), reformatted, "");
        assert_eq!(project_policy(&same, &root).unwrap().sha256, policy.sha256, "key order, style and comments");

        let (_, widened) = loaded(tmp.path(), &GRANT.replace("HOME", "HOME, AWS_SECRET"), "");
        assert_ne!(project_policy(&widened, &root).unwrap().sha256, policy.sha256);
        let (_, pinned) = loaded(tmp.path(), &format!("{GRANT}  pins:\n    command: \"{}\"\n", "a".repeat(64)), "");
        assert_ne!(project_policy(&pinned, &root).unwrap().sha256, policy.sha256, "pins count too");

        let (_, in_user) = loaded(tmp.path(), "llm:\n  provider: none\n", GRANT);
        assert!(project_policy(&in_user, &root).is_none(), "the user's grants need no approval");
    }

    #[test]
    fn approval_covers_exactly_the_approved_content_until_revoked() {
        let tmp = tempfile::tempdir().unwrap();
        let (root, config) = loaded(tmp.path(), GRANT, "");
        let mut store = TrustStore::default();
        assert!(matches!(store.status(project_policy(&config, &root)), TrustStatus::Untrusted(_)));
        assert!(store.status(None).is_trusted(), "nothing to approve");

        store.approve(&project_policy(&config, &root).unwrap());
        let path = tmp.path().join("data/obra/trusted-projects.json");
        store.write(&path).unwrap();
        let store = TrustStore::read(&path).unwrap();
        assert!(matches!(store.status(project_policy(&config, &root)), TrustStatus::Trusted(_)));

        let (_, changed) = loaded(tmp.path(), &GRANT.replace("HOME", "HOME, AWS_SECRET"), "");
        let status = store.status(project_policy(&changed, &root));
        assert!(matches!(status, TrustStatus::Changed(..)), "{status:?}");
        let refusal = status.refusal().unwrap();
        assert!(refusal.contains("AWS_SECRET") && refusal.contains("obra config trust"), "{refusal}");

        let mut store = store;
        assert!(store.revoke(&root));
        assert!(matches!(store.status(project_policy(&config, &root)), TrustStatus::Untrusted(_)));
    }

    #[test]
    fn untrusted_workspace_grants_are_left_out_and_the_users_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let user = "plugins:\n  grants:\n    tests:\n      env: [PATH]\n";
        let (root, config) = loaded(tmp.path(), &format!("{GRANT}engine:\n  max_iterations: 7\n"), user);
        assert_eq!(config.config.plugins.grants["command"].commands.len(), 1);
        let without = without_workspace_policy(&config, &root).unwrap();
        assert!(without.config.plugins.grants["command"].commands.is_empty(), "back to the default grant");
        assert_eq!(without.config.plugins.grants["tests"].env, ["PATH"], "the user's grant stays");
        assert_eq!(without.config.engine.max_iterations, 7, "the rest of the project config stays");
    }

    #[test]
    fn a_corrupt_store_is_an_error_that_says_what_to_do_and_is_not_overwritten() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("trusted-projects.json");
        std::fs::write(&path, "{ not json").unwrap();
        let e = format!("{:#}", TrustStore::read(&path).unwrap_err());
        assert!(e.contains("not valid JSON") && e.contains("obra config trust"), "{e}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{ not json");
        assert_eq!(TrustStore::read(&tmp.path().join("missing.json")).unwrap(), TrustStore::default());
    }
}
