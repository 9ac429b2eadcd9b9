//! The cost of a plugin call round trip: `agent.run` on the `echo-agent` test plugin in `mirror` mode, with a
//! 10 KB prompt that comes back as the summary (lowering the request into the guest, the guest's JSON config
//! parse, lifting the 10 KB result). Also the warm start: loading a plugin whose compiled component is cached,
//! and the first call, which instantiates it.
//!
//! Run: `cargo bench -p obra --bench plugin_call` (uses the plugins the build made, or `OBRA_TEST_PLUGINS_DIR`).
//! Prints median and p95.

use std::time::{Duration, Instant};

use obra::contract::{CallContext, RunRequest, TaskInfo};
use obra::plugins::testing::{target_dir, test_plugin};
use obra::plugins::{CommandPattern, PluginHost, PluginsConfig, UserGrant};

const CALLS: usize = 2000;
const WARMUP: usize = 100;
const LOADS: usize = 20;

mod support;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let (median, p95) = (percentile(&samples, 0.5), percentile(&samples, 0.95));
    println!("{what:<40} median {median:>10.1?}   p95 {p95:>10.1?}   ({} samples)", samples.len());
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    support::record(&format!("plugin_call: {what}"), "µs", us(median), Some(us(p95)), samples.len());
}

fn main() {
    let dir = test_plugin("echo-agent").expect("the echo-agent test plugin");
    let mut config =
        PluginsConfig { cache_dir: Some(target_dir().join("obra-bench-component-cache")), ..Default::default() };
    config.grants.insert(
        "echo-agent".into(),
        UserGrant { commands: vec![CommandPattern::new("echo", &["**"])], ..UserGrant::default() },
    );

    // Warm start: the first load fills the cache; later loads deserialize the cached component.
    PluginHost::new(config.clone(), None).unwrap().load_path(&dir).unwrap();
    let mut loads = Vec::new();
    let mut first_calls = Vec::new();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let workspace = std::env::temp_dir();
    let ctx = CallContext { workspace: Some(workspace.clone()), ..CallContext::default() };
    let request = RunRequest {
        task: TaskInfo { id: 1, title: "bench".into(), description: String::new(), iteration: 1, max_iterations: 1 },
        prompt: "x".repeat(10 * 1024),
        workspace: workspace.display().to_string(),
        resume_session: None,
        timeout_ms: 60_000,
        config: r#"{"mode":"mirror"}"#.into(),
    };
    let mut host = None;
    for _ in 0..LOADS {
        let started = Instant::now();
        let mut h = PluginHost::new(config.clone(), None).unwrap();
        h.load_path(&dir).unwrap();
        loads.push(started.elapsed());
        let agent = h.agent("echo-agent").unwrap();
        let started = Instant::now();
        let result = runtime.block_on(agent.run(&ctx, &request)).unwrap();
        first_calls.push(started.elapsed());
        assert_eq!(result.summary.len(), request.prompt.len());
        host = Some(h);
    }
    let host = host.unwrap();
    assert!(host.cache_stats().0 >= 1, "later loads hit the compile cache");

    let agent = host.agent("echo-agent").unwrap();
    let mut calls = Vec::with_capacity(CALLS);
    runtime.block_on(async {
        for i in 0..WARMUP + CALLS {
            let started = Instant::now();
            let result = agent.run(&ctx, &request).await.unwrap();
            let elapsed = started.elapsed();
            assert_eq!(result.summary.len(), request.prompt.len());
            if i >= WARMUP {
                calls.push(elapsed);
            }
        }
    });

    println!("plugin_call (echo-agent, 10 KB prompt mirrored back)");
    report("load, compiled component cached", loads);
    report("first call (instantiates)", first_calls);
    report("agent.run round trip, warm instance", calls);
}
