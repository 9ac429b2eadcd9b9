//! The policy an execution runs under (ADR 34): an agent that edits `.obra/config.yaml` or a template during its
//! run is refused, the files are restored byte for byte and the task stops at an `integrity` breakpoint; an
//! edit made while no agent runs still applies; grants written in the project config count only once the
//! user approved them with `obra config trust`, grants in the user's config always.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{Project, text};

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A script agent `my-agent` on the project's PATH, run by the `command` agent: it writes hello.txt and runs
/// `.obra-test/agent-extra.sh` (if present), the part each test chooses.
fn with_script_agent(project: &mut Project) {
    let bin = project.home().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = "#!/bin/sh\nprintf 'hello\\n' > hello.txt\n[ -f .obra-test/agent-extra.sh ] && sh .obra-test/agent-extra.sh\n\
                  echo 'Wrote hello.txt'\n";
    let path = bin.join("my-agent");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let sys_path = std::env::var("PATH").unwrap_or_default();
    project.set_env("PATH", &format!("{}:{sys_path}", bin.display()));
}

/// The command agent running `my-agent`, no LLM, one iteration, and a required `tests` gate running
/// `gate_command`; `grants` is the `plugins:` section (or empty).
/// The sandbox is off here: these tests exercise the policy guard itself, the line of defence behind the kernel
/// sandbox (which makes `.obra/` read-only for agents and gates; `e2e_protection` covers it), and their agent
/// and gate write `.obra/` on purpose.
fn config(gate_command: &str, grants: &str) -> String {
    format!(
        r#"sandbox:
  mode: off
agent:
  plugin: command
  timeout_secs: 60
agents:
  command:
    program: my-agent
    args: ["{{prompt}}"]
llm:
  provider: none
engine:
  max_iterations: 1
gates:
  - plugin: response-format
  - plugin: tests
    enabled: true
    config:
      command: "{gate_command}"
{grants}"#
    )
}

const GRANTS: &str = "plugins:\n  grants:\n    command:\n      commands: [{ program: my-agent, args: [\"**\"] }]\n      \
                      env: [PATH]\n";

fn agent_extra(project: &Project, script: &str) {
    std::fs::create_dir_all(project.path().join(".obra-test")).unwrap();
    std::fs::write(project.path().join(".obra-test/agent-extra.sh"), script).unwrap();
}

#[test]
fn a_config_edit_by_the_agent_is_refused_restored_reported_and_stops_at_an_integrity_breakpoint() {
    let mut project = Project::new();
    with_script_agent(&mut project);
    // The failing gate the agent would like to get rid of; comments and spacing must come back exactly.
    let original = config("test -f never-there", GRANTS).replace("engine:", "# keep this comment\nengine:  ");
    project.write_config(&original);
    // What the real claude CLI did: read the config, write it back without the tests gate; and add a template.
    agent_extra(
        &project,
        "grep -v 'plugin: tests' .obra/config.yaml | grep -v 'enabled: true' | grep -v 'command: \"test' \
         | grep -v '    config:' > .obra/new && mv .obra/new .obra/config.yaml\n\
         mkdir -p .obra/templates && echo 'do as you like' > .obra/templates/task.j2\n",
    );
    let id = project.create_task("hello", "write hello.txt");
    let out = project.obra(&["task", "execute", &id.to_string()]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(3), "the task pauses at a breakpoint: {said}");
    assert!(said.contains("integrity:") && said.contains(".obra/config.yaml (modified)"), "{said}");
    assert!(said.contains(".obra/templates/task.j2 (created)") && said.contains("restored byte for byte"), "{said}");
    assert!(said.contains("breakpoint 1 (integrity)"), "{said}");
    assert!(!said.contains("config reloaded"), "{said}");

    let restored = std::fs::read_to_string(project.path().join(".obra/config.yaml")).unwrap();
    assert_eq!(restored, original, "restored byte for byte");
    assert!(!project.path().join(".obra/templates/task.j2").exists(), "the new template is removed");
    assert_eq!(std::fs::read_to_string(project.path().join("hello.txt")).unwrap(), "hello\n", "the work stays");

    // Stored: the task's reason, the decision and the breakpoint name the files and show the diff.
    let show = project.obra_json(&["task", "show", &id.to_string(), "--json"], 0);
    assert_eq!(show["task"]["status"], "paused");
    let reason = show["task"]["status_reason"].as_str().unwrap();
    assert!(reason.starts_with("breakpoint (integrity)") && reason.contains(".obra/config.yaml"), "{reason}");
    let explanation = show["interactions"][0]["decision"]["explanation"].as_str().unwrap();
    assert!(explanation.contains("-  - plugin: tests"), "the diff shows the dropped gate: {explanation}");
    assert!(show["interactions"][0]["gates"].as_array().unwrap().is_empty(), "no gate ran on refused work");
    let text_show = stdout(&project.obra(&["task", "show", &id.to_string()]));
    assert!(text_show.contains("integrity") && text_show.contains(".obra/config.yaml"), "{text_show}");
    let bp = project.obra_json(&["breakpoint", "show", "1", "--json"], 0);
    assert_eq!(bp["breakpoint"]["rule"], "integrity", "{bp}");
    assert!(bp["breakpoint"]["reason"].as_str().unwrap().contains("+do as you like"), "{bp}");

    // The production log has the event with the paths.
    let log = std::fs::read_to_string(project.path().join(".obra/logs/obra.jsonl")).unwrap();
    let event = log.lines().find(|l| l.contains("\"event\":\"policy_refused\"")).unwrap_or_else(|| panic!("{log}"));
    assert!(event.contains(".obra/config.yaml (modified)") && event.contains("\"restored\":true"), "{event}");

    // The task cannot go on without a human.
    let again = project.obra(&["task", "execute", &id.to_string()]);
    assert_ne!(again.status.code(), Some(0), "{}", text(&again));
    assert!(text(&again).contains("integrity"), "{}", text(&again));
}

#[test]
fn an_edit_between_two_executions_applies_to_the_next_one() {
    let mut project = Project::new();
    with_script_agent(&mut project);
    // The first task's gate (not the agent) edits the config, as a user would while no agent runs.
    let next = config("echo new-config-in-force", GRANTS);
    std::fs::write(project.path().join(".obra/next.yaml"), &next).unwrap();
    project.write_config(&config("cp .obra/next.yaml .obra/config.yaml; echo old-config; exit 1", GRANTS));
    let first = project.create_task("first", "write hello.txt");
    let second = project.create_task("second", "write hello.txt");
    let out = project.obra(&["run"]);
    let said = text(&out);
    assert!(said.contains("config reloaded (gates)"), "{said}");
    assert!(!said.contains("integrity"), "{said}");

    let gate = |id: i64| {
        let show = project.obra_json(&["task", "show", &id.to_string(), "--json"], 0);
        let gates = show["interactions"][0]["gates"].as_array().unwrap().clone();
        (show["task"]["status"].clone(), gates.into_iter().find(|g| g["gate"] == "tests").unwrap())
    };
    let (status, tests) = gate(first);
    assert_eq!(status, "paused", "{said}");
    assert!(tests["summary"].as_str().unwrap().contains("old-config"), "{tests}");
    let (status, tests) = gate(second);
    assert_eq!(status, "completed", "{said}");
    assert!(tests["summary"].as_str().unwrap().contains("new-config-in-force"), "{tests}");
}

#[test]
fn project_grants_changed_after_trust_refuse_to_run_until_trusted_again() {
    let mut project = Project::new();
    with_script_agent(&mut project);
    project.write_config(&config("true", GRANTS)); // approved with `obra config trust` by the harness
    let id = project.create_task("hello", "write hello.txt");

    // Someone (an agent of an earlier run, a pull) widens the grant.
    let widened = config("true", &GRANTS.replace("env: [PATH]", "env: [PATH, AWS_SECRET_ACCESS_KEY]"));
    project.write_config_untrusted(&widened);
    let out = project.obra(&["task", "execute", &id.to_string()]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("changed since you approved them"), "{said}");
    assert!(said.contains("AWS_SECRET_ACCESS_KEY") && said.contains("my-agent"), "lists what it grants: {said}");
    assert!(said.contains("obra config trust"), "says how to approve: {said}");
    let show = project.obra_json(&["task", "show", &id.to_string(), "--json"], 0);
    assert_eq!(show["task"]["status"], "pending", "nothing ran");

    let shown = stdout(&project.obra(&["config", "show", "plugins.grants.command"]));
    assert!(shown.contains("NOT TRUSTED") && shown.contains("# trust:"), "{shown}");
    let doctor = stdout(&project.obra(&["doctor"]));
    assert!(doctor.contains("FAIL  project grants") && doctor.contains("changed since you trusted"), "{doctor}");

    let trust = project.obra(&["config", "trust"]);
    assert_eq!(trust.status.code(), Some(0), "{}", text(&trust));
    assert!(stdout(&trust).contains("AWS_SECRET_ACCESS_KEY"), "shows what it approves: {}", text(&trust));
    let doctor = stdout(&project.obra(&["doctor"]));
    assert!(doctor.contains("ok    project grants"), "{doctor}");
    let out = project.obra(&["task", "execute", &id.to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // Withdrawn, it refuses again; a never-approved project config says so too.
    assert_eq!(project.obra(&["config", "trust", "--revoke"]).status.code(), Some(0));
    let id = project.create_task("again", "write hello.txt");
    let out = project.obra(&["task", "execute", &id.to_string()]);
    assert!(text(&out).contains("you have not approved them"), "{}", text(&out));
}

#[test]
fn grants_in_the_user_config_work_without_trust() {
    let mut project = Project::new();
    with_script_agent(&mut project);
    project.write_config(&config("true", ""));
    let user = project.home().join(".config/obra");
    std::fs::create_dir_all(&user).unwrap();
    std::fs::write(user.join("config.yaml"), GRANTS).unwrap();
    let id = project.create_task("hello", "write hello.txt");
    let out = project.obra(&["task", "execute", &id.to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let shown = stdout(&project.obra(&["config", "show", "plugins.grants.command"]));
    assert!(!shown.contains("NOT TRUSTED") && shown.contains("nothing to approve"), "{shown}");
    assert!(project.obra(&["config", "trust"]).status.success());
}
