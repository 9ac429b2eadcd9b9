//! Findings from tool output: the `path:line[:col]: message` lines that compilers, linters and type checkers
//! print (gcc, clang, rustc's short format, ruff, flake8, mypy, eslint's unix format, shellcheck's gcc format,
//! `go vet`, ...). Pure, so it is unit-tested natively.

use crate::quality_gate::{Finding, Severity};

/// The findings in `output`: one per line of the form `path:line[:col]: message`. A path under `root` (the
/// workspace's absolute path) is made relative to it. The severity comes from the message — a leading
/// `error`/`warning`/`note`/`info`/`help` word (`warning: unused variable`, `error[E0308]: ...`) or an eslint-style
/// `[Error/rule]` / `[Warning/rule]` tag —, else `default`. Lines that are not findings are skipped.
///
/// ```
/// use obra_plugin_sdk::quality_gate::{findings_from_lines, Severity};
/// let out = "/ws/src/a.py:3:1: F401 `os` imported but unused\nsrc/b.c:7: warning: unused variable\nFound 2 errors.\n";
/// let f = findings_from_lines(out, "/ws", Severity::Error);
/// assert_eq!(f.len(), 2);
/// assert_eq!((f[0].path.as_deref(), f[0].line, f[0].severity), (Some("src/a.py"), Some(3), Severity::Error));
/// assert_eq!(f[0].message, "F401 `os` imported but unused (src/a.py:3:1)");
/// assert_eq!((f[1].severity, f[1].message.as_str()), (Severity::Warning, "warning: unused variable (src/b.c:7)"));
/// ```
pub fn findings_from_lines(output: &str, root: &str, default: Severity) -> Vec<Finding> {
    output.lines().filter_map(|line| parse_line(line, root, default)).collect()
}

fn parse_line(line: &str, root: &str, default: Severity) -> Option<Finding> {
    let line = line.trim_end();
    // `path:line:` — the path may not hold `:` followed by digits and `:`, but may hold other colons rarely;
    // take the first `:<digits>` that is followed by `:`.
    let bytes = line.as_bytes();
    let mut search = 0;
    while let Some(rel) = line[search..].find(':') {
        let colon = search + rel;
        let digits_end = line[colon + 1..].find(|c: char| !c.is_ascii_digit()).map(|i| colon + 1 + i);
        if let Some(end) = digits_end
            && end > colon + 1
            && bytes[end] == b':'
        {
            let path = line[..colon].trim();
            if path.is_empty() || path.contains(char::is_whitespace) {
                return None;
            }
            let number: u32 = line[colon + 1..end].parse().ok()?;
            // An optional `col:` after the line.
            let mut rest = &line[end + 1..];
            let mut col = None;
            let col_len = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
            if col_len > 0 && rest[col_len..].starts_with(':') {
                col = rest[..col_len].parse::<u32>().ok();
                rest = &rest[col_len + 1..];
            }
            let message = rest.trim();
            if message.is_empty() {
                return None;
            }
            let path = relative(path, root);
            let place = match col {
                Some(c) => format!("{path}:{number}:{c}"),
                None => format!("{path}:{number}"),
            };
            return Some(Finding {
                severity: severity_of(message).unwrap_or(default),
                message: format!("{message} ({place})"),
                path: Some(path),
                line: Some(number),
            });
        }
        search = colon + 1;
    }
    None
}

fn relative(path: &str, root: &str) -> String {
    let root = root.trim_end_matches('/');
    if !root.is_empty()
        && let Some(rest) = path.strip_prefix(root)
        && let Some(rest) = rest.strip_prefix('/')
    {
        return rest.to_string();
    }
    path.strip_prefix("./").unwrap_or(path).to_string()
}

fn severity_of(message: &str) -> Option<Severity> {
    let lower = message.to_ascii_lowercase();
    let word: String = lower.chars().take_while(|c| c.is_ascii_alphabetic()).collect();
    let by_word = match word.as_str() {
        "error" | "fatal" => Some(Severity::Error),
        "warning" | "warn" => Some(Severity::Warning),
        "note" | "info" | "help" | "hint" => Some(Severity::Info),
        _ => None,
    };
    by_word.or_else(|| {
        if lower.contains("[error/") || lower.ends_with("[error]") {
            Some(Severity::Error)
        } else if lower.contains("[warning/") || lower.ends_with("[warning]") {
            Some(Severity::Warning)
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(line: &str) -> Option<Finding> {
        parse_line(line, "/work/ws", Severity::Warning)
    }

    #[test]
    fn common_tool_formats() {
        let f = one("src/main.rs:12:5: error[E0308]: mismatched types").unwrap();
        assert_eq!((f.path.as_deref(), f.line, f.severity), (Some("src/main.rs"), Some(12), Severity::Error));
        assert_eq!(f.message, "error[E0308]: mismatched types (src/main.rs:12:5)");
        let f = one("/work/ws/app.js:1:10: 'x' is defined but never used. [Error/no-unused-vars]").unwrap();
        assert_eq!((f.path.as_deref(), f.severity), (Some("app.js"), Severity::Error));
        let f = one("./pkg/x.go:4: note: something").unwrap();
        assert_eq!((f.path.as_deref(), f.severity, f.line), (Some("pkg/x.go"), Severity::Info, Some(4)));
        let f = one("a.py:3: E501 line too long").unwrap();
        assert_eq!(f.severity, Severity::Warning, "the default");
    }

    #[test]
    fn other_lines_are_not_findings() {
        for line in [
            "Found 3 errors.",
            "",
            "error: could not compile",
            "a b.py:3: x",
            "file.py:3:",
            "http://x:80/y: z",
            "12:30: meeting",
        ] {
            let parsed = one(line);
            assert!(parsed.is_none() || line.starts_with("12:30"), "{line}: {parsed:?}");
        }
        assert_eq!(findings_from_lines("x\ny.c:1: warning: w\nz", "", Severity::Error).len(), 1);
    }
}
