//! Parsing a plugin's configuration section (JSON text from the host) into a typed struct.

use serde::de::DeserializeOwned;

use crate::PluginError;

/// Parse the configuration JSON the host passes to a plugin call into `T`.
///
/// Empty text (or only whitespace) is read as `{}`, so a plugin whose fields all have defaults works without a
/// config section. A bad config is a [`PluginError::Fatal`] whose message names the field, e.g.
/// ``invalid config: at `max_turns`: invalid type: string "ten", expected u32 (line 1, column 19)``. Derive
/// `Deserialize` with `#[serde(deny_unknown_fields)]` so that typos are caught as well.
///
/// ```
/// use serde::Deserialize;
///
/// #[derive(Deserialize)]
/// #[serde(deny_unknown_fields)]
/// struct Config {
///     #[serde(default = "default_threshold")]
///     threshold: f32,
/// }
/// fn default_threshold() -> f32 { 0.65 }
///
/// let cfg: Config = obra_plugin_sdk::config("{}").unwrap();
/// assert_eq!(cfg.threshold, 0.65);
///
/// let err = obra_plugin_sdk::config::<Config>(r#"{"threshold": "high"}"#).err().unwrap();
/// assert!(err.message().contains("`threshold`"), "{}", err.message());
/// ```
pub fn config<T: DeserializeOwned>(json: &str) -> Result<T, PluginError> {
    let text = if json.trim().is_empty() { "{}" } else { json };
    parse_json("config", text)
}

/// Parse JSON text into `T`; on failure a [`PluginError::Fatal`] that says what was being read (`what`) and
/// names the offending field by its path, like [`config`] does.
///
/// ```
/// let err = obra_plugin_sdk::parse_json::<Vec<u32>>("recording.json", "[1, \"2\"]").err().unwrap();
/// assert!(err.message().starts_with("invalid recording.json: at `[1]`"), "{}", err.message());
/// ```
pub fn parse_json<T: DeserializeOwned>(what: &str, text: &str) -> Result<T, PluginError> {
    serde_json::from_str(text).map_err(|err| PluginError::Fatal(describe_error(what, text, &err)))
}

/// Build the message for JSON that failed to deserialize, naming the field where the error is.
fn describe_error(what: &str, text: &str, err: &serde_json::Error) -> String {
    let full = err.to_string();
    let msg = strip_position(&full);
    if err.line() == 0 {
        return format!("invalid {what}: {msg}");
    }
    let offset = byte_offset(text, err.line(), err.column());
    let path = json_path_at(&text[..offset]);
    // `missing field` errors point at the end of the object: the path is the object, the message names the
    // field. For everything else the path names the offending field.
    let location = format!("line {}, column {}", err.line(), err.column());
    if path.is_empty() {
        format!("invalid {what}: {msg} ({location})")
    } else {
        format!("invalid {what}: at `{path}`: {msg} ({location})")
    }
}

/// serde_json appends " at line L column C"; we report the position ourselves.
fn strip_position(msg: &str) -> &str {
    match msg.rfind(" at line ") {
        Some(i) => &msg[..i],
        None => msg,
    }
}

/// Byte offset of (1-based line, 1-based column counted in bytes as serde_json does), clamped to the text.
fn byte_offset(text: &str, line: usize, column: usize) -> usize {
    let mut start = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            let mut off = (start + column).min(text.len());
            while !text.is_char_boundary(off) {
                off -= 1;
            }
            return off;
        }
        start += l.len();
    }
    text.len()
}

/// One level of nesting while scanning JSON text.
enum Level {
    /// Inside an object; the key most recently read, if any.
    Object(Option<String>),
    /// Inside an array; the index of the current element.
    Array(usize),
}

/// The path (`a.b[2].c`) of the value being read at the end of `prefix`, a prefix of a JSON document.
fn json_path_at(prefix: &str) -> String {
    let mut stack: Vec<Level> = Vec::new();
    let mut chars = prefix.chars().peekable();
    // Whether the last string read inside an object was a key (followed by ':') or a value.
    let mut expect_key = false;
    while let Some(c) = chars.next() {
        match c {
            '{' => {
                stack.push(Level::Object(None));
                expect_key = true;
            }
            '[' => {
                stack.push(Level::Array(0));
                expect_key = false;
            }
            '}' | ']' => {
                stack.pop();
                expect_key = false;
            }
            ',' => match stack.last_mut() {
                Some(Level::Array(i)) => *i += 1,
                Some(Level::Object(_)) => expect_key = true,
                None => {}
            },
            ':' => expect_key = false,
            '"' => {
                let mut s = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some(e) = chars.next() {
                                s.push(e);
                            }
                        }
                        '"' => break,
                        other => s.push(other),
                    }
                }
                if expect_key && let Some(Level::Object(key)) = stack.last_mut() {
                    *key = Some(s);
                }
            }
            _ => {}
        }
    }
    let mut path = String::new();
    for level in &stack {
        match level {
            Level::Object(Some(key)) => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
            }
            Level::Object(None) => {}
            Level::Array(i) => path.push_str(&format!("[{i}]")),
        }
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        num_ctx: u32,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Cfg {
        model: String,
        #[serde(default)]
        max_turns: Option<u32>,
        #[serde(default)]
        extra_args: Vec<String>,
        #[serde(default)]
        options: Option<Inner>,
    }

    fn err(json: &str) -> String {
        config::<Cfg>(json).unwrap_err().message().to_string()
    }

    #[test]
    fn wrong_type_names_the_field() {
        let m = err(r#"{"model": "m", "max_turns": "ten"}"#);
        assert!(m.starts_with("invalid config: at `max_turns`: invalid type"), "{m}");
    }

    #[test]
    fn nested_and_array_paths() {
        let m = err(r#"{"model": "m", "extra_args": ["a", 2]}"#);
        assert!(m.contains("at `extra_args[1]`"), "{m}");
        let m = err("{\"model\": \"m\",\n \"options\": {\"num_ctx\": -1}}");
        assert!(m.contains("at `options.num_ctx`"), "{m}");
        assert!(m.contains("line 2"), "{m}");
    }

    #[test]
    fn unknown_and_missing_fields() {
        let m = err(r#"{"model": "m", "max_turn": 3}"#);
        assert!(m.contains("unknown field `max_turn`"), "{m}");
        let m = err(r#"{"max_turns": 3}"#);
        assert!(m.contains("missing field `model`"), "{m}");
    }

    #[test]
    fn empty_text_is_an_empty_object_and_syntax_errors_are_reported() {
        #[derive(Deserialize)]
        struct AllDefault {
            #[serde(default)]
            #[allow(dead_code)]
            x: u32,
        }
        assert!(config::<AllDefault>("  ").is_ok());
        let m = err(r#"{"model": "m",,}"#);
        assert!(m.starts_with("invalid config:"), "{m}");
        assert_eq!(config::<Cfg>("{").unwrap_err().kind(), "fatal");
    }

    #[test]
    fn escaped_keys_and_strings_do_not_confuse_the_scanner() {
        let m = err(r#"{"model": "a \"quoted\" {[", "max_turns": true}"#);
        assert!(m.contains("at `max_turns`"), "{m}");
    }
}
