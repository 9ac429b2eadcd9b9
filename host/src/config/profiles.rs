//! Profiles: partial configurations for common kinds of project, built in (`profiles/*.yaml`) or the user's
//! (`~/.config/obra/profiles/NAME.yaml`, which overrides a built-in profile of the same name).

use std::path::PathBuf;

use serde::Serialize;

use super::layers::{ConfigError, Layer, LayerSource, closest};
use super::provenance::{self, ResolvedKey};
use super::{BUILTIN_PROFILES, ConfigSources, DEFAULT_YAML};

/// Where a profile is defined.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", content = "path", rename_all = "snake_case")]
pub enum ProfileOrigin {
    /// Shipped in the binary (`profiles/NAME.yaml` of Obra's sources).
    BuiltIn,
    /// A file in the user's profile directory.
    User(PathBuf),
}

/// A profile as `obra profile list|show` describe it.
#[derive(Debug, Clone)]
pub struct ProfileInfo {
    /// Its name (the file name without `.yaml`).
    pub name: String,
    /// Where it is defined.
    pub origin: ProfileOrigin,
    /// Whether it is a user profile that replaces a built-in profile of the same name.
    pub overrides_builtin: bool,
    /// Its YAML text (empty when the file cannot be read).
    pub yaml: String,
    /// Why it cannot be used, with file and line, if it is invalid.
    pub error: Option<ConfigError>,
}

/// A key a profile changes: its value under the profile and its default.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProfileChange {
    /// Dotted path.
    pub key: String,
    /// The value with the profile applied.
    pub value: serde_json::Value,
    /// The value of `config/default.yaml`, if it has the key.
    pub default: Option<serde_json::Value>,
}

impl ProfileInfo {
    /// The layer source this profile is loaded as.
    pub fn source(&self) -> LayerSource {
        match &self.origin {
            ProfileOrigin::BuiltIn => LayerSource::Profile(self.name.clone(), None),
            ProfileOrigin::User(path) => LayerSource::Profile(self.name.clone(), Some(path.clone())),
        }
    }

    /// The profile as a checked layer: its keys and types, and its values on top of the defaults.
    pub fn layer(&self) -> Result<Layer, ConfigError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let layer = Layer::parse(self.source(), &self.yaml)?;
        super::resolve(vec![Layer::parse(LayerSource::Default, DEFAULT_YAML)?, layer.clone()])?;
        Ok(layer)
    }

    /// The keys whose resolved value differs from the default when this profile is applied to the defaults.
    pub fn changes(&self) -> Result<Vec<ProfileChange>, ConfigError> {
        let default = Layer::parse(LayerSource::Default, DEFAULT_YAML)?;
        let defaults = provenance::resolve(std::slice::from_ref(&default), super::embedded_defaults());
        let loaded = super::resolve(vec![default, self.layer()?])?;
        Ok(loaded
            .provenance()
            .into_iter()
            .filter(|k| matches!(k.source, LayerSource::Profile(..)))
            .filter_map(|ResolvedKey { key, value, .. }| {
                let default = defaults.iter().find(|d| d.key == key).map(|d| d.value.clone());
                (default.as_ref() != Some(&value)).then_some(ProfileChange { key, value, default })
            })
            .collect())
    }
}

/// The user's profile directory: `profiles/` next to the user's config file (normally
/// `~/.config/obra/profiles`).
pub fn user_profiles_dir(sources: &ConfigSources) -> Option<PathBuf> {
    sources.user_file().and_then(|f| f.parent().map(|p| p.join("profiles")))
}

/// Every profile: the built-ins, then the user's (sorted by name); a user profile with a built-in's name
/// replaces it in place. Invalid user profiles are listed with their error, never left out.
pub fn list_profiles(sources: &ConfigSources) -> Vec<ProfileInfo> {
    let mut list: Vec<ProfileInfo> = BUILTIN_PROFILES
        .iter()
        .map(|(name, yaml)| ProfileInfo {
            name: name.to_string(),
            origin: ProfileOrigin::BuiltIn,
            overrides_builtin: false,
            yaml: yaml.to_string(),
            error: None,
        })
        .collect();
    for user in user_profiles(sources) {
        match list.iter_mut().find(|p| p.name == user.name) {
            Some(builtin) => *builtin = ProfileInfo { overrides_builtin: true, ..user },
            None => list.push(user),
        }
    }
    // Check every profile as it would be used, so a broken one is reported when listed.
    for p in &mut list {
        if p.error.is_none()
            && let Err(e) = p.layer()
        {
            p.error = Some(e);
        }
    }
    list
}

fn user_profiles(sources: &ConfigSources) -> Vec<ProfileInfo> {
    let Some(dir) = user_profiles_dir(sources) else { return Vec::new() };
    let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .filter_map(|path| {
            let name = path.file_stem()?.to_string_lossy().into_owned();
            let (yaml, error) = match std::fs::read_to_string(&path) {
                Ok(text) => (text, None),
                Err(e) => (
                    String::new(),
                    Some(ConfigError::Unreadable { path: path.display().to_string(), message: e.to_string() }),
                ),
            };
            let overrides_builtin = BUILTIN_PROFILES.iter().any(|(n, _)| *n == name);
            Some(ProfileInfo { name, origin: ProfileOrigin::User(path), overrides_builtin, yaml, error })
        })
        .collect()
}

/// The profile called `name` (a user profile first, then a built-in one); an unknown name is an error naming
/// the closest profile and listing them all.
pub fn find_profile(sources: &ConfigSources, name: &str) -> Result<ProfileInfo, ConfigError> {
    let list = list_profiles(sources);
    if let Some(p) = list.iter().find(|p| p.name == name) {
        return Ok(p.clone());
    }
    let names: Vec<&str> = list.iter().map(|p| p.name.as_str()).collect();
    Err(ConfigError::UnknownProfile {
        name: name.to_string(),
        suggestion: closest(name, names.iter().copied()),
        available: names.join(", "),
    })
}
