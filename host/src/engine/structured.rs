//! Structured LLM replies: validate a reply against a JSON schema, repair what is safely repairable (and say
//! so), or reject it with an error that names the field and quotes the reply.
//!
//! The schema language is the subset Obra's own schemas use:
//! - `type`: `object`, `array`, `string`, `number`, `integer`, `boolean`, `null`, or a list of them;
//! - `properties`, `required`, `additionalProperties` (`true`, `false` or a schema) for objects;
//! - `items` (one schema) for arrays;
//! - `enum` (any JSON values), `minimum`/`maximum` for numbers, `minLength` for strings;
//! - `title` and `description` are allowed and ignored.
//!
//! Any other keyword makes [`Schema::new`] fail, so a schema never silently means less than it says.
//!
//! Repairs, each reported as a sentence: a Markdown code fence around the JSON; prose before or after it;
//! trailing commas; Python's `True`/`False`/`None`; a number or boolean sent as a string where the schema
//! wants a number or boolean; an integer-valued float where it wants an integer; a single value where it
//! wants an array of such values; a property the schema does not allow (`additionalProperties: false`),
//! dropped; an `enum` string in the wrong case. Nothing else is guessed: a missing required field, a value
//! out of range or of the wrong kind is an error.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// How many characters of the reply an error quotes.
const EXCERPT_CHARS: usize = 160;

/// A JSON schema in the supported subset (see the module documentation).
#[derive(Debug, Clone, PartialEq)]
pub struct Schema {
    root: Value,
}

/// A reply that conforms to the schema, possibly after repairs.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// The conforming value.
    pub value: Value,
    /// One sentence per repair made, in order; empty when the reply was valid as it came.
    pub repairs: Vec<String>,
}

/// Why a reply was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{problem}; the reply began {excerpt:?}")]
pub struct ReplyError {
    /// What is wrong, naming the field (`$.confidence`) where there is one.
    pub problem: String,
    /// The start of the reply as received.
    pub excerpt: String,
}

const KEYWORDS: &[&str] = &[
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "enum",
    "minimum",
    "maximum",
    "minLength",
    "title",
    "description",
];

impl Schema {
    /// Parse and check a schema given as JSON text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let value: Value = serde_json::from_str(text).map_err(|e| format!("the JSON schema is not JSON: {e}"))?;
        Self::new(value)
    }

    /// Check a schema: only the supported keywords, with values of the right kind.
    pub fn new(root: Value) -> Result<Self, String> {
        check_schema(&root, "$")?;
        Ok(Self { root })
    }

    /// The schema as JSON text, to send with a completion request.
    pub fn to_json(&self) -> String {
        self.root.to_string()
    }

    /// Validate `text` (an LLM's reply) against the schema, repairing what is safely repairable.
    pub fn parse_reply(&self, text: &str) -> Result<Parsed, ReplyError> {
        let reject = |problem: String| ReplyError { problem, excerpt: excerpt(text) };
        let mut repairs = Vec::new();
        let wants_array = self.root.get("type").and_then(Value::as_str) == Some("array");
        let (open, close) = if wants_array { ('[', ']') } else { ('{', '}') };
        let candidate = extract(text, open, close, &mut repairs).ok_or_else(|| {
            reject(format!("the reply holds no JSON {}", if wants_array { "array" } else { "object" }))
        })?;
        let mut value = match serde_json::from_str::<Value>(&candidate) {
            Ok(v) => v,
            Err(first) => {
                let (fixed, notes) = relax(&candidate);
                match serde_json::from_str::<Value>(&fixed) {
                    Ok(v) if !notes.is_empty() => {
                        repairs.extend(notes);
                        v
                    }
                    _ => return Err(reject(format!("the reply is not valid JSON ({first})"))),
                }
            }
        };
        conform(&self.root, &mut value, "$", &mut repairs).map_err(reject)?;
        Ok(Parsed { value, repairs })
    }

    /// [`Schema::parse_reply`], then deserialize into `T`.
    pub fn parse_as<T: DeserializeOwned>(&self, text: &str) -> Result<(T, Vec<String>), ReplyError> {
        let parsed = self.parse_reply(text)?;
        let typed = serde_json::from_value(parsed.value)
            .map_err(|e| ReplyError { problem: format!("the reply does not fit: {e}"), excerpt: excerpt(text) })?;
        Ok((typed, parsed.repairs))
    }
}

fn excerpt(text: &str) -> String {
    let t = text.trim();
    if t.chars().count() > EXCERPT_CHARS {
        t.chars().take(EXCERPT_CHARS).collect::<String>() + "..."
    } else {
        t.to_string()
    }
}

fn check_schema(s: &Value, at: &str) -> Result<(), String> {
    let Value::Object(map) = s else {
        return Err(format!("the schema at {at} is not an object"));
    };
    for (key, v) in map {
        if !KEYWORDS.contains(&key.as_str()) {
            return Err(format!(
                "the schema at {at} uses `{key}`, which Obra's validator does not support (supported: {})",
                KEYWORDS.join(", ")
            ));
        }
        match key.as_str() {
            "type" => {
                let names: Vec<&Value> = match v {
                    Value::Array(a) => a.iter().collect(),
                    other => vec![other],
                };
                for n in names {
                    let ok = n.as_str().is_some_and(|n| {
                        ["object", "array", "string", "number", "integer", "boolean", "null"].contains(&n)
                    });
                    if !ok {
                        return Err(format!("the schema at {at} has an unknown type {n}"));
                    }
                }
            }
            "properties" => {
                let Value::Object(props) = v else {
                    return Err(format!("`properties` at {at} is not an object"));
                };
                for (name, sub) in props {
                    check_schema(sub, &format!("{at}.{name}"))?;
                }
            }
            "items" => check_schema(v, &format!("{at}[]"))?,
            "additionalProperties" if !v.is_boolean() => check_schema(v, &format!("{at}.*"))?,
            "required" if !v.as_array().is_some_and(|a| a.iter().all(Value::is_string)) => {
                return Err(format!("`required` at {at} is not a list of names"));
            }
            "enum" if !v.is_array() => return Err(format!("`enum` at {at} is not a list")),
            "minimum" | "maximum" if !v.is_number() => return Err(format!("`{key}` at {at} is not a number")),
            "minLength" if !v.is_u64() => return Err(format!("`minLength` at {at} is not a whole number")),
            _ => {}
        }
    }
    Ok(())
}

/// The JSON part of a reply: without a code fence and without prose around the outermost object.
fn extract(text: &str, open: char, close: char, repairs: &mut Vec<String>) -> Option<String> {
    let mut t = text.trim();
    if let Some(rest) = t.strip_prefix("```") {
        // ```json\n...\n``` (the language tag is optional).
        let body = rest.split_once('\n').map(|(_, b)| b).unwrap_or("");
        let body = body.trim_end();
        let body = body.strip_suffix("```").unwrap_or(body);
        repairs.push("removed the Markdown code fence around the JSON".into());
        t = body.trim();
    }
    let start = t.find(open)?;
    // Without a closing bracket after the start (a reply cut off), everything from the start: it is then
    // reported as invalid JSON, not as missing.
    let end = t.rfind(close).filter(|e| *e > start).unwrap_or(t.len() - 1);
    let inner = &t[start..=end];
    if start > 0 || end + 1 < t.len() {
        let fenced = t.contains("```");
        let what = if fenced { "text and a code fence" } else { "text" };
        repairs.push(format!("ignored the {what} around the JSON ({} characters)", t.len() - inner.len()));
        if fenced {
            // A fence in the middle of prose: the JSON ends where the first fence after it closes.
            let inner = inner.split("```").next().unwrap_or(inner);
            let end = inner.rfind(close)?;
            return Some(inner[..=end].to_string());
        }
    }
    Some(inner.to_string())
}

/// Rewrite the usual near-JSON: trailing commas, Python literals. Works outside strings only.
fn relax(text: &str) -> (String, Vec<String>) {
    let mut out = String::with_capacity(text.len());
    let mut notes = Vec::new();
    let (mut commas, mut literals) = (0, 0);
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    let mut in_string = false;
    while i < chars.len() {
        let c = chars[i];
        if in_string {
            out.push(c);
            if c == '\\' && i + 1 < chars.len() {
                out.push(chars[i + 1]);
                i += 1;
            } else if c == '"' {
                in_string = false;
            }
            i += 1;
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            ',' => {
                let next = chars[i + 1..].iter().find(|c| !c.is_whitespace());
                if matches!(next, Some('}') | Some(']')) {
                    commas += 1;
                } else {
                    out.push(c);
                }
            }
            _ if c.is_ascii_alphabetic() => {
                let word: String = chars[i..].iter().take_while(|c| c.is_ascii_alphanumeric()).collect();
                let replacement = match word.as_str() {
                    "True" => Some("true"),
                    "False" => Some("false"),
                    "None" => Some("null"),
                    _ => None,
                };
                match replacement {
                    Some(r) => {
                        literals += 1;
                        out.push_str(r);
                    }
                    None => out.push_str(&word),
                }
                i += word.chars().count();
                continue;
            }
            _ => out.push(c),
        }
        i += 1;
    }
    if commas > 0 {
        notes.push(format!("removed {commas} trailing comma(s)"));
    }
    if literals > 0 {
        notes.push(format!("replaced {literals} Python literal(s) (True/False/None) with JSON ones"));
    }
    (out, notes)
}

fn type_names(schema: &Map<String, Value>) -> Vec<&str> {
    match schema.get("type") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn fits(v: &Value, ty: &str) -> bool {
    match ty {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        _ => false,
    }
}

/// A safe conversion of `v` to `ty`, with the sentence that reports it.
fn coerce(v: &Value, ty: &str, at: &str) -> Option<(Value, String)> {
    match (ty, v) {
        ("number" | "integer", Value::String(s)) => {
            let n: f64 = s.trim().parse().ok().filter(|n: &f64| n.is_finite())?;
            let value = if ty == "integer" {
                if n.fract() != 0.0 {
                    return None;
                }
                Value::from(n as i64)
            } else {
                serde_json::Number::from_f64(n).map(Value::Number)?
            };
            Some((value, format!("{at}: read the string {s:?} as the number it holds")))
        }
        ("integer", Value::Number(n)) => {
            let f = n.as_f64()?;
            (f.fract() == 0.0 && f.abs() < 9.0e15)
                .then(|| (Value::from(f as i64), format!("{at}: read {n} as the integer {}", f as i64)))
        }
        ("boolean", Value::String(s)) => {
            let b = match s.trim().to_ascii_lowercase().as_str() {
                "true" => true,
                "false" => false,
                _ => return None,
            };
            Some((Value::Bool(b), format!("{at}: read the string {s:?} as the boolean {b}")))
        }
        _ => None,
    }
}

/// Check `v` against `schema`, repairing in place; an error names the field.
fn conform(schema: &Value, v: &mut Value, at: &str, repairs: &mut Vec<String>) -> Result<(), String> {
    let Value::Object(s) = schema else { return Ok(()) };
    let types = type_names(s);
    if !types.is_empty() && !types.iter().any(|t| fits(v, t)) {
        let coerced = types.iter().find_map(|t| coerce(v, t, at));
        let wrapped = types.contains(&"array") && !v.is_array() && !v.is_null();
        match coerced {
            Some((value, note)) => {
                *v = value;
                repairs.push(note);
            }
            None if wrapped => {
                // A single value where a list of such values is wanted; only when the value fits the items.
                let mut item = v.take();
                let items = s.get("items").cloned().unwrap_or(Value::Bool(true));
                let mut probe = Vec::new();
                if let Err(e) = conform(&items, &mut item, &format!("{at}[0]"), &mut probe) {
                    *v = item;
                    return Err(format!("{at} should be an array; as a single item it fails too: {e}"));
                }
                repairs.push(format!("{at}: wrapped the single value ({}) in an array", kind(&item)));
                repairs.extend(probe);
                *v = Value::Array(vec![item]);
            }
            None => return Err(format!("{at} should be {}, but is {}", types.join(" or "), kind(v))),
        }
    }
    if let Some(Value::Array(allowed)) = s.get("enum")
        && !allowed.contains(v)
    {
        let folded = v.as_str().and_then(|text| {
            allowed.iter().find(|a| a.as_str().is_some_and(|a| a.eq_ignore_ascii_case(text.trim()))).cloned()
        });
        match folded {
            Some(a) => {
                repairs.push(format!("{at}: read {v} as {a}"));
                *v = a;
            }
            None => {
                let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
                return Err(format!("{at} is {v}, which is not one of {}", list.join(", ")));
            }
        }
    }
    if let Some(n) = v.as_f64() {
        if let Some(min) = s.get("minimum").and_then(Value::as_f64)
            && n < min
        {
            return Err(format!("{at} is {n}, below the minimum {min}"));
        }
        if let Some(max) = s.get("maximum").and_then(Value::as_f64)
            && n > max
        {
            return Err(format!("{at} is {n}, above the maximum {max}"));
        }
    }
    if let (Some(text), Some(min)) = (v.as_str(), s.get("minLength").and_then(Value::as_u64))
        && (text.chars().count() as u64) < min
    {
        return Err(format!("{at} has {} character(s), fewer than the {min} required", text.chars().count()));
    }
    match v {
        Value::Object(obj) => {
            let empty = Map::new();
            let props = s.get("properties").and_then(Value::as_object).unwrap_or(&empty);
            if let Some(Value::Array(required)) = s.get("required") {
                for name in required.iter().filter_map(Value::as_str) {
                    if !obj.contains_key(name) {
                        return Err(format!("{at}.{name} is required but missing"));
                    }
                }
            }
            let extra = s.get("additionalProperties");
            let unknown: Vec<String> = obj.keys().filter(|k| !props.contains_key(*k)).cloned().collect();
            for key in unknown {
                match extra {
                    Some(Value::Bool(false)) => {
                        obj.remove(&key);
                        repairs.push(format!("{at}: dropped the field `{key}`, which the schema does not allow"));
                    }
                    Some(sub @ Value::Object(_)) => {
                        if let Some(value) = obj.get_mut(&key) {
                            conform(sub, value, &format!("{at}.{key}"), repairs)?;
                        }
                    }
                    _ => {}
                }
            }
            for (name, sub) in props {
                if let Some(value) = obj.get_mut(name) {
                    conform(sub, value, &format!("{at}.{name}"), repairs)?;
                }
            }
        }
        Value::Array(items) => {
            if let Some(sub) = s.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    conform(sub, item, &format!("{at}[{i}]"), repairs)?;
                }
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn opinion() -> Schema {
        Schema::new(json!({
            "type": "object",
            "properties": {
                "confidence": {"type": "number", "minimum": 0, "maximum": 1},
                "reasoning": {"type": "string", "minLength": 1},
                "concerns": {"type": "array", "items": {"type": "string"}},
                "verdict": {"type": "string", "enum": ["pass", "fail"]},
                "count": {"type": "integer"}
            },
            "required": ["confidence", "reasoning"],
            "additionalProperties": false
        }))
        .unwrap()
    }

    #[test]
    fn a_valid_reply_passes_without_repairs() {
        let p = opinion().parse_reply(r#"{"confidence": 0.8, "reasoning": "ok", "concerns": []}"#).unwrap();
        assert!(p.repairs.is_empty(), "{:?}", p.repairs);
        assert_eq!(p.value["confidence"], 0.8);
    }

    #[test]
    fn fences_prose_and_trailing_commas_are_repaired_and_reported() {
        let text = "Here is my review:\n```json\n{\"confidence\": 0.7, \"reasoning\": \"fine\", \"concerns\": [\"a\",],}\n```\nThanks!";
        let p = opinion().parse_reply(text).unwrap();
        assert_eq!(p.value["concerns"], json!(["a"]));
        let all = p.repairs.join(" | ");
        assert!(all.contains("around the JSON"), "{all}");
        assert!(all.contains("2 trailing comma"), "{all}");

        let p = opinion().parse_reply("```\n{\"confidence\": 1, \"reasoning\": \"x\"}\n```").unwrap();
        assert_eq!(p.repairs, vec!["removed the Markdown code fence around the JSON".to_string()]);
    }

    #[test]
    fn commas_and_literals_inside_strings_are_left_alone() {
        let p = opinion().parse_reply(r#"{"confidence": 0.5, "reasoning": "a, } True",}"#).unwrap();
        assert_eq!(p.value["reasoning"], "a, } True");
        let p = opinion().parse_reply(r#"{"confidence": 0.5, "reasoning": "x", "count": None,}"#);
        // None becomes null, which is not an integer: rejected, naming the field.
        let e = p.unwrap_err();
        assert!(e.problem.contains("$.count should be integer, but is null"), "{e}");
    }

    #[test]
    fn strings_holding_numbers_or_booleans_are_read_as_such() {
        let s =
            Schema::new(json!({"type": "object", "properties": {"ok": {"type": "boolean"}, "n": {"type": "integer"}}}))
                .unwrap();
        let p = s.parse_reply(r#"{"ok": "TRUE", "n": "3"}"#).unwrap();
        assert_eq!(p.value, json!({"ok": true, "n": 3}));
        assert_eq!(p.repairs.len(), 2);
        let p = s.parse_reply(r#"{"n": 4.0}"#).unwrap();
        assert_eq!(p.value["n"], 4);
        assert!(s.parse_reply(r#"{"n": "4.5"}"#).unwrap_err().problem.contains("$.n should be integer"));

        let p = opinion().parse_reply(r#"{"confidence": " 0.9 ", "reasoning": "ok"}"#).unwrap();
        assert_eq!(p.value["confidence"], 0.9);
        assert!(p.repairs[0].contains("$.confidence: read the string \" 0.9 \""), "{:?}", p.repairs);
    }

    #[test]
    fn single_values_enums_and_unknown_fields_are_repaired() {
        let p = opinion()
            .parse_reply(
                r#"{"confidence": 0.4, "reasoning": "r", "concerns": "no tests", "verdict": "PASS", "mood": 1}"#,
            )
            .unwrap();
        assert_eq!(p.value["concerns"], json!(["no tests"]));
        assert_eq!(p.value["verdict"], "pass");
        assert!(p.value.get("mood").is_none());
        let all = p.repairs.join(" | ");
        assert!(
            all.contains("wrapped the single value (a string)") && all.contains("dropped the field `mood`"),
            "{all}"
        );
    }

    #[test]
    fn what_cannot_be_repaired_is_rejected_naming_the_field_with_an_excerpt() {
        let s = opinion();
        let e = s.parse_reply(r#"{"confidence": "high", "reasoning": "ok"}"#).unwrap_err();
        assert!(e.problem.contains("$.confidence should be number, but is a string"), "{e}");
        assert!(e.to_string().contains("the reply began \"{\\\"confidence\\\": \\\"high\\\""), "{e}");
        let e = s.parse_reply(r#"{"confidence": 1.5, "reasoning": "ok"}"#).unwrap_err();
        assert!(e.problem.contains("above the maximum 1"), "{e}");
        let e = s.parse_reply(r#"{"confidence": 0.5}"#).unwrap_err();
        assert_eq!(e.problem, "$.reasoning is required but missing");
        let e = s.parse_reply(r#"{"confidence": 0.5, "reasoning": ""}"#).unwrap_err();
        assert!(e.problem.contains("fewer than the 1 required"), "{e}");
        let e = s.parse_reply(r#"{"confidence": 0.5, "reasoning": "x", "verdict": "maybe"}"#).unwrap_err();
        assert!(e.problem.contains("not one of \"pass\", \"fail\""), "{e}");
        let e = s.parse_reply("I think it is fine.").unwrap_err();
        assert!(e.problem.contains("no JSON object"), "{e}");
        let e = s.parse_reply("{\"confidence\": 0.9, \"reasoning\": \"the change looks").unwrap_err();
        assert!(e.problem.contains("not valid JSON"), "{e}");
        let long = format!("{{\"confidence\": \"{}\"}}", "x".repeat(500));
        assert!(s.parse_reply(&long).unwrap_err().excerpt.ends_with("..."));
    }

    #[test]
    fn typed_parsing_and_unsupported_schema_keywords() {
        #[derive(serde::Deserialize)]
        struct O {
            confidence: f32,
        }
        let (o, repairs) = opinion().parse_as::<O>("{\"confidence\": \"0.25\", \"reasoning\": \"r\"}").unwrap();
        assert_eq!((o.confidence, repairs.len()), (0.25, 1));
        let e = Schema::new(json!({"type": "object", "properties": {"a": {"pattern": "x"}}})).unwrap_err();
        assert!(e.contains("$.a uses `pattern`"), "{e}");
        assert!(Schema::new(json!({"type": "thing"})).unwrap_err().contains("unknown type"));
        assert!(Schema::parse("{").unwrap_err().contains("not JSON"));
    }

    #[test]
    fn fuzzed_llm_replies_are_parsed_or_rejected_never_a_panic() {
        let schemas: Vec<Schema> = [
            crate::engine::prompt::OPINION_SCHEMA,
            crate::engine::prompt::ERROR_ANALYSIS_SCHEMA,
            crate::engine::prompt::DECISION_SCHEMA,
            crate::engine::prompt::COMMIT_MESSAGE_SCHEMA,
        ]
        .iter()
        .map(|s| Schema::parse(s).unwrap())
        .collect();
        let seeds: &[&[u8]] = &[
            br#"{"confidence": 0.9, "reasoning": "ok", "concerns": []}"#,
            b"```json\n{\"confidence\": \"0.7\", \"reasoning\": \"fine\",}\n```",
            br#"Sure! {"diagnosis": "tests fail", "suggested_fixes": "run them"} Hope it helps."#,
            br#"{"clarification": "Which file?", "questions": ["a", "b"]}"#,
            br#"{"subject": "feat: add x", "body": "Long\nbody", "extra": True}"#,
            b"[1, 2, {\"a\": None}]",
        ];
        obra_testkit::fuzz::fuzz("structured replies", seeds, |input| {
            let text = String::from_utf8_lossy(input);
            for schema in &schemas {
                if let Ok(parsed) = schema.parse_reply(&text) {
                    // Whatever was accepted conforms: parsing it again needs no repair.
                    let again = schema.parse_reply(&parsed.value.to_string()).expect("an accepted value conforms");
                    assert!(again.repairs.is_empty(), "{:?}", again.repairs);
                }
            }
        });
    }
}
