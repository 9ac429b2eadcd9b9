//! Transports: the REAL claude CLI run on the "remote" side of a REAL sshd on 127.0.0.1 (throwaway keys,
//! strict host keys), with a prompt full of shell metacharacters; reconnecting with back-off while the server
//! comes up; a refused key and a changed host key failing at once with what to fix; and the Docker transport's
//! errors with no Docker engine running (none runs on these machines).

mod common;

use std::time::Duration;

use common::{Project, text};
use obra_testkit::{AnthropicReply, ClaudeEnv, FakeAnthropic, Sshd, SshdKeys, require_sshd};
use serde_json::Value;

/// Variables of the CLI's hermetic environment that the remote side needs too (same machine here).
const FORWARD: &str = "[HOME, PATH, ANTHROPIC_BASE_URL, ANTHROPIC_API_KEY, CLAUDE_CODE_MAX_RETRIES, \
                       CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC, DISABLE_AUTOUPDATER, DISABLE_TELEMETRY, \
                       DISABLE_ERROR_REPORTING, CLAUDE_CONFIG_DIR]";

/// A project whose claude-code agent runs over SSH to 127.0.0.1:`port` with these key files.
fn ssh_project(
    anthropic: &FakeAnthropic,
    port: u16,
    identity: &std::path::Path,
    known_hosts: &std::path::Path,
    attempts: u32,
) -> Option<(Project, ClaudeEnv)> {
    let (project, env) = common::claude::wired(anthropic)?;
    project.write_config(&format!(
        r#"agent:
  plugin: claude-code
  timeout_secs: 120
  transport:
    kind: ssh
    forward_env: {FORWARD}
    ssh:
      host: 127.0.0.1
      port: {port}
      identity_file: {identity}
      known_hosts_file: {known_hosts}
      connect_timeout_secs: 5
      connect_attempts: {attempts}
      backoff_ms: 250
agents:
  claude-code:
    permission_mode: acceptEdits
    max_turns: 5
llm:
  provider: none
engine:
  max_iterations: 1
gates:
  - plugin: response-format
"#,
        identity = identity.display(),
        known_hosts = known_hosts.display(),
    ));
    Some((project, env))
}

fn show(project: &Project, id: i64) -> Value {
    project.obra_json(&["task", "show", &id.to_string(), "--json"], 0)
}

#[test]
fn claude_runs_over_ssh_and_a_hostile_prompt_arrives_byte_identical() {
    let Some(sshd_bin) = require_sshd() else { return };
    let sshd = Sshd::start(&sshd_bin);
    let anthropic = FakeAnthropic::start([
        AnthropicReply::write_file("hello.txt", "hello over ssh\n"),
        AnthropicReply::text("Wrote hello.txt."),
    ]);
    let keys = sshd.keys();
    let Some((project, _env)) =
        ssh_project(&anthropic, keys.port(), &keys.identity_file(), &keys.known_hosts_file(), 2)
    else {
        return;
    };
    let marker = project.home().join("pwned");
    let hostile = format!(
        "Write hello.txt. $(touch {m}) `touch {m}` ; touch {m} && echo 'it'\\''s' \"$HOME\" | tee {m} # \\\\ \n next line",
        m = marker.display()
    );
    let id = project.create_task("Hostile prompt", &hostile);
    let out = project.obra(&["task", "execute", &id.to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}\n--- sshd\n{}", text(&out), sshd.log());

    assert_eq!(std::fs::read_to_string(project.path().join("hello.txt")).unwrap(), "hello over ssh\n");
    assert!(!marker.exists(), "no part of the prompt ran as a shell command");
    let body = anthropic.message_requests()[0].all_text();
    assert!(body.contains(&hostile), "the prompt reached the model byte for byte:\n{body}");
    assert!(sshd.log().contains("Accepted publickey"), "the run went through sshd: {}", sshd.log());
    let shown = show(&project, id);
    assert_eq!(shown["interactions"][0]["interaction"]["outcome"], "success", "{shown}");
    assert_eq!(shown["task"]["status"], "completed");

    // `obra doctor` checks the transport and runs the agent's health check (claude --version) over it.
    let doctor = project.obra(&["doctor"]);
    let said = text(&doctor);
    assert!(said.contains("ssh to 127.0.0.1:") && said.contains("answered"), "{said}");
    assert!(said.contains(obra_testkit::claude::pinned_version()), "claude's version came over ssh: {said}");
}

#[test]
fn the_transport_reconnects_with_back_off_until_the_server_is_up() {
    let Some(sshd_bin) = require_sshd() else { return };
    let keys = SshdKeys::new();
    let anthropic = FakeAnthropic::start([
        AnthropicReply::write_file("late.txt", "made it\n"),
        AnthropicReply::text("Wrote late.txt."),
    ]);
    let Some((project, _env)) =
        ssh_project(&anthropic, keys.port(), &keys.identity_file(), &keys.known_hosts_file(), 8)
    else {
        return;
    };
    let id = project.create_task("Late server", "Write late.txt");
    let child = project.command(&["task", "execute", &id.to_string()]).stdout(std::process::Stdio::piped()).spawn();
    let child = child.expect("start obra");
    // The first attempts find nothing listening; the server comes up while Obra backs off.
    std::thread::sleep(Duration::from_millis(1500));
    let sshd = keys.start(&sshd_bin);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}\n--- sshd\n{}", text(&out), sshd.log());
    assert_eq!(std::fs::read_to_string(project.path().join("late.txt")).unwrap(), "made it\n");
}

#[test]
fn a_refused_key_or_a_changed_host_key_fails_at_once_and_says_what_to_fix() {
    let Some(sshd_bin) = require_sshd() else { return };
    let sshd = Sshd::start(&sshd_bin);
    let keys = sshd.keys();
    for (identity, known_hosts, expected) in [
        (keys.unauthorised_identity(), keys.known_hosts_file(), "refused the login"),
        (keys.identity_file(), keys.wrong_known_hosts_file(), "host key is unknown or has changed"),
    ] {
        let anthropic = FakeAnthropic::start([AnthropicReply::text("never asked")]);
        let Some((project, _env)) = ssh_project(&anthropic, keys.port(), &identity, &known_hosts, 5) else {
            return;
        };
        let id = project.create_task("Refused", "Write nothing");
        let started = std::time::Instant::now();
        let out = project.obra(&["task", "execute", &id.to_string()]);
        let said = text(&out);
        assert_ne!(out.status.code(), Some(0), "{said}");
        assert!(said.contains(expected), "{expected:?} in {said}");
        assert!(anthropic.message_requests().is_empty(), "nothing ran on the other side");
        // Five attempts with back-off would take seconds; a refusal is not retried (a loose bound, no timing).
        assert!(started.elapsed() < Duration::from_secs(60));
        let shown = show(&project, id);
        assert_ne!(shown["task"]["status"], "completed", "{shown}");

        let doctor = project.obra(&["doctor"]);
        assert_eq!(doctor.status.code(), Some(1), "{}", text(&doctor));
        assert!(text(&doctor).contains(expected), "{}", text(&doctor));
    }
}

#[test]
fn the_docker_transport_says_when_no_engine_answers() {
    let mut project = Project::new();
    project.write_config(
        "agent:\n  plugin: claude-code\n  transport:\n    kind: docker\n    docker:\n      container: obra-agent\n\
         llm:\n  provider: none\nengine:\n  max_iterations: 1\n",
    );
    // No engine runs on these machines; make sure of it by pointing the client at a socket nobody serves.
    project.set_env("DOCKER_HOST", &format!("unix://{}/no-docker.sock", project.home().display()));
    let id = project.create_task("In a container", "Say hello");
    let out = project.obra(&["task", "execute", &id.to_string()]);
    let said = text(&out);
    assert_ne!(out.status.code(), Some(0), "{said}");
    let docker_installed = std::process::Command::new("docker").arg("--version").output().is_ok();
    let expected = if docker_installed {
        "the Docker daemon is not reachable"
    } else {
        "the transport needs `docker`, which is not on Obra's PATH"
    };
    assert!(said.contains(expected), "{expected:?} in {said}");
    assert_ne!(show(&project, id)["task"]["status"], "completed");
    let doctor = project.obra(&["doctor"]);
    assert_eq!(doctor.status.code(), Some(1));
    assert!(text(&doctor).contains(expected), "{}", text(&doctor));
}

#[test]
fn a_bad_transport_config_is_refused_naming_the_key() {
    let project = Project::with_echo_agent("true", "  []");
    for (yaml, key) in [
        ("    kind: ssh\n", "agent.transport.ssh.host"),
        ("    kind: ssh\n    ssh:\n      host: '-oProxyCommand=sh'\n", "agent.transport.ssh.host"),
        ("    kind: docker\n    docker:\n      mode: run\n", "agent.transport.docker.image"),
        ("    kind: telnet\n", "kind"),
        ("    kind: ssh\n    ssh:\n      hots: x\n", "hots"),
    ] {
        project.write_config(&format!("agent:\n  plugin: echo-agent\n  transport:\n{yaml}"));
        let out = project.obra(&["config", "validate"]);
        assert_ne!(out.status.code(), Some(0), "{yaml}: {}", text(&out));
        assert!(text(&out).contains(key), "{key} in {}", text(&out));
    }
}
