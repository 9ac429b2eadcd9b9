//! Layered configuration: the embedded `config/default.yaml` < profile < project `.obra/config.yaml`
//! < user `~/.config/obra/config.yaml` < environment (`OBRA_SECTION__KEY`) < `--set section.key=value`.
//!
//! `config/default.yaml` is the one source of defaults: the typed structs below take their `Default` from
//! it. Each layer is checked on its own, so an error names the file (or variable), the line, the key and
//! the closest valid key; then the layers are merged (maps key by key, everything else replaced) and the
//! result is checked for values out of range.

mod layers;
mod profiles;
mod provenance;
mod reload;
pub mod trust;
mod types;

pub use layers::{ConfigError, Layer, LayerSource};
pub use profiles::{ProfileChange, ProfileInfo, ProfileOrigin, find_profile, list_profiles, user_profiles_dir};
pub use provenance::{ResolvedKey, select};
pub use reload::{ConfigReloader, ReloadOutcome, changed_keys, live_part, needs_restart};
pub use trust::{TrustStatus, TrustStore};
pub use types::*;

use std::path::{Path, PathBuf};

use anyhow::Result;

/// The embedded default configuration (`config/default.yaml`).
pub const DEFAULT_YAML: &str = include_str!("../../../config/default.yaml");

/// The profiles shipped in `profiles/`, embedded: (name, YAML).
pub const BUILTIN_PROFILES: &[(&str, &str)] = &[
    ("minimal", include_str!("../../../profiles/minimal.yaml")),
    ("python_project", include_str!("../../../profiles/python_project.yaml")),
    ("web_app", include_str!("../../../profiles/web_app.yaml")),
    ("ml_project", include_str!("../../../profiles/ml_project.yaml")),
    ("microservice", include_str!("../../../profiles/microservice.yaml")),
    ("production", include_str!("../../../profiles/production.yaml")),
];

/// Where to look for the layers of one configuration.
#[derive(Debug, Clone, Default)]
pub struct ConfigSources {
    /// The profile to apply (`--profile`), if any.
    pub profile: Option<String>,
    /// The project root (the directory holding `.obra/`), if there is a project.
    pub project_root: Option<PathBuf>,
    /// The user's config file; none for `~/.config/obra/config.yaml`.
    pub user_file: Option<PathBuf>,
    /// Environment variables to read `OBRA_SECTION__KEY` overrides from (normally `std::env::vars()`).
    pub env: Vec<(String, String)>,
    /// `--set key=value` overrides, in order.
    pub sets: Vec<String>,
}

impl ConfigSources {
    /// Sources for a command run in `project_root` with the process environment.
    pub fn from_process(project_root: Option<PathBuf>, profile: Option<String>, sets: Vec<String>) -> Self {
        Self { profile, project_root, user_file: None, env: std::env::vars().collect(), sets }
    }

    /// The user's config file path.
    pub fn user_file(&self) -> Option<PathBuf> {
        self.user_file.clone().or_else(|| dirs::config_dir().map(|d| d.join("obra").join("config.yaml")))
    }

    /// The files these sources read, whether they exist or not: the user profile file (when a profile is
    /// named), the project's `.obra/config.yaml` and the user's config file.
    pub fn files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        if let (Some(name), Some(dir)) = (&self.profile, user_profiles_dir(self)) {
            files.push(dir.join(format!("{name}.yaml")));
        }
        if let Some(root) = &self.project_root {
            files.push(root.join(".obra").join("config.yaml"));
        }
        if let Some(user) = self.user_file() {
            files.push(user);
        }
        files
    }
}

/// A resolved configuration and the layers it came from.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The merged, checked configuration.
    pub config: Config,
    /// The layers that were found, lowest first.
    pub layers: Vec<Layer>,
}

/// Load and check every layer, then merge them.
pub fn load(sources: &ConfigSources) -> Result<LoadedConfig, ConfigError> {
    let mut layers = vec![Layer::parse(LayerSource::Default, DEFAULT_YAML)?];
    if let Some(name) = &sources.profile {
        layers.push(profile_layer(name, sources)?);
    }
    if let Some(root) = &sources.project_root {
        let path = root.join(".obra").join("config.yaml");
        if let Some(layer) = Layer::read_file(LayerSource::Project(path))? {
            layers.push(layer);
        }
    }
    if let Some(path) = sources.user_file()
        && let Some(layer) = Layer::read_file(LayerSource::User(path))?
    {
        layers.push(layer);
    }
    for (name, value) in &sources.env {
        if let Some(layer) = Layer::from_env(name, value)? {
            layers.push(layer);
        }
    }
    for set in &sources.sets {
        layers.push(Layer::from_set(set)?);
    }
    resolve(layers)
}

/// Merge checked layers (lowest first) and check the result as a whole.
fn resolve(layers: Vec<Layer>) -> Result<LoadedConfig, ConfigError> {
    let merged = layers::merge(&layers);
    let config: Config = serde_yaml::from_value(merged)
        .map_err(|e| ConfigError::Invalid { source_name: "the merged configuration".into(), message: e.to_string() })?;
    config.check()?;
    Ok(LoadedConfig { config, layers })
}

/// Check one file as a project-style layer (`.obra/config.yaml`) on top of the defaults alone: its keys,
/// types and, merged with the defaults, its values. A missing file is an error too.
pub fn validate_file(path: &Path) -> Result<LoadedConfig, ConfigError> {
    let default = Layer::parse(LayerSource::Default, DEFAULT_YAML)?;
    let layer = Layer::read_file(LayerSource::Project(path.to_path_buf()))?
        .ok_or_else(|| ConfigError::Unreadable { path: path.display().to_string(), message: "no such file".into() })?;
    resolve(vec![default, layer])
}

impl LoadedConfig {
    /// Every resolved key with its value and the layer it came from, in the order of `config/default.yaml`.
    pub fn provenance(&self) -> Vec<ResolvedKey> {
        provenance::resolve(&self.layers, &self.config)
    }
}

fn profile_layer(name: &str, sources: &ConfigSources) -> Result<Layer, ConfigError> {
    if let Some(dir) = user_profiles_dir(sources) {
        let path = dir.join(format!("{name}.yaml"));
        if let Some(layer) = Layer::read_file(LayerSource::Profile(name.to_string(), Some(path)))? {
            return Ok(layer);
        }
    }
    match BUILTIN_PROFILES.iter().find(|(n, _)| *n == name) {
        Some((_, yaml)) => Layer::parse(LayerSource::Profile(name.to_string(), None), yaml),
        None => find_profile(sources, name).and_then(|p| p.layer()),
    }
}

/// Find the project root: the nearest directory at or above `start` that holds `.obra/`.
pub fn find_project_root(start: &Path) -> Option<PathBuf> {
    start.ancestors().find(|dir| dir.join(".obra").is_dir()).map(Path::to_path_buf)
}

#[cfg(test)]
mod tests;
