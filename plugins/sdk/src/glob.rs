//! Glob matching of workspace paths (`/`-separated, relative): `*` matches within one path segment, `**` as a
//! whole segment matches any number of segments (zero included), `?` one character other than `/`. Pure, for
//! gates that take path patterns in their config.

/// Whether `path` matches `pattern`.
///
/// ```
/// use obra_plugin_sdk::glob_match;
/// assert!(glob_match("src/**/*.rs", "src/a/b/c.rs"));
/// assert!(glob_match("src/**/*.rs", "src/c.rs"));
/// assert!(!glob_match("src/*.rs", "src/a/c.rs"));
/// assert!(glob_match("docs/?.md", "docs/a.md"));
/// ```
pub fn glob_match(pattern: &str, path: &str) -> bool {
    let pattern: Vec<&str> = pattern.trim_start_matches("./").split('/').collect();
    let path: Vec<&str> = path.trim_start_matches("./").split('/').collect();
    segments(&pattern, &path)
}

fn segments(pattern: &[&str], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((&"**", rest)) => (0..=path.len()).any(|skip| segments(rest, &path[skip..])),
        Some((first, rest)) => match path.split_first() {
            Some((segment, path_rest)) => {
                segment_match(first.as_bytes(), segment.as_bytes()) && segments(rest, path_rest)
            }
            None => false,
        },
    }
}

fn segment_match(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|skip| segment_match(rest, &text[skip..])),
        Some((b'?', rest)) => !text.is_empty() && segment_match(rest, &text[1..]),
        Some((c, rest)) => text.first() == Some(c) && segment_match(rest, &text[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn segments_stars_and_double_stars() {
        assert!(glob_match("a.txt", "a.txt"));
        assert!(!glob_match("a.txt", "b/a.txt"));
        assert!(glob_match("**/a.txt", "b/c/a.txt"));
        assert!(glob_match("**/a.txt", "a.txt"));
        assert!(glob_match("b/**", "b/c/d"));
        assert!(glob_match("*.md", ".hidden.md"));
        assert!(!glob_match("*.md", "x/y.md"));
        assert!(glob_match("src/*_test.go", "src/a_test.go"));
        assert!(!glob_match("src/*_test.go", "src/a_test.gox"));
        assert!(glob_match("./docs/*", "docs/x"));
    }
}
