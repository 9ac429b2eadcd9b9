//! The security suite: a hostile agent plugin (`hostile-probe`) tries every way out of its grant it can think
//! of, through `obra task execute`, and reports what happened to each try. Argument-pattern bypasses,
//! symbolic-link and `..` escapes from the workspace, redirects to another (private) address, the environment
//! and secrets, a host call that never returns, and output far over the caps: each is refused or bounded,
//! nothing outside the grant happens, a secret never reaches the guest, a server, the store or the log, and the
//! next task runs normally. (Infinite loops and memory bombs in guest code are in sandbox.rs.)

mod common;

use std::io::{BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use common::{Project, text};
use serde_json::Value;

/// The secret in Obra's environment that the plugin must never see (shaped like an Anthropic key, so the
/// redaction would also catch it in stored text).
const SECRET: &str = "sk-ant-api03-hostileprobe0123456789abcdefSECRET";

/// A tiny HTTP/1.1 server on loopback: `/redirect` answers 302 to `target`, `/echo` answers with the request
/// head it received, `/hang` never answers; everything else is 404. Every request head is kept.
struct Server {
    port: u16,
    heads: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start(redirect_target: String) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let kept = heads.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let kept = kept.clone();
                let target = redirect_target.clone();
                std::thread::spawn(move || serve(stream, &target, &kept));
            }
        });
        Server { port, heads }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

fn serve(mut stream: TcpStream, redirect_target: &str, kept: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let head = common::read_request_head(&mut reader);
    kept.lock().unwrap().push(head.clone());
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    let (status, extra, body) = match path.as_str() {
        "/redirect" => ("302 Found", format!("Location: {redirect_target}\r\n"), "moved".to_string()),
        "/echo" => ("200 OK", String::new(), head),
        "/hang" => {
            let _ = reader.read_to_end(&mut Vec::new()); // until the client gives up
            return;
        }
        _ => ("404 Not Found", String::new(), "no".to_string()),
    };
    let _ =
        write!(stream, "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
}

/// A project running `hostile-probe` with `attempt`, its grant (`env` lists the granted variables), tight
/// host-call limits, and the secret in Obra's environment.
fn project(attempt: &str, base_url: &str, other_url: &str, env: &str) -> Project {
    let mut project = Project::new();
    project.install_plugin("hostile-probe");
    project.install_plugin("echo-agent");
    project.set_env("OBRA_TEST_SECRET", SECRET);
    project.write_config(&format!(
        r#"agent:
  plugin: hostile-probe
  timeout_secs: 120
agents:
  hostile-probe:
    attempt: {attempt}
    base_url: "{base_url}"
    other_url: "{other_url}"
llm:
  provider: none
engine:
  max_iterations: 1
  retry:
    max_attempts: 1
plugins:
  limits:
    host_call_timeout_secs: 2
    max_output_bytes: 65536
  grants:
    hostile-probe:
      commands:
        - {{ program: echo, args: ["safe", "*"] }}
        - {{ program: sleep, args: ["*"] }}
        - {{ program: head, args: ["-c", "*", "/dev/zero"] }}
        - {{ program: printenv, args: ["*"] }}
      env: [{env}]
      http: ["config:base_url"]
      workspace: write
    echo-agent:
      commands: [ {{ program: echo, args: ["**"] }} ]
      workspace: write
"#
    ));
    project
}

/// Run the probe as task 1; the tries it reported, and the whole interaction as stored.
fn probe(project: &Project) -> (serde_json::Map<String, Value>, Value) {
    let id = project.create_task("probe", "get out of the grant");
    let out = project.obra(&["task", "execute", &id.to_string()]);
    assert!(matches!(out.status.code(), Some(0 | 3)), "the run ends normally: {}", text(&out));
    let shown = project.obra_json(&["task", "show", &id.to_string(), "--json"], 0);
    let interaction = shown["interactions"][0]["interaction"].clone();
    let summary = interaction["summary"].as_str().unwrap_or_default();
    let json_end = summary.find("}x").map_or(summary.len(), |at| at + 1);
    let tries: Value = serde_json::from_str(&summary[..json_end])
        .unwrap_or_else(|e| panic!("the probe reported its tries ({e}): {summary:.2000}\n{}", text(&out)));
    (tries.as_object().unwrap().clone(), interaction)
}

fn is_denied(tries: &serde_json::Map<String, Value>, name: &str) -> String {
    let got = tries[name].as_str().unwrap().to_string();
    assert!(got.starts_with("denied: "), "{name} must be denied: {got}");
    got
}

/// The secret is nowhere Obra keeps things: the database (and its WAL), the production log, `task show`.
fn assert_secret_kept_out(project: &Project) {
    for file in [".obra/obra.db", ".obra/obra.db-wal", ".obra/logs/obra.jsonl"] {
        let bytes = std::fs::read(project.path().join(file)).unwrap_or_default();
        let found = bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes());
        assert!(!found, "the secret is in {file}");
    }
    let shown = project.obra(&["task", "show", "1", "--json"]);
    assert!(!String::from_utf8_lossy(&shown.stdout).contains(SECRET));
}

/// After the probe, an ordinary task with a well-behaved agent still runs.
fn next_task_still_runs(project: &Project) {
    let id = project.create_task("after", "a normal task");
    let out = project.obra(&["--set", "agent.plugin=echo-agent", "task", "execute", &id.to_string()]);
    assert_eq!(out.status.code(), Some(0), "the next task runs: {}", text(&out));
}

#[test]
fn argument_patterns_cannot_be_bypassed_and_metacharacters_stay_literal() {
    let project = project("arguments", "http://127.0.0.1:9", "http://127.0.0.1:9", "");
    let (tries, _) = probe(&project);
    assert_eq!(tries["granted"], "ran: safe ok");
    for name in [
        "other first argument",
        "extra argument",
        "absolute path",
        "relative path",
        "nul in program",
        "upper case",
        "shell",
        "env wrapper",
    ] {
        let denied = is_denied(&tries, name);
        assert!(
            denied.contains("hostile-probe") && denied.contains("plugins.grants.hostile-probe"),
            "{name}: {denied}"
        );
    }
    let literal = tries["metacharacters"].as_str().unwrap();
    assert_eq!(literal, "ran: safe $(touch PWNED); `touch PWNED` && touch PWNED | x", "one literal argument, no shell");
    assert!(!project.path().join("PWNED").exists(), "nothing ran the metacharacters");
    next_task_still_runs(&project);
}

#[test]
fn symlinks_dot_dot_and_absolute_paths_cannot_leave_the_workspace() {
    let project = project("paths", "http://127.0.0.1:9", "http://127.0.0.1:9", "");
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("outside.txt"), "untouched\n").unwrap();
    std::os::unix::fs::symlink(outside.path(), project.path().join("escape")).unwrap();
    let (tries, _) = probe(&project);
    for name in [
        "write through a symlink",
        "write a new file through a symlink",
        "read through a symlink",
        "write with ..",
        "write an absolute path",
        "remove through a symlink",
    ] {
        is_denied(&tries, name);
    }
    assert_eq!(tries["granted write"], "ran: written");
    assert_eq!(std::fs::read_to_string(outside.path().join("outside.txt")).unwrap(), "untouched\n");
    assert!(!outside.path().join("new.txt").exists());
    assert!(!project.path().parent().unwrap().join("outside-by-dots.txt").exists());
    assert!(!std::path::Path::new("/tmp/obra-hostile-probe-absolute.txt").exists());
    assert_eq!(std::fs::read_to_string(project.path().join("inside.txt")).unwrap(), "PWNED");
    next_task_still_runs(&project);
}

#[test]
fn a_redirect_to_a_private_address_is_handed_back_not_followed_and_other_origins_are_refused() {
    let private = Server::start(String::new());
    let granted = Server::start(format!("{}/secret", private.url()));
    let project = project("redirect", &granted.url(), &format!("{}/secret", private.url()), "");
    let (tries, _) = probe(&project);
    let redirect = tries["redirect"].as_str().unwrap();
    assert!(redirect.starts_with("ran: status 302") && redirect.contains("/secret"), "{redirect}");
    let denied = is_denied(&tries, "other origin");
    assert!(denied.contains(&format!("may not connect to http://127.0.0.1:{}", private.port)), "{denied}");
    assert!(private.heads().is_empty(), "the private server got no request: {:?}", private.heads());
    assert_eq!(granted.heads().len(), 1, "one request to the granted origin: {:?}", granted.heads());
    next_task_still_runs(&project);
}

#[test]
fn the_environment_and_secrets_do_not_reach_the_plugin_unless_granted_and_never_the_store_or_log() {
    let granted = Server::start(String::new());
    let other = Server::start(String::new());
    // Not granted: nothing of the secret gets through.
    let project = project("environment", &granted.url(), &format!("{}/x", other.url()), "");
    let (tries, interaction) = probe(&project);
    assert!(!tries["guest environment"].as_str().unwrap().contains(SECRET), "the guest's environment is empty of it");
    let printed = tries["printenv"].as_str().unwrap();
    assert!(!printed.contains(SECRET), "the child does not inherit ungranted variables: {printed}");
    let placeholder = tries["placeholder to the granted origin"].as_str().unwrap();
    assert!(placeholder.starts_with("denied: ") && placeholder.contains("OBRA_TEST_SECRET"), "{placeholder}");
    is_denied(&tries, "placeholder to another origin");
    assert!(other.heads().is_empty());
    assert!(granted.heads().iter().all(|h| !h.contains(SECRET)), "{:?}", granted.heads());
    assert!(!interaction.to_string().contains(SECRET));
    assert_secret_kept_out(&project);

    // Granted: the host fills the header for the granted origin only; the guest still never holds the value.
    let granted_too = Server::start(String::new());
    let project = project_granting_the_secret(&granted_too, &other);
    let (tries, _) = probe(&project);
    assert!(!tries["guest environment"].as_str().unwrap().contains(SECRET));
    is_denied(&tries, "placeholder to another origin");
    assert!(other.heads().is_empty(), "the other origin never got the secret: {:?}", other.heads());
    let sent = granted_too.heads().into_iter().find(|h| h.contains("/echo")).expect("the granted request");
    assert!(sent.contains(&format!("x-leak: {SECRET}")), "the host filled the header: {sent}");
    // The server echoed the header back: the host redacted the value it filled in before the guest saw it.
    let echoed = tries["placeholder to the granted origin"].as_str().unwrap();
    assert!(
        !echoed.contains(SECRET) && echoed.contains("x-leak: [{env:OBRA_TEST_SECRET} redacted by Obra]"),
        "{echoed}"
    );
    // The printenv output is the plugin's own doing; Obra's redaction keeps the key out of what it stores and logs.
    assert_secret_kept_out(&project);
    next_task_still_runs(&project);
}

fn project_granting_the_secret(granted: &Server, other: &Server) -> Project {
    project("environment", &granted.url(), &format!("{}/x", other.url()), "OBRA_TEST_SECRET")
}

#[test]
fn host_calls_that_never_return_end_at_the_host_call_limit() {
    let server = Server::start(String::new());
    let project = project("hang", &server.url(), &server.url(), "");
    let (tries, _) = probe(&project);
    let slept = tries["sleep 600"].as_str().unwrap();
    assert!(slept.starts_with("error: ") && slept.contains("host_call_timeout_secs"), "{slept}");
    let hung = tries["hanging server"].as_str().unwrap();
    assert!(
        hung.starts_with("error: ") && (hung.contains("time limit") || hung.contains("host_call_timeout_secs")),
        "{hung}"
    );
    let still_sleeping = std::process::Command::new("pgrep").args(["-f", "^sleep 600$"]).output().unwrap();
    assert!(
        still_sleeping.stdout.is_empty(),
        "the child was killed: {}",
        String::from_utf8_lossy(&still_sleeping.stdout)
    );
    next_task_still_runs(&project);
}

#[test]
fn huge_output_is_capped_and_a_huge_summary_is_stored_bounded() {
    let project = project("huge-output", "http://127.0.0.1:9", "http://127.0.0.1:9", "");
    let (tries, interaction) = probe(&project);
    let captured = tries["50 MB of output"].as_str().unwrap();
    assert_eq!(captured, "ran: 65536 bytes, truncated true", "capped at plugins.limits.max_output_bytes");
    let stored = interaction["summary"].as_str().unwrap();
    assert!(stored.len() < 70_000, "the 4 MiB summary is stored bounded: {} bytes", stored.len());
    assert!(stored.contains("bytes cut by Obra"), "the cut is said");
    next_task_still_runs(&project);
}

/// The bytes of the store (the SQLite file and its WAL) and of the production log.
fn stored_bytes(project: &Project) -> (u64, u64) {
    let size = |file: &str| std::fs::metadata(project.path().join(file)).map_or(0, |m| m.len());
    (size(".obra/obra.db") + size(".obra/obra.db-wal"), size(".obra/logs/obra.jsonl"))
}

/// A project whose `hostile-probe` reports 100 MB in `field`; its plugins may use 1 GiB of memory (the guest
/// needs it to hold the field).
fn huge_project(field: &str) -> Project {
    let project = project("huge-fields", "http://127.0.0.1:9", "http://127.0.0.1:9", "");
    let config = std::fs::read_to_string(project.path().join(".obra/config.yaml")).unwrap();
    let config = config
        .replace("    max_output_bytes: 65536\n", "    max_output_bytes: 65536\n    memory_mb: 1024\n")
        .replace("    attempt: huge-fields\n", &format!("    attempt: huge-fields\n    field: {field}\n"));
    project.write_config(&config);
    project
}

/// Issue 15 item 3: an agent plugin that reports 100 MB in one field per run: the summary, the session id, a
/// permission denial among 100,000, a failed action with a progress line and a log line, an error. Before, a
/// 100 MB session id added 525 MB to the store; now each field is bounded at the contract boundary, and the store
/// and the production log grow by no more than an ordinary run's records plus 1 MiB (the agent's bounds of
/// docs/plugins.md, stored a few times over: interaction, events, feedback), and the next task runs.
#[test]
fn a_report_of_100_mb_in_any_field_is_stored_bounded() {
    for field in ["summary", "session-id", "denials", "reports", "error"] {
        let project = huge_project(field);
        // What one run's records take without huge fields: a task with the well-behaved agent.
        let before = stored_bytes(&project);
        next_task_still_runs(&project);
        let ordinary = stored_bytes(&project).0.saturating_sub(before.0);

        let id = project.create_task("probe", "report a huge field");
        let before = stored_bytes(&project);
        let out = project.obra(&["task", "execute", &id.to_string()]);
        assert!(matches!(out.status.code(), Some(0 | 3)), "{field}: the run ends normally: {}", text(&out));
        assert!(out.stdout.len() + out.stderr.len() < 1 << 20, "{field}: output of {} bytes", out.stdout.len());
        let after = stored_bytes(&project);
        let shown = project.obra_json(&["task", "show", &id.to_string(), "--json"], 0);
        let interaction = &shown["interactions"][0]["interaction"];
        assert!(shown.to_string().len() < 1 << 20, "{field}: task show is {} bytes", shown.to_string().len());
        let grown = after.0.saturating_sub(before.0);
        let logged = after.1.saturating_sub(before.1);
        eprintln!("{field}: the store grew by {grown} bytes (an ordinary run: {ordinary}), the log by {logged}");
        assert!(grown <= ordinary + (1 << 20), "{field}: the store grew by {grown} bytes");
        assert!(logged <= 1 << 20, "{field}: the log grew by {logged} bytes");
        match field {
            "error" => {
                let error = interaction["error"].as_str().unwrap_or_else(|| panic!("{interaction:#}"));
                assert!(error.len() <= 64 * 1024 + 100 && error.contains("bytes cut by Obra"), "{}", error.len());
            }
            _ => {
                let summary = interaction["summary"].as_str().unwrap_or_else(|| panic!("{interaction:#}"));
                assert!(summary.starts_with(&format!("{{\"huge\": \"{field}\"}}")), "{summary:.200}");
                assert!(summary.len() <= 64 * 1024, "summary of {} bytes", summary.len());
                assert!(interaction["session_id"].is_null(), "a 100 MB session id is dropped");
            }
        }
        next_task_still_runs(&project);
    }
}
