//! `obra config show|validate`, `obra profile list|show`, and configuration edits picked up between the
//! iterations of a running task.

mod common;

use std::path::{Path, PathBuf};

use common::{Project, text};
use serde_json::Value;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Point the user's config directory (`dirs::config_dir()`) at a directory of the test and return
/// `<it>/obra`, where `config.yaml` and `profiles/` live.
fn user_config_dir(project: &mut Project) -> PathBuf {
    let dir = project.path().join("user-config");
    project.set_env("XDG_CONFIG_HOME", dir.to_str().unwrap());
    let obra = dir.join("obra");
    std::fs::create_dir_all(obra.join("profiles")).unwrap();
    obra
}

fn entry<'a>(list: &'a Value, key: &str) -> &'a Value {
    list.as_array().unwrap().iter().find(|e| e["key"] == key).unwrap_or_else(|| panic!("no {key} in {list}"))
}

#[test]
fn config_show_names_the_layer_of_every_value() {
    let mut project = Project::new();
    project.write_config("agent:\n  timeout_secs: 60\n");
    let user = user_config_dir(&mut project);
    std::fs::write(user.join("config.yaml"), "llm:\n  timeout_secs: 30\n").unwrap();
    project.set_env("OBRA_LLM__WEIGHT", "0.3");
    let list = project
        .obra_json(&["config", "show", "--json", "--profile", "python_project", "--set", "engine.max_iterations=5"], 0);
    let project_file = project.path().join(".obra/config.yaml");
    let cases: [(&str, Value, String); 6] = [
        ("agent.plugin", "claude-code".into(), "config/default.yaml (built in)".to_string()),
        ("engine.decision.escalate_threshold", 0.6.into(), "profile python_project (built in)".into()),
        ("agent.timeout_secs", 60.into(), project_file.display().to_string()),
        ("llm.timeout_secs", 30.into(), user.join("config.yaml").display().to_string()),
        ("llm.weight", 0.3.into(), "environment variable OBRA_LLM__WEIGHT".into()),
        ("engine.max_iterations", 5.into(), "--set engine.max_iterations=5".into()),
    ];
    for (key, value, source) in cases {
        let e = entry(&list, key);
        assert_eq!(e["value"], value, "{e}");
        assert_eq!(e["source"], source.as_str(), "{e}");
    }
    // A list is one key with one origin.
    let gates = entry(&list, "gates");
    assert_eq!(gates["source"], "profile python_project (built in)");
    assert_eq!(gates["value"][2]["config"]["command"], "ruff check .");

    // The text form: `key = value    # layer`.
    let out = project.obra(&["config", "show", "--set", "engine.max_iterations=5"]);
    assert!(out.status.success(), "{}", text(&out));
    let shown = stdout(&out);
    assert!(shown.contains("engine.max_iterations = 5    # --set engine.max_iterations=5"), "{shown}");
    assert!(shown.contains(&format!("agent.timeout_secs = 60    # {}", project_file.display())), "{shown}");
    assert!(shown.contains("agent.plugin = \"claude-code\"    # config/default.yaml (built in)"), "{shown}");
}

#[test]
fn config_show_key_takes_a_key_or_a_section_and_an_unknown_key_gets_the_closest() {
    let project = Project::new();
    let one = project.obra_json(&["config", "show", "engine.max_iterations", "--json"], 0);
    assert_eq!(one.as_array().unwrap().len(), 1);
    assert_eq!(one[0]["value"], 3);
    let section = project.obra_json(&["config", "show", "engine.retry", "--json"], 0);
    let keys: Vec<&str> = section.as_array().unwrap().iter().map(|e| e["key"].as_str().unwrap()).collect();
    assert_eq!(keys.len(), 5, "{keys:?}");
    assert!(keys.iter().all(|k| k.starts_with("engine.retry.")));

    let out = project.obra(&["config", "show", "engine.max_iteration"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(stderr(&out).contains("did you mean `engine.max_iterations`"), "{}", text(&out));
}

#[test]
fn config_show_outside_a_project_has_no_project_layer() {
    let outside = Project::uninitialised();
    let list = outside.obra_json(&["config", "show", "--json"], 0);
    assert!(list.as_array().unwrap().iter().all(|e| !e["source"].as_str().unwrap().contains(".obra/config.yaml")));
    let out = outside.obra(&["config", "validate"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(stdout(&out).contains("configuration OK (1 layer: config/default.yaml (built in))"), "{}", text(&out));
}

#[test]
fn config_validate_reports_ok_with_the_layers_or_the_error() {
    let project = Project::new();
    project.write_config("engine:\n  max_iterations: 4\n");
    let out = project.obra(&["config", "validate", "--set", "llm.provider=none"]);
    assert!(out.status.success(), "{}", text(&out));
    let said = stdout(&out);
    assert!(said.contains("configuration OK (3 layers: ") && said.contains("--set llm.provider=none"), "{said}");
    let v = project.obra_json(&["config", "validate", "--json"], 0);
    assert_eq!(v["ok"], true);
    assert_eq!(v["layers"].as_array().unwrap().len(), 2);

    project.write_config("# mine\nengine:\n  max_iteratons: 4\n");
    let out = project.obra(&["config", "validate"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = stderr(&out);
    assert!(err.contains(".obra/config.yaml") && err.contains("line 3"), "{err}");
    assert!(err.contains("did you mean `max_iterations`"), "{err}");
    let v = project.obra_json(&["config", "validate", "--json"], 1);
    assert_eq!(v["ok"], false);
    assert!(v["error"].as_str().unwrap().contains("max_iteratons"));
}

fn validate_file(project: &Project, file: &Path, expect: &[&str]) {
    let out = project.obra(&["config", "validate", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = stderr(&out);
    for e in expect {
        assert!(err.contains(e), "missing {e:?} in: {err}");
    }
}

#[test]
fn config_validate_file_explains_every_kind_of_bad_file() {
    let project = Project::uninitialised();
    let write = |name: &str, bytes: &[u8]| {
        let path = project.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let good = write("good.yaml", b"engine:\n  max_iterations: 4\n");
    let out = project.obra(&["config", "validate", good.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(stdout(&out).contains("good.yaml"), "{}", text(&out));

    let unknown = write("unknown.yaml", b"gates:\n  - plugin: tests\n    enabeld: true\n");
    validate_file(&project, &unknown, &["unknown.yaml", "line 3", "enabeld", "did you mean `enabled`"]);
    let wrong_type = write("type.yaml", b"engine:\n  max_iterations: many\n");
    validate_file(&project, &wrong_type, &["type.yaml", "line 2", "max_iterations"]);
    let bad_value = write("value.yaml", b"engine:\n  decision:\n    proceed_threshold: 1.5\n");
    validate_file(&project, &bad_value, &["proceed_threshold", "outside 0.0..=1.0"]);
    let not_utf8 = write("binary.yaml", b"engine:\n  max_iterations: \xff\n");
    validate_file(&project, &not_utf8, &["cannot read the config file", "binary.yaml"]);
    let dir = project.path().join("a-directory.yaml");
    std::fs::create_dir_all(&dir).unwrap();
    validate_file(&project, &dir, &["cannot read the config file", "a-directory.yaml"]);
    validate_file(&project, &project.path().join("missing.yaml"), &["missing.yaml", "no such file"]);

    let v = project.obra_json(&["config", "validate", unknown.to_str().unwrap(), "--json"], 1);
    assert_eq!(v["ok"], false);
    assert!(v["error"].as_str().unwrap().contains("line 3"), "{v}");
}

#[test]
fn malformed_set_arguments_are_errors_that_say_what_is_expected() {
    let project = Project::uninitialised();
    for (set, expected) in [
        ("foo", "expected KEY=VALUE"),
        ("engine.max_iterations=abc", "--set engine.max_iterations=abc"),
        ("engine..max_iterations=3", "not a key path"),
        ("engine.max_iteration=3", "did you mean `max_iterations`"),
    ] {
        for command in [&["config", "show"][..], &["config", "validate"][..]] {
            let mut args = command.to_vec();
            args.extend(["--set", set]);
            let out = project.obra(&args);
            assert_eq!(out.status.code(), Some(1), "{}", text(&out));
            assert!(stderr(&out).contains(expected), "--set {set}: missing {expected:?}: {}", text(&out));
        }
    }
}

#[test]
fn profile_list_and_show_cover_builtin_user_and_invalid_profiles() {
    let mut project = Project::uninitialised();
    let user = user_config_dir(&mut project);
    std::fs::write(user.join("profiles/minimal.yaml"), "# minimal: my own\nengine:\n  max_iterations: 9\n").unwrap();
    std::fs::write(
        user.join("profiles/rust.yaml"),
        "# rust: cargo\ngates:\n  - plugin: tests\n    enabled: true\n    config:\n      command: cargo test\n",
    )
    .unwrap();
    std::fs::write(user.join("profiles/broken.yaml"), "# broken\nengine:\n  max_iteratons: 2\n").unwrap();

    let list = project.obra_json(&["profile", "list", "--json"], 0);
    let by_name = |n: &str| list.as_array().unwrap().iter().find(|p| p["name"] == n).unwrap().clone();
    assert_eq!(by_name("python_project")["origin"]["kind"], "built_in");
    assert_eq!(by_name("minimal")["origin"]["kind"], "user");
    assert_eq!(by_name("minimal")["overrides_builtin"], true);
    assert_eq!(by_name("rust")["error"], Value::Null);
    let broken = by_name("broken")["error"].as_str().unwrap().to_string();
    assert!(broken.contains("broken.yaml") && broken.contains("line 3"), "{broken}");
    assert_eq!(list.as_array().unwrap().len(), 8);

    let out = project.obra(&["profile", "list"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(stdout(&out).contains("overrides the built-in profile"), "{}", text(&out));
    assert!(stderr(&out).contains("profile broken cannot be used") && stderr(&out).contains("line 3"));

    let shown = project.obra_json(&["profile", "show", "web_app", "--json"], 0);
    assert!(shown["yaml"].as_str().unwrap().contains("npm test"));
    let changes = shown["changes"].as_array().unwrap();
    let max = changes.iter().find(|c| c["key"] == "engine.max_iterations").unwrap();
    assert_eq!(max["value"], 4);
    assert_eq!(max["default"], 3);
    assert!(changes.iter().any(|c| c["key"] == "gates"));
    assert!(changes.iter().all(|c| c["value"] != c["default"]));

    let user_show = project.obra_json(&["profile", "show", "minimal", "--json"], 0);
    assert_eq!(user_show["changes"][0]["key"], "engine.max_iterations");
    assert_eq!(user_show["changes"].as_array().unwrap().len(), 1);

    let out = project.obra(&["profile", "show", "broken"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(stderr(&out).contains("line 3"), "{}", text(&out));
    let out = project.obra(&["profile", "show", "web-app"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = stderr(&out);
    assert!(
        err.contains("did you mean \"web_app\"") && err.contains("python_project") && err.contains("rust"),
        "{err}"
    );
    // Used with --profile, the invalid profile is an error with its file and line.
    let out = project.obra(&["config", "show", "--profile", "broken"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(stderr(&out).contains("broken.yaml") && stderr(&out).contains("line 3"), "{}", text(&out));
}

/// The replay agent writes one file (each iteration), no LLM, and a `tests` gate that runs `.obra/edit.sh`:
/// the first time, `.obra/next.yaml` is copied over `.obra/config.yaml` (by the test, as a user would) and it
/// fails; later it fails saying so.
fn reloading_project(next: &str) -> Project {
    let project = Project::new();
    let config = |max: u32, command: &str| {
        format!(
            r#"agent:
  plugin: replay
llm:
  provider: none
engine:
  max_iterations: {max}
agents:
  replay:
    past_end: repeat-last
    recording:
      version: 1
      iterations:
        - writes: [{{ path: hello.txt, content: "hello\n" }}]
          result: {{ outcome: success, summary: "Wrote hello.txt.", turns: 1, duration_ms: 5, exit_code: 0 }}
gates:
  - plugin: response-format
  - plugin: tests
    enabled: true
    config:
      command: "{command}"
"#
        )
    };
    project.write_config(&config(2, "sh .obra/edit.sh"));
    let next = if next.is_empty() { config(5, "echo new-config-in-force") } else { next.to_string() };
    std::fs::write(project.path().join(".obra/next.yaml"), next).unwrap();
    // The gate runs in the sandbox, where `.obra/` is read-only: it asks the test (the user) to make the edit
    // and waits for it.
    std::fs::write(
        project.path().join(".obra/edit.sh"),
        "if [ -f .obra/edited ]; then echo 'old config still in force'; exit 1; fi\n\
         touch edit-now\nwhile [ ! -f .obra/edited ]; do sleep 0.02; done\necho 'config edited'; exit 1\n",
    )
    .unwrap();
    let root = project.path().to_path_buf();
    std::thread::spawn(move || {
        let start = std::time::Instant::now();
        while !root.join("edit-now").exists() {
            if start.elapsed() > std::time::Duration::from_secs(120) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        std::fs::copy(root.join(".obra/next.yaml"), root.join(".obra/config.yaml")).unwrap();
        std::fs::write(root.join(".obra/edited"), "").unwrap();
    });
    project
}

#[test]
fn a_config_edit_during_a_run_applies_from_the_next_iteration() {
    let project = reloading_project("");
    let id = project.create_task("hello", "write hello.txt");
    let out = project.obra(&["task", "execute", &id.to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let said = stdout(&out);
    assert!(said.contains("iteration 1/2"), "{said}");
    assert!(said.contains("config reloaded (engine.max_iterations, gates)"), "{said}");
    assert!(said.contains("iteration 2/5"), "the new limit applies to the rest of the task: {said}");

    let show = project.obra_json(&["task", "show", &id.to_string(), "--json"], 0);
    assert_eq!(show["task"]["status"], "completed");
    let interactions = show["interactions"].as_array().unwrap();
    assert_eq!(interactions.len(), 2);
    let tests_gate =
        |i: usize| interactions[i]["gates"].as_array().unwrap().iter().find(|g| g["gate"] == "tests").unwrap().clone();
    assert_eq!(tests_gate(0)["passed"], false);
    assert_eq!(tests_gate(1)["passed"], true);
    assert!(tests_gate(1)["summary"].as_str().unwrap().contains("new-config-in-force"), "{}", tests_gate(1));
}

#[test]
fn an_invalid_config_edit_during_a_run_is_reported_and_the_old_config_stays() {
    let project = reloading_project("# broken on purpose\nengine:\n  max_iteratons: 5\n");
    let id = project.create_task("hello", "write hello.txt");
    let out = project.obra(&["task", "execute", &id.to_string(), "--json"]);
    assert_eq!(out.status.code(), Some(3), "the old limit of 2 ends the run at a breakpoint: {}", text(&out));
    let outcome: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(outcome["iterations"], 2);
    let progress = stderr(&out);
    assert!(progress.contains("config edit rejected"), "{progress}");
    assert!(progress.contains(".obra/config.yaml") && progress.contains("line 3"), "{progress}");
    assert!(progress.contains("iteration 2/2"), "{progress}");
    assert_eq!(progress.matches("config edit rejected").count(), 1, "reported once: {progress}");

    // The second iteration ran the old gate command again (which now says so in its output).
    project.write_config("llm:\n  provider: none\n");
    let show = project.obra_json(&["task", "show", &id.to_string(), "--json"], 0);
    let second = &show["interactions"][1]["gates"];
    let tests = second.as_array().unwrap().iter().find(|g| g["gate"] == "tests").unwrap();
    assert!(tests.to_string().contains("old config still in force"), "{tests}");
}

#[test]
fn the_profile_given_to_init_is_what_config_show_validate_doctor_status_and_a_run_all_use() {
    let project = Project::uninitialised();
    let git = |args: &[&str]| {
        let ok = std::process::Command::new("git").current_dir(project.path()).args(args).status().unwrap();
        assert!(ok.success(), "git {args:?}");
    };
    git(&["init", "-q"]);
    std::fs::write(project.path().join("README.md"), "# scratch\n").unwrap();
    git(&["add", "."]);
    git(&["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"]);
    let out = project.obra(&["init", "--profile", "python_project"]);
    assert!(out.status.success(), "{}", text(&out));
    // The agent and the LLM change in the project's file; the iterations and gates stay the profile's
    // (pytest and ruff, which fail here: no Python project).
    project.install_plugin("echo-agent");
    project.write_config(
        "agent:\n  plugin: echo-agent\nllm:\n  provider: none\nplugins:\n  grants:\n    echo-agent:\n      \
         commands: [ { program: echo, args: [\"**\"] } ]\n      workspace: write\n",
    );
    let expected_gates = ["response-format", "tests", "lint"];

    let shown = project.obra_json(&["config", "show", "--json"], 0);
    assert_eq!(entry(&shown, "engine.max_iterations")["value"], 4, "{shown}");
    assert!(entry(&shown, "engine.max_iterations")["source"].as_str().unwrap().contains("python_project"));
    let gates = entry(&shown, "gates")["value"].as_array().unwrap().clone();
    assert!(gates.iter().any(|g| g["name"] == "lint" && g["enabled"] == true), "{shown}");
    let text_out = project.obra(&["config", "show", "engine.max_iterations"]);
    assert!(
        stdout(&text_out).contains("configuration of project") && stdout(&text_out).contains("profile python_project")
    );

    let validated = project.obra_json(&["config", "validate", "--json"], 0);
    assert_eq!(validated["profile"], "python_project", "{validated}");
    assert!(validated["layers"].as_array().unwrap().iter().any(|l| l.as_str().unwrap().contains("python_project")));
    assert_eq!(validated["effective"]["max_iterations"], 4);
    assert_eq!(validated["effective"]["gates"], serde_json::json!(expected_gates));

    let doctor: Value = serde_json::from_slice(&project.obra(&["doctor", "--json"]).stdout).unwrap();
    let detail = |name: &str| {
        doctor.as_array().unwrap().iter().find(|c| c["name"] == name).unwrap()["detail"].as_str().unwrap().to_string()
    };
    assert!(detail("configuration").contains("profile python_project; a run uses 4 iteration(s)"), "{doctor}");
    assert!(detail("configured plugins").contains("3 gate(s) (response-format, tests, lint)"), "{doctor}");

    let status = project.obra_json(&["status", "--json"], 0);
    assert_eq!(status["config"]["max_iterations"], 4, "{status}");
    assert_eq!(status["config"]["gates"], serde_json::json!(expected_gates));
    assert_eq!(status["plugins"]["resolved"]["gates"], serde_json::json!(expected_gates));

    // And the run does what they said: a limit of 4 iterations, each checked by those gates (the repeated
    // failure pauses it after the second).
    let id = project.create_task("anything", "the checks fail");
    let out = project.obra(&["task", "execute", &id.to_string()]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(stdout(&out).contains("iteration 1/4"), "{}", text(&out));
    let task = project.obra_json(&["task", "show", &id.to_string(), "--json"], 0);
    let iterations = task["interactions"].as_array().unwrap();
    assert!(iterations[0]["interaction"]["prompt"].as_str().unwrap().contains("\"max_iterations\": 4"), "{task}");
    let ran: Vec<&str> =
        iterations[0]["gates"].as_array().unwrap().iter().map(|g| g["gate"].as_str().unwrap()).collect();
    assert_eq!(ran, expected_gates, "{task}");
}
