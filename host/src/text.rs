//! Small text helpers shared by every face (CLI, application errors, reports).

/// The first line of `text`, cut to `max` characters; `[...]` marks lines left out.
pub fn one_line(text: &str, max: usize) -> String {
    let first = text.trim().lines().next().unwrap_or("");
    if first.chars().count() > max {
        format!("{}...", first.chars().take(max).collect::<String>())
    } else if text.trim().lines().count() > 1 {
        format!("{first} [...]")
    } else {
        first.to_string()
    }
}
