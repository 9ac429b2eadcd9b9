//! Provenance: for every key of a resolved configuration, the layer its value came from.
//!
//! The layers are merged again, this time remembering for each node of the tree which layer set it last:
//! the leaves of mappings get their own origin, while a list (`gates`, `rules`, ...) or any other non-mapping
//! value is replaced wholesale by a higher layer and so has one origin.

use serde::Serialize;
use serde_yaml::Value;

use super::layers::{ConfigError, Layer, LayerSource, closest};
use super::types::Config;

/// One resolved key: its dotted path, its value and the layer it came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResolvedKey {
    /// Dotted path, e.g. `engine.decision.proceed_threshold`.
    pub key: String,
    /// The resolved value.
    pub value: serde_json::Value,
    /// The layer that set it.
    #[serde(serialize_with = "as_text")]
    pub source: LayerSource,
}

impl ResolvedKey {
    /// The value as one line of JSON (strings quoted), for text output.
    pub fn value_text(&self) -> String {
        self.value.to_string()
    }
}

fn as_text<S: serde::Serializer>(source: &LayerSource, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(source)
}

/// A merged tree that remembers which layer (by index) set each node.
enum Node {
    Leaf(Value, usize),
    Map(Vec<(String, Node)>, usize),
}

impl Node {
    fn from_value(value: &Value, origin: usize) -> Node {
        match value {
            Value::Mapping(map) => {
                Node::Map(map.iter().map(|(k, v)| (key_text(k), Node::from_value(v, origin))).collect(), origin)
            }
            other => Node::Leaf(other.clone(), origin),
        }
    }

    /// The same rule as `layers::merge`: mappings merge key by key, anything else replaces.
    fn merge(&mut self, over: &Value, origin: usize) {
        match (&mut *self, over) {
            (Node::Map(children, _), Value::Mapping(map)) => {
                for (k, v) in map {
                    let k = key_text(k);
                    match children.iter_mut().find(|(name, _)| *name == k) {
                        Some((_, child)) => child.merge(v, origin),
                        None => children.push((k, Node::from_value(v, origin))),
                    }
                }
            }
            (node, over) => *node = Node::from_value(over, origin),
        }
    }

    fn flatten(&self, prefix: &str, out: &mut Vec<(String, Value, usize)>) {
        match self {
            Node::Leaf(v, origin) => out.push((prefix.to_string(), v.clone(), *origin)),
            Node::Map(children, origin) if children.is_empty() => {
                out.push((prefix.to_string(), Value::Mapping(Default::default()), *origin))
            }
            Node::Map(children, _) => {
                for (k, child) in children {
                    let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    child.flatten(&path, out);
                }
            }
        }
    }
}

fn key_text(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        other => serde_yaml::to_string(other).map(|s| s.trim().to_string()).unwrap_or_default(),
    }
}

/// Every resolved key of `config` (merged from `layers`, lowest first) with the layer it came from, in the
/// order of `config/default.yaml`. Entries of `gates` and `rules` show every field, defaults included.
pub fn resolve(layers: &[Layer], config: &Config) -> Vec<ResolvedKey> {
    let mut root = Node::Map(Vec::new(), 0);
    for (i, layer) in layers.iter().enumerate() {
        root.merge(&layer.value, i);
    }
    let mut flat = Vec::new();
    root.flatten("", &mut flat);
    flat.into_iter()
        .map(|(key, mut value, origin)| {
            let typed = match key.as_str() {
                "gates" => serde_yaml::to_value(&config.gates).ok(),
                "rules" => serde_yaml::to_value(&config.rules).ok(),
                _ => None,
            };
            if let Some(typed) = typed {
                complete_entries(&mut value, &typed);
            }
            ResolvedKey {
                key,
                value: serde_json::to_value(&value).unwrap_or(serde_json::Value::Null),
                source: layers[origin].source.clone(),
            }
        })
        .collect()
}

/// Fill the fields a list entry left to its defaults (`enabled`, `weight`, ...) from the typed value, keeping
/// the fields the layer wrote as it wrote them.
fn complete_entries(raw: &mut Value, typed: &Value) {
    let (Value::Sequence(raw), Value::Sequence(typed)) = (raw, typed) else { return };
    for (entry, full) in raw.iter_mut().zip(typed) {
        if let (Value::Mapping(entry), Value::Mapping(full)) = (entry, full) {
            for (k, v) in full {
                if !entry.contains_key(k) {
                    entry.insert(k.clone(), v.clone());
                }
            }
        }
    }
}

/// The entries for `key`: the key itself, or every key under it when it is a section (`engine`,
/// `engine.retry`). An unknown key is an error naming the closest valid key or section.
pub fn select(entries: &[ResolvedKey], key: &str) -> Result<Vec<ResolvedKey>, ConfigError> {
    let key = key.trim().trim_end_matches('.');
    let prefix = format!("{key}.");
    let found: Vec<ResolvedKey> =
        entries.iter().filter(|e| e.key == key || e.key.starts_with(&prefix)).cloned().collect();
    if !found.is_empty() {
        return Ok(found);
    }
    let mut candidates: Vec<String> = Vec::new();
    for e in entries {
        let mut path = String::new();
        for part in e.key.split('.') {
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(part);
            if !candidates.contains(&path) {
                candidates.push(path.clone());
            }
        }
    }
    let sections: Vec<&str> = candidates.iter().filter(|c| !c.contains('.')).map(String::as_str).collect();
    Err(ConfigError::UnknownKey {
        source_name: "the configuration".into(),
        line: None,
        key: key.to_string(),
        suggestion: closest(key, candidates.iter().map(String::as_str)),
        expected: sections.join(", "),
    })
}
