//! One configuration layer: where it came from, its YAML, and the checks that give precise errors.

use std::fmt;
use std::path::PathBuf;

use serde_yaml::{Mapping, Value};

use super::types::Config;

/// Where a layer came from.
#[derive(Debug, Clone, PartialEq)]
pub enum LayerSource {
    /// The embedded `config/default.yaml`.
    Default,
    /// A profile: its name and, for a user profile, its file.
    Profile(String, Option<PathBuf>),
    /// The project's `.obra/config.yaml`.
    Project(PathBuf),
    /// The user's `~/.config/obra/config.yaml`.
    User(PathBuf),
    /// An `OBRA_SECTION__KEY` environment variable.
    Env(String),
    /// A `--set key=value` argument.
    Set(String),
}

impl fmt::Display for LayerSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str("config/default.yaml (built in)"),
            Self::Profile(name, Some(path)) => write!(f, "profile {name} ({})", path.display()),
            Self::Profile(name, None) => write!(f, "profile {name} (built in)"),
            Self::Project(path) | Self::User(path) => write!(f, "{}", path.display()),
            Self::Env(name) => write!(f, "environment variable {name}"),
            Self::Set(arg) => write!(f, "--set {arg}"),
        }
    }
}

/// A configuration error, phrased for the user.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// A key that does not exist.
    #[error(
        "{source_name}{}: unknown key `{key}`{}",
        line.map(|l| format!(", line {l}")).unwrap_or_default(),
        suggestion.as_ref().map(|s| format!("; did you mean `{s}`?")).unwrap_or_else(|| format!("; valid keys here: {expected}"))
    )]
    UnknownKey {
        /// File or variable.
        source_name: String,
        /// 1-based line, when known.
        line: Option<usize>,
        /// The unknown key (with its section, when known).
        key: String,
        /// The closest valid key.
        suggestion: Option<String>,
        /// The valid keys at that place.
        expected: String,
    },
    /// A value of the wrong type or out of range, or YAML that does not parse.
    #[error("{source_name}: {message}")]
    Invalid {
        /// File or variable.
        source_name: String,
        /// What is wrong, with line and column when known.
        message: String,
    },
    /// A file that cannot be read.
    #[error("cannot read the config file {path}: {message}")]
    Unreadable {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// A profile that does not exist.
    #[error(
        "there is no profile named \"{name}\"{}; available: {available} (or add ~/.config/obra/profiles/{name}.yaml)",
        suggestion.as_ref().map(|s| format!(" (did you mean \"{s}\"?)")).unwrap_or_default()
    )]
    UnknownProfile {
        /// Requested name.
        name: String,
        /// Closest existing name.
        suggestion: Option<String>,
        /// All names.
        available: String,
    },
}

/// A parsed, checked layer.
#[derive(Debug, Clone)]
pub struct Layer {
    /// Where it came from.
    pub source: LayerSource,
    /// Its content.
    pub value: Value,
}

impl Layer {
    /// Parse YAML text as a layer and check its keys and types.
    pub fn parse(source: LayerSource, text: &str) -> Result<Self, ConfigError> {
        let value: Value = if text.trim().is_empty() {
            Value::Mapping(Mapping::new())
        } else {
            serde_yaml::from_str(text)
                .map_err(|e| ConfigError::Invalid { source_name: source.to_string(), message: e.to_string() })?
        };
        if value.is_null() {
            // Empty, or nothing but comments.
            return Ok(Self { source, value: Value::Mapping(Mapping::new()) });
        }
        if !value.is_mapping() {
            return Err(ConfigError::Invalid {
                source_name: source.to_string(),
                message: "the configuration must be a mapping of sections (e.g. `engine:`), not a list or a value"
                    .into(),
            });
        }
        // Check the layer on its own: the typed structs default every missing key, so what fails is what
        // this layer says. Deserialising from the text (not the Value) keeps line numbers.
        if !text.trim().is_empty() {
            if let Err(e) = serde_yaml::from_str::<Config>(text) {
                return Err(explain(&source, &e.to_string(), e.location().map(|l| l.line()), Some(text)));
            }
        } else if let Err(e) = serde_yaml::from_value::<Config>(value.clone()) {
            return Err(explain(&source, &e.to_string(), None, None));
        }
        Ok(Self { source, value })
    }

    /// Read a layer from a file; `Ok(None)` when the file does not exist.
    pub fn read_file(source: LayerSource) -> Result<Option<Self>, ConfigError> {
        let path = match &source {
            LayerSource::Project(p) | LayerSource::User(p) | LayerSource::Profile(_, Some(p)) => p.clone(),
            _ => unreachable!("read_file is only for file layers"),
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::parse(source, &text).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ConfigError::Unreadable { path: path.display().to_string(), message: e.to_string() }),
        }
    }

    /// A layer from an environment variable `OBRA_SECTION__KEY=value`; `Ok(None)` for other variables.
    pub fn from_env(name: &str, value: &str) -> Result<Option<Self>, ConfigError> {
        let Some(rest) = name.strip_prefix("OBRA_") else { return Ok(None) };
        if !rest.contains("__") {
            return Ok(None);
        }
        let path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
        let source = LayerSource::Env(name.to_string());
        Self::from_path(source, &path, value).map(Some)
    }

    /// A layer from a `--set section.key=value` argument.
    pub fn from_set(arg: &str) -> Result<Self, ConfigError> {
        let source = LayerSource::Set(arg.to_string());
        let Some((key, value)) = arg.split_once('=') else {
            return Err(ConfigError::Invalid {
                source_name: source.to_string(),
                message: "expected KEY=VALUE, e.g. --set engine.max_iterations=5".into(),
            });
        };
        let path: Vec<String> = key.trim().split('.').map(str::to_string).collect();
        if path.iter().any(String::is_empty) {
            return Err(ConfigError::Invalid {
                source_name: source.to_string(),
                message: format!("`{key}` is not a key path; use dots between sections, e.g. engine.max_iterations"),
            });
        }
        Self::from_path(source, &path, value)
    }

    fn from_path(source: LayerSource, path: &[String], raw: &str) -> Result<Self, ConfigError> {
        let leaf: Value = serde_yaml::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_string()));
        let mut value = leaf;
        for key in path.iter().rev() {
            let mut map = Mapping::new();
            map.insert(Value::String(key.clone()), value);
            value = Value::Mapping(map);
        }
        if let Err(e) = serde_yaml::from_value::<Config>(value.clone()) {
            let mut err = explain(&source, &e.to_string(), None, None);
            if let ConfigError::UnknownKey { key, .. } = &mut err {
                *key = path.join(".");
            }
            return Err(err);
        }
        Ok(Self { source, value })
    }
}

/// Turn a serde error into a precise `ConfigError`, finding the unknown key and the closest valid one.
fn explain(source: &LayerSource, message: &str, line: Option<usize>, text: Option<&str>) -> ConfigError {
    if let Some(start) = message.find("unknown field `") {
        let after = &message[start + "unknown field `".len()..];
        let key = after.split('`').next().unwrap_or_default().to_string();
        let expected: Vec<String> = after
            .split_once("expected")
            .map(|(_, list)| list.split('`').skip(1).step_by(2).map(str::to_string).collect())
            .unwrap_or_default();
        let section = message[..start].trim_end_matches(": ").trim();
        let full_key =
            if section.is_empty() || section.contains(' ') { key.clone() } else { format!("{section}.{key}") };
        // serde_yaml reports the line of the mapping; find the key's own line when the text is at hand.
        let line = text.and_then(|t| find_key_line(t, &key, line)).or(line);
        return ConfigError::UnknownKey {
            source_name: source.to_string(),
            line,
            key: full_key,
            suggestion: closest(&key, expected.iter().map(String::as_str)),
            expected: expected.join(", "),
        };
    }
    ConfigError::Invalid { source_name: source.to_string(), message: message.to_string() }
}

/// The 1-based line where `key:` appears, searching from `from_line` (serde's position) onwards.
fn find_key_line(text: &str, key: &str, from_line: Option<usize>) -> Option<usize> {
    let start = from_line.unwrap_or(1).saturating_sub(1);
    let is_key_line = |l: &str| {
        let t = l.trim_start().trim_start_matches("- ");
        t.strip_prefix(key).is_some_and(|rest| rest.trim_start().starts_with(':'))
    };
    let lines: Vec<&str> = text.lines().collect();
    (start..lines.len()).chain(0..start.min(lines.len())).find(|&i| is_key_line(lines[i])).map(|i| i + 1)
}

/// The candidate closest to `word`, if any is reasonably close.
pub fn closest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<String> {
    candidates
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score > 0.75)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c.to_string())
}

/// Merge layers, lowest first: mappings merge key by key, any other value replaces the lower one.
pub fn merge(layers: &[Layer]) -> Value {
    let mut merged = Value::Mapping(Mapping::new());
    for layer in layers {
        merge_into(&mut merged, &layer.value);
    }
    merged
}

fn merge_into(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Mapping(base), Value::Mapping(over)) => {
            for (k, v) in over {
                match base.get_mut(k) {
                    Some(existing) => merge_into(existing, v),
                    None => {
                        base.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (base, over) => *base = over.clone(),
    }
}
