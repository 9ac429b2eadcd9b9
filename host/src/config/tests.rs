use super::*;

fn sources_in(root: &Path) -> ConfigSources {
    ConfigSources {
        profile: None,
        project_root: Some(root.to_path_buf()),
        user_file: Some(root.join("no-user-config.yaml")),
        env: vec![],
        sets: vec![],
    }
}

fn write_project_config(root: &Path, text: &str) {
    std::fs::create_dir_all(root.join(".obra")).unwrap();
    std::fs::write(root.join(".obra/config.yaml"), text).unwrap();
}

#[test]
fn the_embedded_defaults_are_complete_and_valid() {
    let config = embedded_defaults();
    assert_eq!(config.engine.decision.proceed_threshold, 0.85);
    assert_eq!(config.engine.decision.escalate_threshold, 0.65);
    assert_eq!(config.gates[0].plugin, "response-format");
    assert_eq!(&Config::default(), config);
}

#[test]
fn every_builtin_profile_is_a_valid_layer() {
    for (name, yaml) in BUILTIN_PROFILES {
        Layer::parse(LayerSource::Profile(name.to_string(), None), yaml)
            .unwrap_or_else(|e| panic!("profile {name}: {e}"));
        let dir = tempfile::tempdir().unwrap();
        let mut sources = sources_in(dir.path());
        sources.profile = Some(name.to_string());
        load(&sources).unwrap_or_else(|e| panic!("profile {name}: {e}"));
    }
}

#[test]
fn layers_apply_in_order_project_then_user_then_env_then_set() {
    let dir = tempfile::tempdir().unwrap();
    write_project_config(dir.path(), "engine:\n  max_iterations: 5\nagent:\n  timeout_secs: 60\n");
    let user = dir.path().join("user.yaml");
    std::fs::write(&user, "engine:\n  max_iterations: 6\n").unwrap();
    let mut sources = sources_in(dir.path());
    sources.user_file = Some(user);
    let loaded = load(&sources).unwrap();
    assert_eq!(loaded.config.engine.max_iterations, 6, "user beats project");
    assert_eq!(loaded.config.agent.timeout_secs, 60, "project beats default");
    assert_eq!(loaded.config.engine.decision.proceed_threshold, 0.85, "untouched keys keep their default");

    sources.env = vec![("OBRA_ENGINE__MAX_ITERATIONS".into(), "7".into()), ("OBRA_CLAUDE_BIN".into(), "x".into())];
    assert_eq!(load(&sources).unwrap().config.engine.max_iterations, 7, "env beats user; other OBRA_ vars ignored");
    sources.sets = vec!["engine.max_iterations=8".into()];
    assert_eq!(load(&sources).unwrap().config.engine.max_iterations, 8, "--set beats env");
}

#[test]
fn unknown_key_names_file_line_key_and_closest_valid_key() {
    let dir = tempfile::tempdir().unwrap();
    write_project_config(dir.path(), "# my settings\nengine:\n  max_iterations: 4\n  max_iteratons: 5\n");
    let err = load(&sources_in(dir.path())).unwrap_err();
    let text = err.to_string();
    assert!(text.contains(".obra/config.yaml"), "{text}");
    assert!(text.contains("line 4"), "{text}");
    assert!(text.contains("max_iteratons"), "{text}");
    assert!(text.contains("did you mean `max_iterations`"), "{text}");
}

#[test]
fn unknown_top_level_key_is_caught_too() {
    let dir = tempfile::tempdir().unwrap();
    write_project_config(dir.path(), "enigne:\n  max_iterations: 4\n");
    let text = load(&sources_in(dir.path())).unwrap_err().to_string();
    assert!(text.contains("line 1") && text.contains("`enigne`") && text.contains("did you mean `engine`"), "{text}");
}

#[test]
fn wrong_type_names_the_file_and_position() {
    let dir = tempfile::tempdir().unwrap();
    write_project_config(dir.path(), "engine:\n  max_iterations: many\n");
    let text = load(&sources_in(dir.path())).unwrap_err().to_string();
    assert!(text.contains(".obra/config.yaml") && text.contains("max_iterations") && text.contains("line 2"), "{text}");
}

#[test]
fn out_of_range_values_are_refused_with_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut sources = sources_in(dir.path());
    sources.sets = vec!["engine.decision.escalate_threshold=0.9".into()];
    let text = load(&sources).unwrap_err().to_string();
    assert!(text.contains("escalate_threshold") && text.contains("proceed_threshold"), "{text}");
    sources.sets = vec!["llm.weight=1.5".into()];
    assert!(load(&sources).unwrap_err().to_string().contains("llm.weight"));
}

#[test]
fn bad_set_and_env_keys_are_explained() {
    let err = Layer::from_set("engine.max_iteration=3").unwrap_err().to_string();
    assert!(err.contains("--set") && err.contains("did you mean `max_iterations`"), "{err}");
    let err = Layer::from_set("engine.max_iterations").unwrap_err().to_string();
    assert!(err.contains("KEY=VALUE"), "{err}");
    let err = Layer::from_env("OBRA_ENGNE__MAX_ITERATIONS", "3").unwrap_err().to_string();
    assert!(err.contains("OBRA_ENGNE__MAX_ITERATIONS") && err.contains("`engine`"), "{err}");
}

#[test]
fn unknown_profile_suggests_the_closest() {
    let dir = tempfile::tempdir().unwrap();
    let mut sources = sources_in(dir.path());
    sources.profile = Some("python-project".into());
    let text = load(&sources).unwrap_err().to_string();
    assert!(text.contains("python_project"), "{text}");
}

#[test]
fn plugin_sections_merge_key_by_key() {
    let dir = tempfile::tempdir().unwrap();
    write_project_config(dir.path(), "agents:\n  claude-code:\n    max_turns: 3\n");
    let config = load(&sources_in(dir.path())).unwrap().config;
    let cc = config.agent_config("claude-code");
    assert_eq!(cc["max_turns"], 3);
    assert_eq!(cc["permission_mode"], "acceptEdits", "other keys of the section keep their defaults");
}

fn source_of(loaded: &LoadedConfig, key: &str) -> LayerSource {
    loaded.provenance().into_iter().find(|k| k.key == key).unwrap_or_else(|| panic!("no key {key}")).source
}

fn value_of(loaded: &LoadedConfig, key: &str) -> serde_json::Value {
    loaded.provenance().into_iter().find(|k| k.key == key).unwrap_or_else(|| panic!("no key {key}")).value
}

#[test]
fn provenance_names_the_layer_of_every_kind() {
    let dir = tempfile::tempdir().unwrap();
    write_project_config(dir.path(), "agent:\n  timeout_secs: 60\n");
    let user = dir.path().join("user.yaml");
    std::fs::write(&user, "llm:\n  timeout_secs: 30\n").unwrap();
    let mut sources = sources_in(dir.path());
    sources.user_file = Some(user.clone());
    sources.profile = Some("production".into());
    sources.env = vec![("OBRA_LLM__WEIGHT".into(), "0.3".into())];
    sources.sets = vec!["engine.max_iterations=5".into()];
    let loaded = load(&sources).unwrap();

    assert_eq!(source_of(&loaded, "agent.plugin"), LayerSource::Default);
    assert_eq!(
        source_of(&loaded, "engine.decision.proceed_threshold"),
        LayerSource::Profile("production".into(), None)
    );
    assert_eq!(source_of(&loaded, "agent.timeout_secs"), LayerSource::Project(dir.path().join(".obra/config.yaml")));
    assert_eq!(source_of(&loaded, "llm.timeout_secs"), LayerSource::User(user));
    assert_eq!(source_of(&loaded, "llm.weight"), LayerSource::Env("OBRA_LLM__WEIGHT".into()));
    assert_eq!(source_of(&loaded, "engine.max_iterations"), LayerSource::Set("engine.max_iterations=5".into()));
    assert_eq!(value_of(&loaded, "engine.max_iterations"), 5);
    assert_eq!(value_of(&loaded, "llm.weight"), 0.3);
    // A list has one origin and its entries show every field, defaults included.
    assert_eq!(source_of(&loaded, "gates"), LayerSource::Profile("production".into(), None));
    let gates = value_of(&loaded, "gates");
    assert_eq!(gates[0]["plugin"], "response-format");
    assert_eq!(gates[0]["enabled"], true, "a default filled in: {gates}");
    assert!(loaded.provenance().iter().all(|k| !k.key.starts_with("gates.")));
    // Siblings keep their own origin.
    assert_eq!(
        source_of(&loaded, "engine.decision.escalate_threshold"),
        LayerSource::Profile("production".into(), None)
    );
    assert_eq!(source_of(&loaded, "engine.retry.jitter"), LayerSource::Default);
}

#[test]
fn every_resolved_key_is_listed_once_and_the_values_match_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let loaded = load(&sources_in(dir.path())).unwrap();
    let keys: Vec<String> = loaded.provenance().into_iter().map(|k| k.key).collect();
    let mut unique = keys.clone();
    unique.dedup();
    assert_eq!(keys, unique);
    for expected in ["database.path", "engine.retry.multiplier", "agents.claude-code.max_turns", "plugins.cache_dir"] {
        assert!(keys.iter().any(|k| k == expected), "{expected} missing from {keys:?}");
    }
    assert_eq!(value_of(&loaded, "engine.decision.proceed_threshold"), 0.85);
    assert_eq!(value_of(&loaded, "plugins.search_path"), serde_json::json!([]));
}

#[test]
fn select_takes_a_key_or_a_section_and_suggests_the_closest_for_an_unknown_one() {
    let dir = tempfile::tempdir().unwrap();
    let entries = load(&sources_in(dir.path())).unwrap().provenance();
    assert_eq!(select(&entries, "engine.max_iterations").unwrap().len(), 1);
    let section = select(&entries, "engine.decision").unwrap();
    assert_eq!(section.len(), 2);
    assert!(select(&entries, "engine").unwrap().len() > 3);
    let err = select(&entries, "engine.max_iteration").unwrap_err().to_string();
    assert!(err.contains("did you mean `engine.max_iterations`"), "{err}");
    let err = select(&entries, "engin").unwrap_err().to_string();
    assert!(err.contains("`engine`"), "{err}");
}

#[test]
fn validate_file_checks_keys_types_values_and_readability() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yaml");
    std::fs::write(&good, "engine:\n  max_iterations: 4\n").unwrap();
    assert_eq!(validate_file(&good).unwrap().config.engine.max_iterations, 4);
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "engine:\n  decision:\n    escalate_threshold: 0.99\n").unwrap();
    assert!(validate_file(&bad).unwrap_err().to_string().contains("escalate_threshold"));
    let text = validate_file(dir.path()).unwrap_err().to_string();
    assert!(text.contains("cannot read"), "a directory: {text}");
    let binary = dir.path().join("binary.yaml");
    std::fs::write(&binary, b"engine:\n  max_iterations: \xff\xfe\n").unwrap();
    assert!(validate_file(&binary).unwrap_err().to_string().contains("cannot read"));
    assert!(validate_file(&dir.path().join("missing.yaml")).unwrap_err().to_string().contains("no such file"));
}

#[test]
fn every_builtin_profile_changes_something_and_sets_test_and_lint_commands() {
    let dir = tempfile::tempdir().unwrap();
    let sources = sources_in(dir.path());
    for (name, _) in BUILTIN_PROFILES {
        let profile = find_profile(&sources, name).unwrap();
        assert_eq!(profile.origin, ProfileOrigin::BuiltIn);
        assert!(profile.error.is_none(), "{name}: {:?}", profile.error);
        let changes = profile.changes().unwrap();
        assert!(!changes.is_empty(), "profile {name} changes nothing");
        assert!(changes.iter().any(|c| c.key.starts_with("engine.")), "{name} sets no engine limit or threshold");
        let mut with = sources.clone();
        with.profile = Some(name.to_string());
        let config = load(&with).unwrap().config;
        let commands: Vec<&str> = config
            .gates
            .iter()
            .filter(|g| g.enabled && g.plugin == "tests")
            .filter_map(|g| g.config["command"].as_str())
            .collect();
        if *name != "minimal" {
            assert_eq!(commands.len(), 2, "{name}: a test and a lint command: {commands:?}");
        }
        for line in profile.yaml.lines() {
            let t = line.trim_start().trim_start_matches("- ");
            if t.starts_with('#') || t.starts_with("plugin:") {
                continue;
            }
            if let Some((_, value)) = t.split_once(':')
                && !value.trim().is_empty()
            {
                assert!(line.contains('#'), "profile {name}: no comment on `{line}`");
            }
        }
    }
}

#[test]
fn a_user_profile_overrides_a_builtin_and_an_invalid_one_is_reported_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let user_dir = dir.path().join("home");
    std::fs::create_dir_all(user_dir.join("profiles")).unwrap();
    std::fs::write(user_dir.join("profiles/minimal.yaml"), "engine:\n  max_iterations: 9\n").unwrap();
    std::fs::write(user_dir.join("profiles/broken.yaml"), "# mine\nengine:\n  max_iteratons: 2\n").unwrap();
    let mut sources = sources_in(dir.path());
    sources.user_file = Some(user_dir.join("config.yaml"));
    let list = list_profiles(&sources);
    let minimal = list.iter().find(|p| p.name == "minimal").unwrap();
    assert!(minimal.overrides_builtin && matches!(minimal.origin, ProfileOrigin::User(_)));
    let broken = list.iter().find(|p| p.name == "broken").unwrap();
    let err = broken.error.as_ref().unwrap().to_string();
    assert!(err.contains("broken.yaml") && err.contains("line 3") && err.contains("max_iterations"), "{err}");

    sources.profile = Some("minimal".into());
    assert_eq!(load(&sources).unwrap().config.engine.max_iterations, 9);
    sources.profile = Some("broken".into());
    assert!(load(&sources).unwrap_err().to_string().contains("line 3"));
    sources.profile = Some("brokn".into());
    let err = load(&sources).unwrap_err().to_string();
    assert!(err.contains("did you mean \"broken\"") && err.contains("python_project"), "{err}");
}

#[test]
fn the_reloader_applies_a_valid_edit_and_rejects_a_bad_one_once() {
    let dir = tempfile::tempdir().unwrap();
    write_project_config(dir.path(), "engine:\n  max_iterations: 2\n");
    let sources = sources_in(dir.path());
    let mut reloader = ConfigReloader::new(sources.clone(), load(&sources).unwrap());
    assert!(matches!(reloader.check(), ReloadOutcome::Unchanged));

    write_project_config(dir.path(), "# only a comment changed\nengine:\n  max_iterations: 2\n");
    assert!(matches!(reloader.check(), ReloadOutcome::Unchanged), "a change that changes no value");

    write_project_config(dir.path(), "engine:\n  max_iterations: 5\ndatabase:\n  path: other.db\n");
    match reloader.check() {
        ReloadOutcome::Reloaded(loaded, changed) => {
            assert_eq!(loaded.config.engine.max_iterations, 5);
            assert_eq!(changed, vec!["database.path".to_string(), "engine.max_iterations".to_string()]);
            assert!(needs_restart("database.path") && !needs_restart("engine.max_iterations"));
        }
        other => panic!("{other:?}"),
    }
    write_project_config(dir.path(), "engine:\n  max_iterations: 5\n  bogus: 1\n");
    match reloader.check() {
        ReloadOutcome::Rejected(e) => assert!(e.to_string().contains("line 3"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(reloader.check(), ReloadOutcome::Unchanged), "reported once");
    assert_eq!(reloader.current().config.engine.max_iterations, 5, "the last good configuration stays");
}

#[test]
fn live_part_keeps_what_needs_a_restart() {
    let running = embedded_defaults().clone();
    let mut new = running.clone();
    new.database.path = "x.db".into();
    new.agent.plugin = "replay".into();
    new.engine.max_iterations = 9;
    let live = live_part(&running, &new);
    assert_eq!(live.database, running.database);
    assert_eq!(live.agent.plugin, running.agent.plugin);
    assert_eq!(live.engine.max_iterations, 9);
}

#[test]
fn two_enabled_gates_need_different_names_and_a_timeout_of_at_least_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let two = "gates:\n  - plugin: tests\n    config: {command: a}\n  - plugin: tests\n    config: {command: b}\n";
    write_project_config(dir.path(), two);
    let e = load(&sources_in(dir.path())).unwrap_err().to_string();
    assert!(e.contains("gates[1].name") && e.contains("also the name of gates[0]") && e.contains("name: lint"), "{e}");
    write_project_config(dir.path(), &format!("{two}    name: lint\n"));
    let loaded = load(&sources_in(dir.path())).unwrap().config;
    let names: Vec<&str> = loaded.gates.iter().map(|g| g.display_name()).collect();
    assert_eq!(names, ["tests", "lint"]);
    assert_eq!(loaded.gates[0].timeout_secs, 900);
    write_project_config(dir.path(), "gates:\n  - plugin: tests\n    timeout_secs: 0\n");
    assert!(load(&sources_in(dir.path())).unwrap_err().to_string().contains("gates[0].timeout_secs"));
}

#[test]
fn the_git_command_time_limit_defaults_to_five_minutes_and_refuses_zero_and_more_than_a_day() {
    let dir = tempfile::tempdir().unwrap();
    write_project_config(dir.path(), "engine:\n  max_iterations: 5\n");
    assert_eq!(load(&sources_in(dir.path())).unwrap().config.git.command_timeout_secs, 300);
    for bad in ["0", "86401"] {
        write_project_config(dir.path(), &format!("git:\n  command_timeout_secs: {bad}\n"));
        let e = load(&sources_in(dir.path())).unwrap_err().to_string();
        assert!(e.contains("git.command_timeout_secs") && e.contains(&format!("{bad} is outside 1..=86400")), "{e}");
    }
    write_project_config(dir.path(), "git:\n  command_timeout_secs: 86400\n");
    assert_eq!(load(&sources_in(dir.path())).unwrap().config.git.command_timeout_secs, 86_400);
}

#[test]
fn fuzzed_config_files_load_or_fail_with_a_message_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let seeds: &[&[u8]] = &[
        b"agent:\n  plugin: claude-code\n  timeout_secs: 60\n  transport:\n    kind: ssh\n    ssh:\n      host: box\n",
        b"engine:\n  max_iterations: 3\n  decision:\n    proceed_threshold: 0.9\n    escalate_threshold: 0.5\n",
        b"gates:\n  - plugin: tests\n    enabled: true\n    config:\n      command: cargo test\n",
        b"rules:\n  - plugin: budget\n    config:\n      max_task_tokens: 1000\n",
        b"llm:\n  provider: ollama\nllms:\n  ollama:\n    base_url: http://127.0.0.1:11434\n    model: m\n",
        b"logging:\n  max_bytes: 4096\n  keep: 2\nplugins:\n  grants:\n    x:\n      commands: [{program: sh, args: [\"-c\", \"*\"]}]\n",
        b"sessions:\n  max_turns:\n    adaptive: true\n",
    ];
    let sources = sources_in(dir.path());
    obra_testkit::fuzz::fuzz("config files", seeds, |input| {
        std::fs::create_dir_all(dir.path().join(".obra")).unwrap();
        std::fs::write(dir.path().join(".obra/config.yaml"), input).unwrap();
        if let Err(e) = load(&sources) {
            assert!(!e.to_string().trim().is_empty(), "an error says something");
        }
    });
}
