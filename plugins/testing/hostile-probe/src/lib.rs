//! Hostile test plugin `hostile-probe` for the security suite (tests/e2e/security.rs). Each run reads
//! `{"attempt": NAME, "base_url": URL, "other_url": URL}` from its config and tries every way out of its grant
//! that the attempt names; the summary is a JSON object with one entry per try: `"denied: <the host's
//! error>"`, `"error: <error>"` or `"ran: <what came back>"`. The test decides which outcomes are acceptable.
//!
//! Attempts:
//! - `arguments`: commands outside the argument patterns of the grant (`echo safe *`): another first argument,
//!   extra arguments, the program by absolute or relative path, with a NUL or in upper case, `sh -c`, `env`;
//!   and shell metacharacters inside one permitted argument (which must stay one literal argument).
//! - `paths`: writes and reads through a symbolic link that leaves the workspace (`escape/`, made by the
//!   test), `..` traversal and an absolute path.
//! - `redirect`: a GET of `<base_url>/redirect`, which the test's server answers with a redirect elsewhere.
//! - `environment`: the guest's own environment, `printenv OBRA_TEST_SECRET`, and the `{env:...}` header
//!   placeholder to the granted origin and to `other_url`.
//! - `hang`: `sleep 600` without a time limit, and a GET of `<base_url>/hang`, which never answers.
//! - `huge-output`: `head -c 50000000 /dev/zero`, then a summary of 4 MiB.
//! - `huge-fields`: 100 MB in the field its config's `field` names (ADR 36), one field per run (wasmtime refuses
//!   to copy much more than 100 MB out of one call): `summary`, `session-id`, `denials` (one of 100 MB among
//!   100,000 short ones), `reports` (a failed action through `agent-report`, a progress line and a log line of
//!   100 MB each), or `error` (the run fails with a 100 MB message).

use obra_plugin_sdk::agent::{Agent, AgentInfo, RunRequest, report_failed_action};
use obra_plugin_sdk::{Outcome, PluginError, RunResult, config, export_agent, http, log, process, workspace};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// The plugin's configuration.
#[derive(Deserialize)]
struct Config {
    /// Which group of tries to make.
    attempt: String,
    /// The granted origin's base URL.
    #[serde(default)]
    base_url: String,
    /// An origin that is not granted.
    #[serde(default)]
    other_url: String,
    /// For `huge-fields`: which field gets 100 MB.
    #[serde(default)]
    field: String,
}

/// What one try gave.
fn outcome<T>(result: Result<T, PluginError>, show: impl FnOnce(T) -> String) -> Value {
    Value::String(match result {
        Ok(value) => format!("ran: {}", show(value)),
        Err(e @ PluginError::Denied(_)) => format!("denied: {e}"),
        Err(e) => format!("error: {e}"),
    })
}

/// Run a command and report its stdout.
fn command(program: &str, args: &[&str]) -> Value {
    outcome(process::command(program).args(args.iter().copied()).run(), |o| o.stdout.trim_end().to_string())
}

fn arguments() -> Map<String, Value> {
    let mut tries = Map::new();
    tries.insert("granted".into(), command("echo", &["safe", "ok"]));
    tries.insert("other first argument".into(), command("echo", &["unsafe", "x"]));
    tries.insert("extra argument".into(), command("echo", &["safe", "x", "y"]));
    tries.insert("absolute path".into(), command("/bin/echo", &["safe", "x"]));
    tries.insert("relative path".into(), command("../../../bin/echo", &["safe", "x"]));
    tries.insert("nul in program".into(), command("echo\0sh", &["safe", "x"]));
    tries.insert("upper case".into(), command("ECHO", &["safe", "x"]));
    tries.insert("shell".into(), command("sh", &["-c", "touch PWNED"]));
    tries.insert("env wrapper".into(), command("env", &["echo", "safe", "x"]));
    tries.insert(
        "metacharacters".into(),
        command("echo", &["safe", "$(touch PWNED); `touch PWNED` && touch PWNED | x"]),
    );
    tries
}

fn paths() -> Map<String, Value> {
    let mut tries = Map::new();
    let write = |path: &str| outcome(workspace::write(path, b"PWNED"), |()| "written".to_string());
    let read = |path: &str| outcome(workspace::read_to_string(path), |text| text);
    tries.insert("write through a symlink".into(), write("escape/outside.txt"));
    tries.insert("write a new file through a symlink".into(), write("escape/new.txt"));
    tries.insert("read through a symlink".into(), read("escape/outside.txt"));
    tries.insert("write with ..".into(), write("../outside-by-dots.txt"));
    tries.insert("write an absolute path".into(), write("/tmp/obra-hostile-probe-absolute.txt"));
    tries.insert(
        "remove through a symlink".into(),
        outcome(workspace::remove("escape/outside.txt"), |()| "removed".into()),
    );
    tries.insert("granted write".into(), write("inside.txt"));
    tries
}

fn redirect(cfg: &Config) -> Map<String, Value> {
    let mut tries = Map::new();
    let got = http::get(&format!("{}/redirect", cfg.base_url));
    tries.insert(
        "redirect".into(),
        outcome(got, |r| {
            format!("status {} location {} body {}", r.status, r.header("location").unwrap_or("-"), r.text())
        }),
    );
    tries.insert("other origin".into(), outcome(http::get(&cfg.other_url), |r| format!("status {}", r.status)));
    tries
}

fn environment(cfg: &Config) -> Map<String, Value> {
    let mut tries = Map::new();
    let guest: Vec<String> = std::env::vars().map(|(k, v)| format!("{k}={v}")).collect();
    tries.insert("guest environment".into(), Value::String(format!("ran: {}", guest.join(" "))));
    tries.insert("printenv".into(), command("printenv", &["OBRA_TEST_SECRET"]));
    let header = |url: &str| {
        let request = http::Request::get(url).header("x-leak", "{env:OBRA_TEST_SECRET}");
        outcome(request.send(), |r| format!("status {} body {}", r.status, r.text()))
    };
    tries.insert("placeholder to the granted origin".into(), header(&format!("{}/echo", cfg.base_url)));
    tries.insert("placeholder to another origin".into(), header(&cfg.other_url));
    tries
}

fn hang(cfg: &Config) -> Map<String, Value> {
    let mut tries = Map::new();
    let slept = process::command("sleep").arg("600").run();
    tries.insert(
        "sleep 600".into(),
        outcome(slept, |o| format!("timed out {} after {} ms", o.timed_out, o.duration_ms)),
    );
    tries.insert(
        "hanging server".into(),
        outcome(http::get(&format!("{}/hang", cfg.base_url)), |r| format!("status {}", r.status)),
    );
    tries
}

fn huge_output() -> (Map<String, Value>, String) {
    let mut tries = Map::new();
    let out = process::command("head").args(["-c", "50000000", "/dev/zero"]).run();
    tries.insert(
        "50 MB of output".into(),
        outcome(out, |o| format!("{} bytes, truncated {}", o.stdout.len(), o.truncated)),
    );
    (tries, "x".repeat(4 << 20))
}

/// How many bytes each huge field has: 100 MB.
const HUGE: usize = 100 * 1024 * 1024;

/// A result with 100 MB in `field` (see the module documentation).
fn huge_fields(field: &str) -> Result<RunResult, PluginError> {
    let huge = "h".repeat(HUGE);
    let mut result = RunResult::new(Outcome::Success, format!("{{\"huge\": {field:?}}}"));
    match field {
        "summary" => result.summary.push_str(&huge),
        "session-id" => result.session_id = Some(huge),
        "denials" => {
            result.permission_denials = (0..100_000).map(|i| format!("tool {i}")).collect();
            result.permission_denials.insert(0, huge);
        }
        "reports" => {
            report_failed_action(&huge);
            log::progress(&huge);
            log::info(&huge);
        }
        "error" => return Err(PluginError::Fatal(huge)),
        other => return Err(PluginError::Fatal(format!("unknown field {other:?}"))),
    }
    Ok(result)
}

struct HostileProbe;

impl Agent for HostileProbe {
    fn info() -> AgentInfo {
        AgentInfo {
            name: "hostile-probe".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Security test: tries to get out of its grant and reports what happened".into(),
            supports_resume: false,
        }
    }

    fn health(_config: String) -> Result<String, PluginError> {
        Ok("ok".into())
    }

    fn run(request: RunRequest) -> Result<RunResult, PluginError> {
        let cfg: Config = config(&request.config)?;
        if cfg.attempt == "huge-fields" {
            return huge_fields(&cfg.field);
        }
        let (tries, tail) = match cfg.attempt.as_str() {
            "arguments" => (arguments(), String::new()),
            "paths" => (paths(), String::new()),
            "redirect" => (redirect(&cfg), String::new()),
            "environment" => (environment(&cfg), String::new()),
            "hang" => (hang(&cfg), String::new()),
            "huge-output" => huge_output(),
            other => return Err(PluginError::Fatal(format!("unknown attempt {other:?}"))),
        };
        let summary = json!(tries).to_string();
        Ok(RunResult::new(Outcome::Success, format!("{summary}{tail}")))
    }
}

export_agent!(HostileProbe);
