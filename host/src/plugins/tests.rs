//! Runtime tests with real components: the test plugins of `plugins/testing/` and the built-ins, built once by
//! [`super::testing`]. Each hostile plugin must be stopped with an error naming the plugin and the cause, and the
//! next call on the same plugin must work again.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::testing::{target_dir, test_plugin, test_plugins_dir};
use super::*;
use crate::contract::{CallContext, GateInput, PluginError, RunRequest, RunResult, TaskInfo};

/// A compiled-component cache shared by the tests (compiling once makes them fast).
fn shared_cache() -> PathBuf {
    target_dir().join("obra-test-component-cache")
}

fn config(grants: &[(&str, UserGrant)]) -> PluginsConfig {
    PluginsConfig {
        cache_dir: Some(shared_cache()),
        grants: grants.iter().map(|(n, g)| (n.to_string(), g.clone())).collect(),
        ..PluginsConfig::default()
    }
}

fn host_with(grants: &[(&str, UserGrant)], plugins: &[&str]) -> PluginHost {
    let mut host = PluginHost::new(config(grants), None).unwrap();
    for name in plugins {
        host.load_path(&test_plugin(name).unwrap()).unwrap();
    }
    host
}

fn commands(patterns: &[CommandPattern]) -> UserGrant {
    UserGrant { commands: patterns.to_vec(), ..UserGrant::default() }
}

fn request(config: &str, prompt: &str, workspace: &Path) -> RunRequest {
    RunRequest {
        task: TaskInfo { id: 1, title: "t".into(), description: "d".into(), iteration: 1, max_iterations: 3 },
        prompt: prompt.into(),
        workspace: workspace.display().to_string(),
        resume_session: None,
        timeout_ms: 10_000,
        config: config.into(),
    }
}

/// A temporary copy of a plugin directory, to edit its manifest.
fn copy_dir(dir: &Path) -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, copy.path().join(path.file_name().unwrap())).unwrap();
    }
    copy
}

fn ctx(workspace: &Path) -> CallContext {
    CallContext { workspace: Some(workspace.to_path_buf()), ..CallContext::default() }
}

#[tokio::test]
async fn echo_agent_runs_reports_progress_and_runs_a_granted_program() {
    let echo = commands(&[CommandPattern::new("echo", &["**"])]);
    let host = host_with(&[("echo-agent", echo)], &["echo-agent"]);
    let agent = host.agent("echo-agent").unwrap();
    let ws = tempfile::tempdir().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let ctx = CallContext { progress: Some(tx), ..ctx(ws.path()) };

    let r = agent.run(&ctx, &request("{}", "hello", ws.path())).await.unwrap();
    assert_eq!(r.summary, "prompt has 5 bytes");
    let r = agent.run(&ctx, &request(r#"{"mode":"echo"}"#, "hello", ws.path())).await.unwrap();
    assert_eq!((r.summary.as_str(), r.exit_code), ("prompt has 5 bytes", Some(0)));
    assert_eq!(rx.try_recv().unwrap(), "echo prompt has 5 bytes");
    assert_eq!(agent.health(&ctx, "{}").await.unwrap(), "echo-agent 0.1.0");
    let bad = agent.run(&ctx, &request(r#"{"mode":"nope"}"#, "x", ws.path())).await.unwrap_err();
    assert!(matches!(bad, PluginError::Fatal(_)), "{bad:?}");
    assert_eq!(host.info("echo-agent").unwrap().instances_created, 1, "a plugin error keeps the instance");
    let d = host.describe("echo-agent").await.unwrap();
    assert_eq!((d.name.as_deref(), d.supports_resume), (Some("echo-agent"), Some(false)));
}

#[test]
fn the_host_and_its_handles_can_be_shared_across_tasks() {
    fn shareable<T: Send + Sync>() {}
    shareable::<PluginHost>();
    shareable::<Arc<dyn crate::contract::Agent>>();
}

#[tokio::test]
async fn many_calls_to_one_plugin_at_once_all_answer() {
    let host = host_with(&[], &["echo-agent"]);
    let agent = host.agent("echo-agent").unwrap();
    let ws = tempfile::tempdir().unwrap();
    let ctx = ctx(ws.path());
    let calls = (0..8).map(|i| {
        let agent = agent.clone();
        let ctx = ctx.clone();
        let req = request(r#"{"mode":"mirror"}"#, &"x".repeat(i), ws.path());
        async move { agent.run(&ctx, &req).await }
    });
    let results = futures_util::future::join_all(calls).await;
    for (i, r) in results.into_iter().enumerate() {
        assert_eq!(r.unwrap().summary.len(), i);
    }
}

#[tokio::test]
async fn concurrent_calls_to_one_plugin_do_not_wait_for_each_other() {
    // Two checks of the same gate plugin that can only finish together: each announces itself, then waits for
    // the other. Were calls to one plugin serialised, the first would wait in vain until its limit.
    let host = PluginHost::new(
        config(&[(
            "tests",
            UserGrant { commands: vec![CommandPattern::new("sh", &["-c", "*"])], ..Default::default() },
        )]),
        None,
    )
    .unwrap();
    let mut host = host;
    host.load_builtins(crate::builtin::BUILTINS).unwrap();
    let gate = host.quality_gate("tests").unwrap();
    let ws = tempfile::tempdir().unwrap();
    let meet = |me: &str, other: &str| {
        let dir = ws.path().display().to_string();
        let command = format!(
            "touch {dir}/{me}; i=0; while [ ! -f {dir}/{other} ]; do i=$((i+1)); [ $i -gt 200 ] && exit 1; sleep 0.05; done"
        );
        GateInput {
            task: TaskInfo { id: 1, title: "t".into(), description: "d".into(), iteration: 1, max_iterations: 1 },
            agent_result: RunResult::new(crate::contract::Outcome::Success, "done"),
            changes: Vec::new(),
            workspace: ws.path().display().to_string(),
            config: serde_json::json!({ "command": command }).to_string(),
        }
    };
    let (a, b) = (meet("a", "b"), meet("b", "a"));
    let ctx = ctx(ws.path());
    let (ra, rb) = tokio::join!(gate.check(&ctx, &a), gate.check(&ctx, &b));
    assert!(ra.unwrap().passed && rb.unwrap().passed, "both checks ran at the same time");
}

#[tokio::test]
async fn exec_outside_grant_is_denied_naming_the_config_line_and_the_plugin_keeps_working() {
    let grant = commands(&[CommandPattern::new("echo", &["**"])]);
    let host = host_with(&[("exec-outside-grant", grant)], &["exec-outside-grant"]);
    let agent = host.agent("exec-outside-grant").unwrap();
    let ws = tempfile::tempdir().unwrap();
    let ctx = ctx(ws.path());
    let run = |attempt: &str| request(&format!(r#"{{"attempt":"{attempt}"}}"#), "", ws.path());

    let e = agent.run(&ctx, &run("program")).await.unwrap_err();
    assert_eq!(
        e,
        PluginError::Denied(
            r#"plugin "exec-outside-grant" may not run "sh -c 'echo pwned'": the plugin's manifest does not declare it; its plugin.toml must list it under [capabilities] commands (e.g. { program = "sh", args = ["-c", "echo pwned"] }), and you must add it to plugins.grants.exec-outside-grant.commands in your config (e.g. - { program: sh, args: ["-c", "echo pwned"] })"#
                .into()
        )
    );
    let e = agent.run(&ctx, &run("env")).await.unwrap_err().to_string();
    assert!(e.contains("may not pass the environment variable OBRA_TEST_SECRET"), "{e}");
    let e = agent.run(&ctx, &run("cwd")).await.unwrap_err().to_string();
    assert!(e.contains(r#"may not run a program in "../..""#) && e.contains("leaves the workspace"), "{e}");
    let ok = agent.run(&ctx, &run("granted")).await.unwrap();
    assert_eq!(ok.summary, "ok");

    // The user's config does not grant what the manifest asks: the message says which config line to add.
    let host = host_with(&[], &["exec-outside-grant"]);
    let e = host.agent("exec-outside-grant").unwrap().run(&ctx, &run("granted")).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"denied: plugin "exec-outside-grant" may not run "echo ok": add it to plugins.grants.exec-outside-grant.commands in your config (e.g. - { program: echo, args: ["**"] })"#
    );
}

#[tokio::test]
async fn read_outside_workspace_is_refused_for_every_escape() {
    let grant = UserGrant { workspace: WorkspaceAccess::Read, ..UserGrant::default() };
    let host = host_with(&[("read-outside-workspace", grant)], &["read-outside-workspace"]);
    let agent = host.agent("read-outside-workspace").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    std::fs::create_dir(&ws).unwrap();
    std::fs::write(ws.join("README.md"), "inside").unwrap();
    std::fs::write(dir.path().join("secret.txt"), "secret").unwrap();
    std::os::unix::fs::symlink(dir.path().join("secret.txt"), ws.join("escape-link")).unwrap();
    let ctx = ctx(&ws);
    let run = |attempt: &str| request(&format!(r#"{{"attempt":"{attempt}"}}"#), "", &ws);

    let all = agent.run(&ctx, &run("all")).await.unwrap();
    assert_eq!(all.outcome, crate::contract::Outcome::PermissionDenied, "{}", all.summary);
    assert_eq!(all.permission_denials.len(), 5);
    for line in &all.permission_denials {
        assert!(line.contains(": denied: plugin \"read-outside-workspace\" may not"), "{line}");
    }
    let e = agent.run(&ctx, &run("symlink")).await.unwrap_err().to_string();
    assert!(e.contains("symbolic link") && e.contains("secret.txt"), "{e}");
    let e = agent.run(&ctx, &run("write")).await.unwrap_err().to_string();
    assert!(e.contains("set plugins.grants.read-outside-workspace.workspace to write"), "{e}");
    assert!(!ws.join("pwned.txt").exists());
    assert_eq!(agent.run(&ctx, &run("inside")).await.unwrap().summary, "inside");
}

/// An HTTP server on loopback answering every request with `response` and closing the connection (a response
/// should say `Connection: close`, or a client may reuse the closed connection); returns its base URL.
async fn http_server(response: &'static str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = socket.read(&mut buf).await;
            let _ = socket.write_all(response.as_bytes()).await;
        }
    });
    url
}

#[tokio::test]
async fn http_outside_grant_is_denied_and_redirects_are_not_followed() {
    let grant = UserGrant { http: vec!["config:base_url".into()], ..UserGrant::default() };
    let host = host_with(&[("http-outside-grant", grant)], &["http-outside-grant"]);
    let base = http_server(
        "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:9/\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    for streaming in [false, true] {
        let config = format!(r#"{{"base_url":"{base}","target":"http://127.0.0.1:9/x","streaming":{streaming}}}"#);
        let provider = host.llm_provider("http-outside-grant", &config).unwrap();
        let e = provider.complete(&Default::default()).await.unwrap_err().to_string();
        assert!(
            e.starts_with(r#"denied: plugin "http-outside-grant" may not connect to http://127.0.0.1:9: the plugin's manifest does not declare it"#)
                && e.contains("plugins.grants.http-outside-grant.http"),
            "{e}"
        );
        assert_eq!(provider.health().await.unwrap(), "granted origin answered HTTP 302");
    }
}

#[tokio::test]
async fn infinite_loop_is_stopped_by_the_cpu_budget_then_by_the_wall_clock_and_recovers() {
    let mut cfg = config(&[]);
    cfg.limits.cpu_ms_per_call = 300;
    let mut host = PluginHost::new(cfg, None).unwrap();
    host.load_path(&test_plugin("infinite-loop").unwrap()).unwrap();
    let agent = host.agent("infinite-loop").unwrap();
    let ws = tempfile::tempdir().unwrap();

    let e = agent.run(&ctx(ws.path()), &request("{}", "", ws.path())).await.unwrap_err();
    assert_eq!(
        e,
        PluginError::Trapped(
            r#"plugin "infinite-loop" used up its CPU budget in agent.run (limit 300 ms of guest CPU per call); the instance was discarded"#
                .into()
        )
    );
    assert_eq!(agent.health(&ctx(ws.path()), "{}").await.unwrap(), "ok");
    assert_eq!(host.info("infinite-loop").unwrap().instances_created, 2);

    let short = CallContext { timeout: Some(Duration::from_millis(100)), ..ctx(ws.path()) };
    let mut cfg = config(&[]);
    cfg.limits.cpu_ms_per_call = 600_000;
    let mut host = PluginHost::new(cfg, None).unwrap();
    host.load_path(&test_plugin("infinite-loop").unwrap()).unwrap();
    let agent = host.agent("infinite-loop").unwrap();
    let e = agent.run(&short, &request("{}", "", ws.path())).await.unwrap_err();
    assert_eq!(
        e,
        PluginError::Timeout(
            r#"plugin "infinite-loop" did not finish agent.run within 0.1 s (wall-clock limit); the instance was discarded"#
                .into()
        )
    );
    assert_eq!(agent.health(&short, "{}").await.unwrap(), "ok");
}

#[tokio::test]
async fn memory_bomb_runs_out_of_memory_and_recovers() {
    let host = host_with(&[], &["memory-bomb"]);
    let agent = host.agent("memory-bomb").unwrap();
    let ws = tempfile::tempdir().unwrap();
    let e = agent.run(&ctx(ws.path()), &request("{}", "", ws.path())).await.unwrap_err();
    assert_eq!(
        e,
        PluginError::Trapped(
            r#"plugin "memory-bomb" ran out of memory in agent.run (limit 32 MiB); the instance was discarded"#.into()
        )
    );
    assert_eq!(agent.health(&ctx(ws.path()), "{}").await.unwrap(), "ok");
    assert_eq!(host.info("memory-bomb").unwrap().instances_created, 2);
}

#[test]
fn undeclared_import_is_refused_at_load() {
    let mut host = PluginHost::new(config(&[]), None).unwrap();
    let e = host.load_path(&test_plugin("undeclared-import").unwrap()).unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, PluginHostError::Refused { ref plugin, .. } if plugin == "undeclared-import"), "{e}");
    assert!(
        text.contains(r#"plugin "undeclared-import" imports obra:plugin/process@0.1.0, but its manifest does not declare that capability"#),
        "{text}"
    );
    assert!(host.list().is_empty());
}

#[test]
fn wrong_api_is_refused_naming_both_versions() {
    let mut host = PluginHost::new(config(&[]), None).unwrap();
    let dir = test_plugin("wrong-api").unwrap();
    let e = host.load_path(&dir).unwrap_err().to_string();
    assert!(e.contains("key `api-version`") && e.contains("API 0.2.0, but this Obra serves 0.1.0"), "{e}");

    // A manifest that lies about the version: the component's own imports and exports give it away.
    let copy = copy_dir(&dir);
    let manifest = std::fs::read_to_string(copy.path().join("plugin.toml")).unwrap();
    std::fs::write(
        copy.path().join("plugin.toml"),
        manifest.replace("api-version = \"0.2.0\"", "api-version = \"0.1.0\""),
    )
    .unwrap();
    let e = host.load_path(copy.path()).unwrap_err().to_string();
    assert!(e.contains("imports obra:plugin/log@0.2.0 but its manifest says api-version = \"0.1.0\""), "{e}");
    assert!(e.contains("does not export obra:plugin/agent@0.1.0 (it exports obra:plugin/agent@0.2.0)"), "{e}");
}

#[test]
fn compiled_components_are_cached_across_hosts() {
    let cache = tempfile::tempdir().unwrap();
    let cfg = PluginsConfig { cache_dir: Some(cache.path().to_path_buf()), ..PluginsConfig::default() };
    let dir = test_plugin("echo-agent").unwrap();

    let mut first = PluginHost::new(cfg.clone(), None).unwrap();
    first.load_path(&dir).unwrap();
    assert_eq!(first.cache_stats(), (0, 1));
    assert_eq!(first.info("echo-agent").unwrap().cache, CacheOutcome::Compiled);

    let mut second = PluginHost::new(cfg.clone(), None).unwrap();
    second.load_path(&dir).unwrap();
    assert_eq!(second.cache_stats(), (1, 0));
    assert_eq!(second.info("echo-agent").unwrap().cache, CacheOutcome::Hit);

    for entry in std::fs::read_dir(cache.path()).unwrap() {
        std::fs::write(entry.unwrap().path(), b"corrupt").unwrap();
    }
    let mut third = PluginHost::new(cfg, None).unwrap();
    third.load_path(&dir).unwrap();
    assert_eq!(third.info("echo-agent").unwrap().cache, CacheOutcome::Recompiled);
}

#[test]
fn builtins_load_with_the_default_config_and_cannot_be_overridden_unless_allowed() {
    let root = test_plugins_dir().unwrap();
    let mut names = Vec::new();
    let mut owned = Vec::new();
    let testing = super::testing::workspace_root().join("plugins").join("testing");
    for entry in std::fs::read_dir(root).unwrap() {
        let dir = entry.unwrap().path();
        if testing.join(dir.file_name().unwrap()).exists() {
            continue; // a test plugin (the layout of build.rs puts them beside the built-ins)
        }
        let Ok(manifest) = std::fs::read_to_string(dir.join("plugin.toml")) else {
            continue;
        };
        let wasm = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|x| x == "wasm"))
            .unwrap();
        names.push(dir.file_name().unwrap().to_string_lossy().into_owned());
        owned.push((manifest, std::fs::read(wasm).unwrap()));
    }
    let builtins: Vec<BuiltinPlugin<'_>> = owned.iter().map(|(m, w)| BuiltinPlugin { manifest: m, wasm: w }).collect();
    assert!(builtins.len() >= 7, "{names:?}");

    let defaults = PluginsConfig { cache_dir: Some(shared_cache()), ..PluginsConfig::default() };
    let mut host = PluginHost::new(defaults, None).unwrap();
    host.load_builtins(&builtins).unwrap();
    for info in host.list() {
        // The default grants may narrow env lists, but allow every command, origin and workspace access asked;
        // the exception is the command agent, which runs only what the user grants (nothing by default).
        let by_design =
            |r: &String| info.name == "command" && r.starts_with("commands: it runs the programs you grant");
        let refused = info.grant.refused.iter().filter(|r| !r.starts_with("env ") && !by_design(r));
        assert_eq!(refused.count(), 0, "{}: {:?}", info.name, info.grant.refused);
    }
    assert!(host.agent("claude-code").is_ok());
    assert!(host.llm_provider("ollama", "{}").is_ok());
    assert!(host.quality_gate("tests").is_ok());
    assert!(host.breakpoint_rule("low-confidence").is_ok());

    let e = host.load_path(&root.join("replay")).unwrap_err();
    assert!(matches!(e, PluginHostError::BuiltinClash { .. }), "{e}");
    assert!(e.to_string().contains("plugins.allow_override_builtin: true"), "{e}");

    let mut cfg = config(&[]);
    cfg.allow_override_builtin = true;
    let mut host = PluginHost::new(cfg, None).unwrap();
    host.load_builtins(&builtins).unwrap();
    host.load_path(&root.join("replay")).unwrap();
    assert!(host.info("replay").unwrap().overrides_builtin);
}

#[test]
fn lookups_name_the_available_plugins() {
    let host = host_with(&[], &["echo-agent", "infinite-loop"]);
    let e = host.agent("nope").err().unwrap().to_string();
    assert_eq!(e, r#"there is no agent plugin named "nope"; available agent plugins: echo-agent, infinite-loop"#);
    let e = host.quality_gate("echo-agent").err().unwrap().to_string();
    assert_eq!(e, r#"plugin "echo-agent" is a agent, not a quality-gate; no quality-gate plugins are loaded"#);
}

#[test]
fn search_path_loads_every_plugin_and_reports_broken_ones() {
    let root = test_plugins_dir().unwrap();
    let mut cfg = config(&[]);
    cfg.search_path = vec![root.to_path_buf(), root.join("testing")];
    let mut host = PluginHost::new(cfg, None).unwrap();
    let report = host.load_search_path(None);
    assert!(report.loaded.contains(&"claude-code".to_string()) && report.loaded.contains(&"echo-agent".to_string()));
    let errors: Vec<String> = report.errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(errors.iter().any(|e| e.contains("undeclared-import")));
    assert!(errors.iter().any(|e| e.contains("0.2.0")));
}

#[test]
fn check_reports_each_step_and_the_effective_grant() {
    let host = PluginHost::new(config(&[]), None).unwrap();
    let report = host.check(&test_plugin("echo-agent").unwrap().join("plugin.toml"));
    assert!(report.ok, "{report:#?}");
    let steps: Vec<&str> = report.steps.iter().map(|s| s.step).collect();
    assert_eq!(steps, ["manifest", "sha256", "component", "imports", "exports", "compile", "link"]);
    let grant = report.grant.unwrap();
    assert!(grant.commands.is_empty());
    assert_eq!(
        grant.refused,
        [
            r#"command { program: echo, args: ["**"] } is not (fully) allowed: add - { program: echo, args: ["**"] } to plugins.grants.echo-agent.commands"#,
            "workspace write is not allowed: set plugins.grants.echo-agent.workspace to write",
        ]
    );

    let report = host.check(&test_plugin("undeclared-import").unwrap());
    assert!(!report.ok);
    let imports = report.steps.iter().find(|s| s.step == "imports").unwrap();
    assert!(!imports.ok && imports.detail.contains("obra:plugin/process@0.1.0"), "{imports:?}");
    assert_eq!(report.steps.last().unwrap().step, "exports");

    let report = host.check(Path::new("/nonexistent"));
    assert!(!report.ok && report.steps[0].detail.contains("no plugin.toml here"));
}

#[test]
fn a_sha256_mismatch_is_refused() {
    let dir = test_plugin("echo-agent").unwrap();
    let copy = copy_dir(&dir);
    let manifest = std::fs::read_to_string(copy.path().join("plugin.toml")).unwrap();
    let wrong: String = manifest
        .lines()
        .map(|l| if l.starts_with("sha256") { format!("sha256 = \"{}\"\n", "0".repeat(64)) } else { format!("{l}\n") })
        .collect();
    assert_ne!(wrong, manifest, "the built plugin pins its sha256");
    std::fs::write(copy.path().join("plugin.toml"), wrong).unwrap();
    let mut host = PluginHost::new(config(&[]), None).unwrap();
    let e = host.load_path(copy.path()).unwrap_err().to_string();
    assert!(e.contains("echo_agent.wasm: key `sha256`: the component's sha256 is"), "{e}");
}

#[test]
fn a_directory_plugin_without_sha256_is_refused_with_the_line_to_add() {
    let dir = test_plugin("echo-agent").unwrap();
    let copy = copy_dir(&dir);
    let manifest = std::fs::read_to_string(copy.path().join("plugin.toml")).unwrap();
    let unpinned: String = manifest.lines().filter(|l| !l.starts_with("sha256")).map(|l| format!("{l}\n")).collect();
    std::fs::write(copy.path().join("plugin.toml"), unpinned).unwrap();
    let wasm = std::fs::read(copy.path().join("echo_agent.wasm")).unwrap();
    let mut host = PluginHost::new(config(&[]), None).unwrap();
    let e = host.load_path(copy.path()).unwrap_err().to_string();
    let line = format!("add sha256 = \"{}\"", crate::plugins::manifest::sha256_hex(&wasm));
    assert!(e.contains(&line), "{e}");
    let report = host.check(copy.path());
    assert!(!report.ok && report.steps.iter().any(|s| s.step == "sha256" && !s.ok && s.detail.contains(&line)));
}

#[test]
fn a_pin_in_the_config_refuses_a_component_rewritten_with_its_manifest() {
    // The workspace copy was rebuilt and its plugin.toml re-pinned to match: the manifest check passes, the
    // pin from the user's configuration does not.
    let dir = test_plugin("echo-agent").unwrap();
    let copy = copy_dir(&dir);
    let wasm = std::fs::read(copy.path().join("echo_agent.wasm")).unwrap();
    let actual = crate::plugins::manifest::sha256_hex(&wasm);
    let mut pinned = config(&[]);
    pinned.pins.insert("echo-agent".into(), "ab".repeat(32));
    let mut host = PluginHost::new(pinned.clone(), None).unwrap();
    let e = host.load_path(copy.path()).unwrap_err().to_string();
    assert!(e.contains("plugins.pins.echo-agent") && e.contains(&actual), "{e}");

    pinned.pins.insert("echo-agent".into(), actual.to_uppercase());
    let mut host = PluginHost::new(pinned, None).unwrap();
    assert_eq!(host.load_path(copy.path()).unwrap(), "echo-agent", "the right pin loads it");
}

mod capabilities {
    //! The capability implementations called directly on a store's state (no component needed).

    use super::*;
    use crate::contract::{Completion, CompletionRequest, KV_BYTES_PER_KEY, KvStore, KvWrite, LlmProvider};
    use crate::plugins::bindings::v0_1_0::caps;
    use crate::plugins::instance_state::{HostServices, StoreState};

    fn state(grant: UserGrant, requested: manifest::Capabilities, kv: Option<Arc<dyn KvStore>>) -> StoreState {
        let grant = EffectiveGrant::new("p", &requested, &grant, &LimitsConfig::default(), &Default::default());
        StoreState::new("p".into(), Arc::new(grant), Default::default(), Arc::new(HostServices::new(kv).unwrap()))
    }

    fn options() -> caps::process::RunOptions {
        caps::process::RunOptions { cwd: None, env: vec![], stdin: None, timeout_ms: None, max_output_bytes: None }
    }

    #[tokio::test]
    async fn a_denied_program_has_no_side_effect() {
        use caps::process::Host;
        let ws = tempfile::tempdir().unwrap();
        let marker = ws.path().join("marker");
        let script = format!("touch {}", marker.display());
        let sh = CommandPattern::new("sh", &["-c", "*"]);
        let requested = manifest::Capabilities { commands: vec![sh.clone()], ..Default::default() };

        let mut denied = state(UserGrant::default(), requested.clone(), None);
        let r = denied.run("sh".into(), vec!["-c".into(), script.clone()], options()).await.unwrap();
        assert!(matches!(r, Err(caps::types::PluginError::Denied(_))));
        assert!(!marker.exists(), "a denied command must not run");

        let mut allowed = state(commands(&[sh]), requested, None);
        allowed.begin_call("agent.run", &ctx(ws.path()), None, 1);
        let out = allowed.run("sh".into(), vec!["-c".into(), script], options()).await.unwrap().unwrap();
        assert_eq!(out.exit_code, Some(0));
        assert!(marker.exists(), "the control run creates the marker");
    }

    #[tokio::test]
    async fn processes_get_only_granted_env_capped_output_and_a_time_limit() {
        use caps::process::{Host, HostChild};
        let sh = CommandPattern::new("sh", &["-c", "*"]);
        let requested =
            manifest::Capabilities { commands: vec![sh.clone()], env: vec!["FOO".into()], ..Default::default() };
        let grant = UserGrant { env: vec!["FOO".into()], ..commands(&[sh]) };
        let mut s = state(grant, requested, None);
        let ws = tempfile::tempdir().unwrap();
        s.begin_call("agent.run", &ctx(ws.path()), None, 1);
        let run = |script: &str| vec!["-c".to_string(), script.to_string()];

        let env = vec![caps::types::KeyValue { key: "FOO".into(), value: "bar".into() }];
        let out = s.run("sh".into(), run("env | sort"), caps::process::RunOptions { env, ..options() }).await;
        let out = out.unwrap().unwrap();
        let vars: Vec<&str> =
            out.stdout.lines().filter(|l| !l.starts_with("PWD=") && !l.starts_with("SHLVL=")).collect();
        assert_eq!(vars, ["FOO=bar"], "only the granted variable: {}", out.stdout);

        let capped = caps::process::RunOptions { max_output_bytes: Some(10), ..options() };
        let out = s.run("sh".into(), run("yes | head -c 100000"), capped).await.unwrap().unwrap();
        assert_eq!((out.stdout.len(), out.truncated), (10, true));

        let quick = caps::process::RunOptions { timeout_ms: Some(200), ..options() };
        let out = s.run("sh".into(), run("sleep 30"), quick).await.unwrap().unwrap();
        assert!(out.timed_out && out.duration_ms < 5000, "{out:?}");

        let child = s.spawn("sh".into(), run("echo one; echo two >&2; echo three"), options()).await.unwrap().unwrap();
        let rep = child.rep();
        let mut lines = Vec::new();
        while let Some(line) = s.next_line(wasmtime::component::Resource::new_borrow(rep)).await.unwrap().unwrap() {
            lines.push(line);
        }
        assert_eq!(lines, ["one", "three"]);
        let done = s.wait(wasmtime::component::Resource::new_borrow(rep)).await.unwrap().unwrap();
        assert_eq!((done.exit_code, done.stderr.as_str()), (Some(0), "two\n"));
        HostChild::drop(&mut s, child).await.unwrap();

        let slow = caps::process::RunOptions { timeout_ms: Some(200), ..options() };
        let child = s.spawn("sh".into(), run("sleep 30"), slow).await.unwrap().unwrap();
        let e = s.next_line(wasmtime::component::Resource::new_borrow(child.rep())).await.unwrap().unwrap_err();
        assert!(matches!(&e, caps::types::PluginError::Timeout(m) if m.contains("was killed")), "{e:?}");
    }

    #[tokio::test]
    async fn workspace_reads_writes_and_caps() {
        use caps::workspace::Host;
        let requested = manifest::Capabilities { workspace: WorkspaceAccess::Write, ..Default::default() };
        let grant = UserGrant { workspace: WorkspaceAccess::Write, ..UserGrant::default() };
        let mut s = state(grant, requested, None);
        let ws = tempfile::tempdir().unwrap();
        s.begin_call("quality-gate.check", &ctx(ws.path()), None, 1);
        s.write_file("a/b/c.txt".into(), b"hello".to_vec()).await.unwrap().unwrap();
        assert_eq!(s.read_file("a/b/c.txt".into()).await.unwrap().unwrap(), b"hello");
        let entries = s.list_dir("a/b".into()).await.unwrap().unwrap();
        assert_eq!((entries[0].name.as_str(), entries[0].size), ("c.txt", 5));
        s.remove_file("a/b/c.txt".into()).await.unwrap().unwrap();
        assert!(!ws.path().join("a/b/c.txt").exists());
        assert!(s.write_file("../x".into(), vec![]).await.unwrap().is_err());

        let small = UserGrant { workspace: WorkspaceAccess::Read, ..UserGrant::default() };
        let requested = manifest::Capabilities { workspace: WorkspaceAccess::Read, ..Default::default() };
        let limits = manifest::ManifestLimits { max_file_read_bytes: Some(3), ..Default::default() };
        let grant = EffectiveGrant::new("p", &requested, &small, &LimitsConfig::default(), &limits);
        let mut s = StoreState::new(
            "p".into(),
            Arc::new(grant),
            Default::default(),
            Arc::new(HostServices::new(None).unwrap()),
        );
        s.begin_call("quality-gate.check", &ctx(ws.path()), None, 1);
        std::fs::write(ws.path().join("big.txt"), "1234").unwrap();
        let e = s.read_file("big.txt".into()).await.unwrap().unwrap_err();
        assert!(matches!(&e, caps::types::PluginError::Fatal(m) if m.contains("read cap of 3 bytes")), "{e:?}");
    }

    #[tokio::test]
    async fn http_bodies_are_capped_while_streaming() {
        use caps::http::{Host, HostResponseStream};
        let base = http_server("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n0123456789abcdef").await;
        let requested = manifest::Capabilities { http: vec![base.clone()], ..Default::default() };
        let allowed = UserGrant { http: vec![base.clone()], ..UserGrant::default() };
        let limits = manifest::ManifestLimits { max_http_body_bytes: Some(8), ..Default::default() };
        let grant = EffectiveGrant::new("p", &requested, &allowed, &LimitsConfig::default(), &limits);
        let mut s = StoreState::new(
            "p".into(),
            Arc::new(grant),
            Default::default(),
            Arc::new(HostServices::new(None).unwrap()),
        );
        let get = || caps::http::Request {
            method: "GET".into(),
            url: format!("{base}/x"),
            headers: vec![],
            body: None,
            timeout_ms: Some(5000),
        };
        let e = s.send(get()).await.unwrap().unwrap_err();
        assert!(matches!(&e, caps::types::PluginError::Fatal(m) if m.contains("cap of 8 bytes")), "{e:?}");

        let stream = s.send_streaming(get()).await.unwrap().unwrap();
        let rep = stream.rep();
        assert_eq!(s.status(wasmtime::component::Resource::new_borrow(rep)).await.unwrap(), 200);
        let mut got = Vec::new();
        let e = loop {
            match s.next_chunk(wasmtime::component::Resource::new_borrow(rep)).await.unwrap() {
                Ok(Some(chunk)) => got.extend(chunk),
                Ok(None) => panic!("the body passed the cap but the stream ended cleanly"),
                Err(e) => break e,
            }
        };
        assert!(got.len() <= 8 && matches!(e, caps::types::PluginError::Fatal(_)), "{got:?} {e:?}");
        HostResponseStream::drop(&mut s, stream).await.unwrap();
    }

    fn state_with_limits(
        grant: UserGrant,
        requested: manifest::Capabilities,
        limits: manifest::ManifestLimits,
        quotas: Arc<crate::plugins::quota::PluginQuotas>,
    ) -> StoreState {
        let grant = EffectiveGrant::new("p", &requested, &grant, &LimitsConfig::default(), &limits);
        StoreState::new("p".into(), Arc::new(grant), quotas, Arc::new(HostServices::new(None).unwrap()))
    }

    fn denied_message(e: caps::types::PluginError) -> String {
        match e {
            caps::types::PluginError::Denied(m) => m,
            other => panic!("expected a denial, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn live_children_are_counted_per_plugin_over_its_instances_and_freed_on_drop() {
        use caps::process::{Host, HostChild};
        let sh = CommandPattern::new("sh", &["-c", "*"]);
        let requested = manifest::Capabilities { commands: vec![sh.clone()], ..Default::default() };
        let limits = manifest::ManifestLimits { max_children: Some(3), ..Default::default() };
        let quotas = Arc::new(crate::plugins::quota::PluginQuotas::default());
        let ws = tempfile::tempdir().unwrap();
        let instance = || {
            let mut s =
                state_with_limits(commands(std::slice::from_ref(&sh)), requested.clone(), limits, quotas.clone());
            s.begin_call("agent.run", &ctx(ws.path()), None, 1);
            s
        };
        let sleep = || vec!["-c".to_string(), "sleep 30".to_string()];
        let (mut first, mut second) = (instance(), instance());
        let mut held = Vec::new();
        for _ in 0..2 {
            held.push(first.spawn("sh".into(), sleep(), options()).await.unwrap().unwrap());
        }
        let other_instance_child = second.spawn("sh".into(), sleep(), options()).await.unwrap().unwrap();
        // The fourth, from either instance, by spawn or run, is denied before anything starts.
        let marker = ws.path().join("started");
        let touch = vec!["-c".to_string(), format!("touch {}", marker.display())];
        let e = denied_message(first.spawn("sh".into(), touch.clone(), options()).await.unwrap().unwrap_err());
        assert!(e.contains("quota of 3 live child processes") && e.contains("plugins.limits.max_children"), "{e}");
        let e = denied_message(second.run("sh".into(), touch.clone(), options()).await.unwrap().unwrap_err());
        assert!(e.contains("plugins.limits.max_children"), "{e}");
        assert!(!marker.exists(), "a program over the quota must not start");
        // Another plugin has its own count.
        let mut other_plugin =
            state_with_limits(commands(std::slice::from_ref(&sh)), requested.clone(), limits, Default::default());
        other_plugin.begin_call("agent.run", &ctx(ws.path()), None, 1);
        let out = other_plugin.run("sh".into(), vec!["-c".into(), "echo ok".into()], options()).await.unwrap().unwrap();
        assert_eq!(out.stdout, "ok\n");
        // Dropping a handle frees its place; dropping a whole instance frees all of its children.
        HostChild::drop(&mut first, held.pop().unwrap()).await.unwrap();
        let out = second.run("sh".into(), touch.clone(), options()).await.unwrap().unwrap();
        assert_eq!(out.exit_code, Some(0));
        assert!(marker.exists());
        drop(first);
        assert_eq!(quotas.held(crate::plugins::quota::Counted::Child), 1, "only the second instance's child is left");
        HostChild::drop(&mut second, other_instance_child).await.unwrap();
        assert_eq!(quotas.held(crate::plugins::quota::Counted::Child), 0);
    }

    #[tokio::test]
    async fn open_http_streams_are_capped_and_a_finished_stream_frees_its_place() {
        use caps::http::{Host, HostResponseStream};
        let base = http_server("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nbody").await;
        let requested = manifest::Capabilities { http: vec![base.clone()], ..Default::default() };
        let allowed = UserGrant { http: vec![base.clone()], ..UserGrant::default() };
        let limits = manifest::ManifestLimits { max_http_streams: Some(2), ..Default::default() };
        let quotas = Arc::new(crate::plugins::quota::PluginQuotas::default());
        let mut s = state_with_limits(allowed, requested, limits, quotas.clone());
        let get = || caps::http::Request {
            method: "GET".into(),
            url: format!("{base}/x"),
            headers: vec![],
            body: None,
            timeout_ms: Some(5000),
        };
        let first = s.send_streaming(get()).await.unwrap().unwrap();
        let _second = s.send_streaming(get()).await.unwrap().unwrap();
        let e = denied_message(s.send(get()).await.unwrap().unwrap_err());
        assert!(e.contains("quota of 2 open HTTP requests and streams") && e.contains("max_http_streams"), "{e}");
        assert!(s.send_streaming(get()).await.unwrap().is_err());
        // Read the first to its end: its place comes back though the guest still holds the handle.
        let rep = first.rep();
        while s.next_chunk(wasmtime::component::Resource::new_borrow(rep)).await.unwrap().unwrap().is_some() {}
        let response = s.send(get()).await.unwrap().unwrap();
        assert_eq!(response.body, b"body");
        assert_eq!(quotas.held(crate::plugins::quota::Counted::HttpStream), 1, "a finished send holds nothing");
    }

    #[tokio::test]
    async fn log_and_progress_volume_per_call_is_capped_with_one_warning_and_resets_each_call() {
        use caps::log::{Host, Level};
        let limits = manifest::ManifestLimits {
            log_bytes_per_call: Some(1000),
            progress_bytes_per_call: Some(1000),
            ..Default::default()
        };
        let mut s = state_with_limits(UserGrant::default(), Default::default(), limits, Default::default());
        let ws = tempfile::tempdir().unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let call = CallContext { progress: Some(tx), ..ctx(ws.path()) };
        s.begin_call("agent.run", &call, None, 1);
        for i in 0..100 {
            s.progress(format!("{i:0>99}")).await.unwrap();
            s.log(Level::Info, "x".repeat(100)).await.unwrap();
        }
        let mut lines = Vec::new();
        while let Ok(line) = rx.try_recv() {
            lines.push(line);
        }
        assert_eq!(lines.len(), 11, "10 lines of 99 bytes fit, then one warning: {lines:?}");
        let warning = lines.last().unwrap();
        assert!(warning.contains("plugins.limits.progress_bytes_per_call") && warning.contains("1000"), "{warning}");
        assert!(s.call.log_bytes > 1000, "the log lines were counted against their own quota");
        // The next call starts afresh.
        s.begin_call("agent.run", &call, None, 1);
        s.progress("again".into()).await.unwrap();
        assert_eq!(rx.try_recv().unwrap(), "again");
    }

    #[tokio::test]
    async fn kv_values_and_the_whole_store_are_under_quota_and_the_denial_names_the_key() {
        use caps::kv::Host;
        let store = Arc::new(MemoryKv(Default::default()));
        let requested = manifest::Capabilities { kv: true, ..Default::default() };
        let limits = manifest::ManifestLimits {
            kv_value_bytes: Some(1000),
            kv_total_bytes: Some(3 * (1000 + KV_BYTES_PER_KEY)),
            ..Default::default()
        };
        let grant = EffectiveGrant::new(
            "p",
            &requested,
            &UserGrant { kv: true, ..UserGrant::default() },
            &LimitsConfig::default(),
            &limits,
        );
        let mut s = StoreState::new(
            "p".into(),
            Arc::new(grant),
            Default::default(),
            Arc::new(HostServices::new(Some(store.clone())).unwrap()),
        );
        let e = denied_message(s.set("big".into(), vec![0; 1001]).await.unwrap().unwrap_err());
        assert!(e.contains("plugins.limits.kv_value_bytes"), "{e}");
        for key in ["a", "b", "c"] {
            s.set(key.into(), vec![0; 1000]).await.unwrap().unwrap();
        }
        let e = denied_message(s.set("d".into(), vec![0; 1]).await.unwrap().unwrap_err());
        assert!(e.contains("plugins.limits.kv_total_bytes") && e.contains("delete keys first"), "{e}");
        assert_eq!(s.get("d".into()).await.unwrap().unwrap(), None);
        s.delete("a".into()).await.unwrap().unwrap();
        s.set("d".into(), vec![0; 1]).await.unwrap().unwrap();
    }

    struct MemoryKv(std::sync::Mutex<std::collections::HashMap<(String, String), Vec<u8>>>);

    #[async_trait::async_trait]
    impl KvStore for MemoryKv {
        async fn get(&self, plugin: &str, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
            Ok(self.0.lock().unwrap().get(&(plugin.into(), key.into())).cloned())
        }
        async fn set(&self, plugin: &str, key: &str, value: &[u8], max: u64) -> anyhow::Result<KvWrite> {
            let mut map = self.0.lock().unwrap();
            let used: u64 = map
                .iter()
                .filter(|((p, k), _)| p == plugin && k != key)
                .map(|(_, v)| v.len() as u64 + KV_BYTES_PER_KEY)
                .sum();
            if used + value.len() as u64 + KV_BYTES_PER_KEY > max {
                return Ok(KvWrite::OverQuota { used });
            }
            map.insert((plugin.into(), key.into()), value.to_vec());
            Ok(KvWrite::Stored)
        }
        async fn delete(&self, plugin: &str, key: &str) -> anyhow::Result<()> {
            self.0.lock().unwrap().remove(&(plugin.into(), key.into()));
            Ok(())
        }
    }

    #[tokio::test]
    async fn kv_needs_the_grant_and_is_private_to_the_plugin() {
        use caps::kv::Host;
        let store = Arc::new(MemoryKv(Default::default()));
        let requested = manifest::Capabilities { kv: true, ..Default::default() };
        let mut denied = state(UserGrant::default(), requested.clone(), Some(store.clone()));
        assert!(matches!(denied.get("k".into()).await.unwrap(), Err(caps::types::PluginError::Denied(_))));
        let mut s = state(UserGrant { kv: true, ..UserGrant::default() }, requested, Some(store.clone()));
        s.set("k".into(), b"v".to_vec()).await.unwrap().unwrap();
        assert_eq!(s.get("k".into()).await.unwrap().unwrap(), Some(b"v".to_vec()));
        assert!(store.0.lock().unwrap().contains_key(&("p".to_string(), "k".to_string())));
        s.delete("k".into()).await.unwrap().unwrap();
        assert_eq!(s.get("k".into()).await.unwrap().unwrap(), None);
        assert!(s.set("k".into(), vec![0; kv_cap() + 1]).await.unwrap().is_err());
    }

    fn kv_cap() -> usize {
        crate::plugins::config::LimitsConfig::default().kv_value_bytes as usize
    }

    struct CannedLlm(&'static str);

    #[async_trait::async_trait]
    impl LlmProvider for CannedLlm {
        fn name(&self) -> &str {
            "canned"
        }
        async fn health(&self) -> Result<String, PluginError> {
            Ok("ok".into())
        }
        async fn list_models(&self) -> Result<Vec<String>, PluginError> {
            Ok(vec![])
        }
        async fn complete(&self, _: &CompletionRequest) -> Result<Completion, PluginError> {
            Ok(Completion { text: self.0.into(), model: "m".into(), ..Default::default() })
        }
    }

    #[tokio::test]
    async fn llm_forwards_to_the_call_context_and_checks_json() {
        use caps::llm::Host;
        let requested = manifest::Capabilities { llm: true, ..Default::default() };
        let request = |schema: Option<&str>| caps::types::CompletionRequest {
            messages: vec![],
            json_schema: schema.map(String::from),
            temperature: None,
            max_tokens: None,
        };
        let mut denied = state(UserGrant::default(), requested.clone(), None);
        assert!(matches!(denied.complete(request(None)).await.unwrap(), Err(caps::types::PluginError::Denied(_))));

        let mut s = state(UserGrant { llm: true, ..UserGrant::default() }, requested, None);
        s.begin_call("quality-gate.check", &CallContext::default(), None, 1);
        let e = s.complete(request(None)).await.unwrap().unwrap_err();
        assert!(matches!(&e, caps::types::PluginError::Fatal(m) if m.contains("no LLM provider is configured")));

        let with = |text| CallContext { llm: Some(Arc::new(CannedLlm(text))), ..CallContext::default() };
        s.begin_call("quality-gate.check", &with("plain"), None, 1);
        assert_eq!(s.complete(request(None)).await.unwrap().unwrap().text, "plain");
        let e = s.complete(request(Some("{}"))).await.unwrap().unwrap_err();
        assert!(matches!(e, caps::types::PluginError::Retryable(_)));
        s.begin_call("quality-gate.check", &with(r#"{"ok":true}"#), None, 1);
        assert_eq!(s.complete(request(Some("{}"))).await.unwrap().unwrap().text, r#"{"ok":true}"#);
    }
}

/// Issue 18 item 6: plugins from the search path (and the built-ins) are checked at load but compiled only when
/// a command needs them: `prepare` compiles the named ones, saying so once when the cache lacks one, and a
/// plugin never prepared is compiled at its first call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_path_plugins_compile_only_when_needed_and_prepare_says_so_once() {
    let root = test_plugins_dir().unwrap();
    let host_in = |cache: &Path| {
        let mut cfg = config(&[("echo-agent", commands(&[CommandPattern::new("echo", &["**"])]))]);
        cfg.cache_dir = Some(cache.to_path_buf());
        cfg.search_path = vec![root.to_path_buf()];
        let mut host = PluginHost::new(cfg, None).unwrap();
        let report = host.load_search_path(None);
        assert!(report.loaded.len() >= 5, "{report:?}");
        host
    };
    let cache = tempfile::tempdir().unwrap();
    let host = host_in(cache.path());
    assert_eq!(host.cache_stats(), (0, 0), "loading compiled nothing");
    assert!(host.list().iter().all(|i| i.cache == CacheOutcome::NotYet), "{:?}", host.list());

    let mut said = 0;
    host.prepare(&["echo-agent", "no-such-plugin", "echo-agent", "replay"], || said += 1).unwrap();
    assert_eq!((said, host.cache_stats()), (1, (0, 2)), "two plugins compiled, the notice said once");
    assert_eq!(host.info("echo-agent").unwrap().cache, CacheOutcome::Compiled);
    host.prepare(&["echo-agent"], || said += 1).unwrap();
    assert_eq!((said, host.cache_stats()), (1, (0, 2)), "prepared already: nothing to say or compile");
    let compiled = host.list().iter().filter(|i| i.cache != CacheOutcome::NotYet).count();
    assert_eq!(compiled, 2, "the others are still not compiled: {:?}", host.list());

    // A plugin nobody prepared compiles at its first call (here from the cache the first host filled), and
    // works; preparing it later has nothing to do.
    let second = host_in(cache.path());
    let agent = second.agent("echo-agent").unwrap();
    assert_eq!(second.cache_stats(), (0, 0), "a handle compiles nothing");
    let ws = tempfile::tempdir().unwrap();
    let r = agent.run(&ctx(ws.path()), &request("{}", "hello", ws.path())).await.unwrap();
    assert_eq!(r.summary, "prompt has 5 bytes");
    assert_eq!((second.cache_stats(), second.info("echo-agent").unwrap().cache), ((1, 0), CacheOutcome::Hit));
    second.prepare(&["echo-agent"], || panic!("nothing to compile")).unwrap();
}
