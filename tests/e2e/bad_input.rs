//! Bad input of every kind gets a clear error that says what to do, and changes nothing.

mod common;

use common::{Project, text};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn unknown_config_key_names_file_line_key_and_closest_valid_key() {
    let project = Project::new();
    project.write_config("# project settings\nengine:\n  max_iterations: 2\n  max_iteratons: 5\n");
    let out = project.obra(&["status"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = stderr(&out);
    for expected in [".obra/config.yaml", "line 4", "max_iteratons", "did you mean `max_iterations`"] {
        assert!(err.contains(expected), "missing {expected:?} in: {err}");
    }
}

#[test]
fn unknown_key_in_set_is_explained_too() {
    let project = Project::new();
    let out = project.obra(&["status", "--set", "agent.plugn=replay"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = stderr(&out);
    assert!(err.contains("--set agent.plugn=replay") && err.contains("did you mean `plugin`"), "{err}");
}

#[test]
fn a_task_that_does_not_exist_is_reported_with_where_to_look() {
    let project = Project::new();
    let out = project.obra(&["task", "execute", "99"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = stderr(&out);
    assert!(err.contains("task 99 does not exist") && err.contains("obra status"), "{err}");
    let out = project.obra(&["task", "show", "99"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn a_missing_plugin_is_named_with_the_available_ones() {
    let project = Project::new();
    project.write_config("agent:\n  plugin: no-such-agent\nllm:\n  provider: none\n");
    let id = project.create_task("t", "d");
    let out = project.obra(&["task", "execute", &id.to_string()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = stderr(&out);
    assert!(err.contains("no-such-agent"), "{err}");
    assert!(err.contains("claude-code") && err.contains("replay"), "the available agents are listed: {err}");
    // Nothing ran: the task is still pending with no interaction.
    let show = project.obra_json(&["task", "show", &id.to_string(), "--json"], 0);
    assert_eq!(show["task"]["status"], "pending");
    assert_eq!(show["interactions"].as_array().unwrap().len(), 0);
}

#[test]
fn a_plugin_built_for_another_api_version_is_refused_with_both_versions() {
    let project = Project::new();
    project.install_plugin("wrong-api");
    let dir = project.path().join(".obra/plugins/wrong-api");
    let out = project.obra(&["plugin", "check", dir.to_str().unwrap()]);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(all.contains("wrong-api") && all.contains("0.2.0") && all.contains("0.1.0"), "{all}");

    project.write_config("agent:\n  plugin: wrong-api\nllm:\n  provider: none\n");
    let id = project.create_task("t", "d");
    let out = project.obra(&["task", "execute", &id.to_string()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = stderr(&out);
    assert!(err.contains("wrong-api") && err.contains("0.2.0"), "{err}");
}

#[test]
fn outside_a_project_the_error_says_to_run_init() {
    let dir = Project::uninitialised();
    let out = dir.obra(&["status"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = stderr(&out);
    assert!(err.contains("not inside an Obra project") && err.contains("obra init"), "{err}");
}

#[test]
fn init_twice_is_refused_and_keeps_the_data() {
    let project = Project::new();
    let id = project.create_task("keep me", "d");
    let out = project.obra(&["init"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(stderr(&out).contains("already an Obra project"));
    let list = project.obra_json(&["task", "list", "--json"], 0);
    assert_eq!(list[0]["id"], id);
}

#[test]
fn bad_arguments_exit_2_with_usage() {
    let project = Project::new();
    let out = project.obra(&["task", "create", "t", "--priority", "11"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(stderr(&out).contains("11"), "{}", text(&out));
    let out = project.obra(&["task", "create", "t", "--depends-on", "7"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(stderr(&out).contains("task 7"), "{}", text(&out));
    let out = project.obra(&["breakpoint", "resolve", "1"]);
    assert_eq!(out.status.code(), Some(2), "one of --approve, --reject, --feedback is required: {}", text(&out));
}
