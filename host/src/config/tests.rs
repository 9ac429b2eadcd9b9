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
