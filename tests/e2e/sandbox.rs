//! Hostile plugins, driven through `obra task execute`: each is stopped with a clear error that names the plugin
//! and the cause, nothing outside its grant happens, and the project goes on to its next task.

mod common;

use common::{Project, text};
use obra_testkit::FakeOllama;
use serde_json::Value;

/// Grants for the test plugins, and a CPU budget small enough to stop a loop quickly.
const GRANTS: &str = r#"
plugins:
  limits:
    cpu_ms_per_call: 300
  grants:
    echo-agent:
      commands: [ { program: echo, args: ["**"] } ]
      workspace: write
    exec-outside-grant:
      commands: [ { program: echo, args: ["**"] } ]
    read-outside-workspace:
      workspace: read
    http-outside-grant:
      http: ["config:base_url"]
"#;

fn project_with(plugins: &[&str], config: &str) -> Project {
    let project = Project::new();
    for p in plugins {
        project.install_plugin(p);
    }
    project.install_plugin("echo-agent");
    project.write_config(&format!(
        "llm:\n  provider: none\nengine:\n  max_iterations: 1\n  retry:\n    max_attempts: 1\n{GRANTS}{config}"
    ));
    project
}

fn interactions(project: &Project, id: i64) -> Vec<Value> {
    let shown = project.obra_json(&["task", "show", &id.to_string(), "--json"], 0);
    shown["interactions"].as_array().unwrap().iter().map(|i| i["interaction"].clone()).collect()
}

/// After a hostile plugin was stopped, the next task runs normally with a well-behaved agent.
fn next_task_still_runs(project: &Project) {
    let id = project.create_task("after", "a normal task after the hostile one");
    let out = project.obra(&["--set", "agent.plugin=echo-agent", "task", "execute", &id.to_string()]);
    assert_eq!(out.status.code(), Some(0), "the next task must run: {}", text(&out));
}

#[test]
fn exec_outside_the_grant_is_denied_before_anything_runs() {
    let project = project_with(&["exec-outside-grant"], "agent:\n  plugin: exec-outside-grant\n");
    let id = project.create_task("hostile", "try to run sh");
    let out = project.obra(&["task", "execute", &id.to_string()]);
    assert_eq!(out.status.code(), Some(3), "the task pauses for a human: {}", text(&out));
    let runs = interactions(&project, id);
    let error = runs[0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("denied") && error.contains("exec-outside-grant") && error.contains("sh"), "{error}");
    assert!(error.contains("plugins.grants.exec-outside-grant"), "the denial names the config line: {error}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("PWNED"), "{}", text(&out));
    next_task_still_runs(&project);
}

#[test]
fn an_env_var_outside_the_grant_is_denied() {
    let project = project_with(
        &["exec-outside-grant"],
        "agent:\n  plugin: exec-outside-grant\nagents:\n  exec-outside-grant:\n    attempt: env\n",
    );
    let id = project.create_task("hostile", "try to pass a secret");
    let out = project.obra(&["task", "execute", &id.to_string()]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let error = interactions(&project, id)[0]["error"].as_str().unwrap_or_default().to_string();
    assert!(error.contains("denied") && error.contains("OBRA_TEST_SECRET"), "{error}");
}

#[test]
fn reads_outside_the_workspace_are_refused_including_through_a_symlink() {
    let project = project_with(&["read-outside-workspace"], "agent:\n  plugin: read-outside-workspace\n");
    std::os::unix::fs::symlink("/etc/passwd", project.path().join("escape-link")).unwrap();
    let id = project.create_task("hostile", "try to read /etc/passwd");
    let out = project.obra(&["task", "execute", &id.to_string()]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let run = &interactions(&project, id)[0];
    assert_eq!(run["outcome"], "permission-denied", "{run}");
    let summary = run["summary"].as_str().unwrap();
    assert!(!summary.contains("LEAKED"), "{summary}");
    for attempt in ["dotdot", "absolute", "symlink", "list-parent", "write"] {
        let line = summary.lines().find(|l| l.starts_with(attempt)).unwrap_or_else(|| panic!("{attempt}: {summary}"));
        assert!(line.contains("denied"), "{line}");
    }
    assert!(!project.path().join("pwned.txt").exists(), "a read grant does not allow writing");
    next_task_still_runs(&project);
}

#[test]
fn a_request_to_an_origin_outside_the_grant_never_leaves_the_host() {
    let granted = FakeOllama::start([]);
    let outside = FakeOllama::start([]);
    let project = project_with(
        &["http-outside-grant"],
        &format!(
            "agent:\n  plugin: echo-agent\nllms:\n  http-outside-grant:\n    base_url: {}\n    target: {}/outside-grant\n",
            granted.base_url(),
            outside.base_url()
        ),
    );
    let id = project.create_task("hostile llm", "the LLM provider tries another origin");
    let out = project.obra(&["--set", "llm.provider=http-outside-grant", "task", "execute", &id.to_string()]);
    // The LLM's opinion is refused; the loop goes on with the heuristics alone.
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("llm opinion: none") && stdout.contains("denied"), "{stdout}");
    assert!(outside.requests().is_empty(), "no request reached the origin outside the grant");
}

#[test]
fn an_infinite_loop_is_stopped_by_its_cpu_budget() {
    let project = project_with(&["infinite-loop"], "agent:\n  plugin: infinite-loop\n");
    let id = project.create_task("hostile", "spin forever");
    let out = project.obra(&["task", "execute", &id.to_string()]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let error = interactions(&project, id)[0]["error"].as_str().unwrap_or_default().to_string();
    assert!(error.contains("infinite-loop") && error.contains("CPU budget"), "{error}");
    next_task_still_runs(&project);
}

#[test]
fn a_memory_bomb_is_stopped_by_its_memory_limit() {
    let project = project_with(&["memory-bomb"], "agent:\n  plugin: memory-bomb\n");
    let id = project.create_task("hostile", "allocate everything");
    let out = project.obra(&["task", "execute", &id.to_string()]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let error = interactions(&project, id)[0]["error"].as_str().unwrap_or_default().to_string();
    assert!(
        error.contains("memory-bomb") && error.contains("ran out of memory") && error.contains("32 MiB"),
        "{error}"
    );
    next_task_still_runs(&project);
}

#[test]
fn a_component_importing_an_undeclared_capability_is_refused_at_load() {
    let project = project_with(&["undeclared-import"], "agent:\n  plugin: undeclared-import\n");
    let dir = project.path().join(".obra/plugins/undeclared-import");
    let out = project.obra(&["plugin", "check", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("FAIL") && stdout.contains("process"), "{stdout}");

    let id = project.create_task("hostile", "never loads");
    let out = project.obra(&["task", "execute", &id.to_string()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("undeclared-import") && stderr.contains("process"), "{stderr}");
    assert!(interactions(&project, id).is_empty(), "nothing ran");
    next_task_still_runs(&project);
}

#[test]
fn a_plugin_given_by_path_in_the_config_is_loaded_from_there() {
    let project = Project::new();
    let from = common::built_plugins_dir().join("echo-agent");
    let to = project.path().join("tools/echo");
    std::fs::create_dir_all(&to).unwrap();
    for entry in std::fs::read_dir(&from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
    project.write_config(&format!("agent:\n  plugin: ./tools/echo\nllm:\n  provider: none\n{GRANTS}"));
    let id = project.create_task("by path", "run the agent found at ./tools/echo");
    let out = project.obra(&["task", "execute", &id.to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(interactions(&project, id)[0]["agent"], "echo-agent");

    project.write_config("agent:\n  plugin: ./tools/missing\n");
    let out = project.obra(&["task", "execute", &id.to_string()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("./tools/missing"), "{}", text(&out));
}

#[test]
fn plugin_list_info_and_check_describe_the_plugins() {
    let project = Project::new();
    let list = project.obra_json(&["plugin", "list", "--json"], 0);
    let names: Vec<&str> = list["plugins"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    for builtin in ["claude-code", "replay", "ollama", "response-format", "tests", "low-confidence", "max-iterations"] {
        assert!(names.contains(&builtin), "{names:?}");
    }
    let info = project.obra_json(&["plugin", "info", "claude-code", "--json"], 0);
    assert_eq!(info["kind"], "agent");
    assert!(info["grant"]["commands"][0].as_str().unwrap().contains("claude"), "{info}");
    assert!(info["imports"].as_array().unwrap().iter().any(|i| i.as_str().unwrap().contains("obra:plugin/process")));

    let out = project.obra(&["plugin", "info", "claude-cod"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("claude-code"), "{}", text(&out));

    let good = common::built_plugins_dir().join("echo-agent");
    let out = project.obra(&["plugin", "check", good.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ready to use"), "{}", text(&out));
}
