//! Privacy redaction: secrets and personal data are replaced by `[REDACTED:<kind>]` before text reaches the
//! production log or the store (prompts, agent output, LLM calls). On by default (`logging.redact`).
//!
//! What is recognised: API keys and tokens of the common providers (Anthropic, OpenAI, GitHub, GitLab, Slack,
//! AWS access key ids, Google API keys, Stripe, Hugging Face, JWTs), `Bearer` tokens, private key blocks,
//! passwords in URLs (`scheme://user:password@host`), `password=`/`api_key:`-style assignments, e-mail addresses,
//! IPv4 (except loopback and `0.0.0.0`) and IPv6 addresses, and phone numbers written with separators. Patterns favour catching a secret over
//! sparing a harmless look-alike; what they replace is said by the kind in the marker.

use std::borrow::Cow;
use std::sync::OnceLock;

use regex::{Captures, Regex};

/// One kind of sensitive text and how to find it. When the pattern has a group named `keep`, that part stays
/// (e.g. the `password=` before the value).
struct Rule {
    kind: &'static str,
    pattern: Regex,
}

fn rules() -> &'static [Rule] {
    static RULES: OnceLock<Vec<Rule>> = OnceLock::new();
    RULES.get_or_init(|| {
        let rule = |kind, pattern: &str| Rule { kind, pattern: Regex::new(pattern).expect("valid redaction pattern") };
        vec![
            rule(
                "private-key",
                r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\z)",
            ),
            rule("anthropic-key", r"\bsk-ant-[A-Za-z0-9_\-]{16,}"),
            rule("openai-key", r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}"),
            rule("github-token", r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})"),
            rule("gitlab-token", r"\bglpat-[A-Za-z0-9_\-]{20,}"),
            rule("slack-token", r"\bxox[abposr]-[A-Za-z0-9\-]{10,}"),
            rule("aws-access-key", r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"),
            rule("google-api-key", r"\bAIza[0-9A-Za-z_\-]{35}"),
            rule("stripe-key", r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}"),
            rule("huggingface-token", r"\bhf_[A-Za-z0-9]{30,}"),
            rule("jwt", r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"),
            rule("bearer-token", r"(?i)(?P<keep>\bbearer\s+)[A-Za-z0-9._~+/\-]{12,}=*"),
            rule("url-password", r"(?P<keep>\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s:/@]+:)[^\s@/]+(?:@)"),
            rule(
                "secret",
                r#"(?i)(?P<keep>\b(?:password|passwd|pwd|secret|api[_-]?key|access[_-]?token|auth[_-]?token|client[_-]?secret)["']?\s*[:=]\s*["']?)[^\s"',;]{4,}"#,
            ),
            rule("email", r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}\b"),
            rule(
                "ipv6",
                r"(?i)\b(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}\b|\b(?:[0-9a-f]{1,4}:){1,6}:(?:[0-9a-f]{1,4}:){0,5}[0-9a-f]{1,4}\b",
            ),
            rule(
                "ipv4",
                r"\b(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\b",
            ),
            rule("phone", r"(?:\+\d{1,3}[ .\-]?)?(?:\(\d{2,4}\)|\b\d{3})[ .\-]\d{3}[ .\-]\d{4}\b"),
        ]
    })
}

/// `text` with every recognised secret or personal datum replaced by `[REDACTED:<kind>]`; borrowed when there
/// was nothing to replace.
pub fn redact(text: &str) -> Cow<'_, str> {
    let mut out: Cow<'_, str> = Cow::Borrowed(text);
    for rule in rules() {
        if !rule.pattern.is_match(&out) {
            continue;
        }
        let replaced = rule
            .pattern
            .replace_all(&out, |c: &Captures<'_>| {
                if rule.kind == "ipv4" && says_nothing_about_anyone(&c[0]) {
                    return c[0].to_string();
                }
                let keep = c.name("keep").map_or("", |m| m.as_str());
                let at = if rule.kind == "url-password" { "@" } else { "" };
                format!("{keep}[REDACTED:{}]{at}", rule.kind)
            })
            .into_owned();
        out = Cow::Owned(replaced);
    }
    out
}

/// Loopback (`127.x.x.x`) and unspecified (`0.0.0.0`) addresses name this machine, not a person or a host:
/// they stay, so messages like "cannot connect to 127.0.0.1:11434" keep what a user needs to fix them.
fn says_nothing_about_anyone(ipv4: &str) -> bool {
    ipv4.starts_with("127.") || ipv4 == "0.0.0.0"
}

/// Redact every string inside a JSON value, in place.
pub fn redact_json(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(s) => {
            if let Cow::Owned(r) = redact(s) {
                *s = r;
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact_json),
        serde_json::Value::Object(map) => map.values_mut().for_each(redact_json),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> String {
        redact(text).into_owned()
    }

    #[test]
    fn provider_keys_and_tokens_are_redacted() {
        for (secret, kind) in [
            ("sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789", "anthropic-key"),
            ("sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789", "openai-key"),
            ("sk-AbCdEfGhIjKlMnOpQrStUvWxYz0123", "openai-key"),
            ("ghp_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789", "github-token"),
            ("github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz", "github-token"),
            ("glpat-AbCdEfGhIjKlMnOpQrSt", "gitlab-token"),
            ("xoxb-1234567890-abcdefghij", "slack-token"),
            ("AKIAIOSFODNN7EXAMPLE", "aws-access-key"),
            ("AIzaSyA-1234567890abcdefghijklmnopqrstu", "google-api-key"),
            ("sk_live_AbCdEfGhIjKlMnOp1234", "stripe-key"),
            ("hf_AbCdEfGhIjKlMnOpQrStUvWxYz01234567", "huggingface-token"),
            ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U", "jwt"),
        ] {
            let text = format!("key={secret} end");
            let got = kinds(&text);
            assert!(!got.contains(secret), "{kind}: {got}");
            assert!(got.contains("[REDACTED:"), "{kind}: {got}");
        }
    }

    #[test]
    fn bearer_tokens_url_passwords_assignments_and_private_keys_keep_their_context() {
        assert_eq!(kinds("Authorization: Bearer abc.DEF-123_456~xyz"), "Authorization: Bearer [REDACTED:bearer-token]");
        assert_eq!(
            kinds("postgres://obra:s3cret!@db.internal:5432/x"),
            "postgres://obra:[REDACTED:url-password]@db.internal:5432/x"
        );
        assert_eq!(kinds("password = hunter22, next"), "password = [REDACTED:secret], next");
        assert_eq!(kinds(r#"{"api_key": "abcd1234efgh"}"#), r#"{"api_key": "[REDACTED:secret]"}"#);
        let pem = "before\n-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA\nAAAA\n-----END OPENSSH PRIVATE KEY-----\nafter";
        assert_eq!(kinds(pem), "before\n[REDACTED:private-key]\nafter");
    }

    #[test]
    fn personal_data_is_redacted() {
        assert_eq!(kinds("mail ada@example.co.uk now"), "mail [REDACTED:email] now");
        assert_eq!(kinds("host 192.168.1.20 up"), "host [REDACTED:ipv4] up");
        assert_eq!(
            kinds("ollama at http://127.0.0.1:11434, bound 0.0.0.0, peer 10.1.2.3"),
            "ollama at http://127.0.0.1:11434, bound 0.0.0.0, peer [REDACTED:ipv4]"
        );
        assert_eq!(kinds("v6 2001:db8::8a2e:370:7334 up"), "v6 [REDACTED:ipv6] up");
        assert_eq!(kinds("call +1 555-123-4567 or (555) 123-4567"), "call [REDACTED:phone] or [REDACTED:phone]");
    }

    #[test]
    fn ordinary_code_and_logs_are_left_alone() {
        for text in [
            "claude 2.1.197 (Claude Code)",
            "wrote src/main.rs: 120 lines, 3 functions",
            "2026-11-22T10:20:46Z task 12 iteration 3/5",
            "fn max(a: u32, b: u32) -> u32 { a.max(b) }",
            "sha256 3f786850e387550fdab836ed7e6dc881de23001b",
            "let task-list = [1, 2, 3]; // see README.md",
            "the password field is required",
        ] {
            assert!(matches!(redact(text), Cow::Borrowed(_)), "{text} -> {}", redact(text));
        }
    }

    #[test]
    fn json_values_are_redacted_in_place() {
        let mut v = serde_json::json!({"prompt": "mail ada@example.com", "n": 3, "list": ["sk-ant-api03-AbCdEfGhIjKlMnOpQrSt"]});
        redact_json(&mut v);
        assert_eq!(v["prompt"], "mail [REDACTED:email]");
        assert_eq!(v["list"][0], "[REDACTED:anthropic-key]");
        assert_eq!(v["n"], 3);
    }

    #[test]
    fn fuzzed_text_is_redacted_without_panics_and_redaction_is_stable() {
        let seeds: &[&[u8]] = &[
            b"key sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWx and ada@example.com at 10.0.0.1",
            b"Authorization: Bearer abcdefghijklmnop; postgres://u:pw@h/db",
            b"-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----",
            b"call +44 20 7946 0958 or fe80::1 now; password=hunter2",
            b"fn main() { println!(\"{}\", 1.2.3); }",
        ];
        obra_testkit::fuzz::fuzz("redaction", seeds, |input| {
            let text = String::from_utf8_lossy(input);
            let once = redact(&text).into_owned();
            assert_eq!(redact(&once), once, "redacting twice changes nothing more");
        });
    }
}
