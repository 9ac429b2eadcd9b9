//! `obra replay <task>`: which of a task's recorded decisions would come out differently today.

use std::fmt::Write as _;
use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Result;

use super::args::{GlobalArgs, ReplayArgs};
use super::open_options;
use super::output::{one_line, print_json};
use crate::engine::replay::ReplayReport;
use crate::orchestrator::Orchestrator;

pub(super) async fn run(g: &GlobalArgs, a: ReplayArgs) -> Result<ExitCode> {
    let obra = Orchestrator::open(open_options(g)).await?;
    let report = obra.replay_task(a.task).await?;
    if a.json {
        print_json(&report)?;
    } else {
        std::io::stdout().lock().write_all(render(&report).as_bytes())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The replay as terminal text: one block per iteration, changed decisions marked.
fn render(r: &ReplayReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Replay of task {} ({}) with today's gates, rules and thresholds", r.task_id, r.title);
    if r.iterations.is_empty() {
        let _ =
            writeln!(out, "\nThe task has no recorded decision yet; run it first (`obra task execute {}`).", r.task_id);
        return out;
    }
    for i in &r.iterations {
        let mark = if i.changed { "CHANGED" } else { "same" };
        let _ = writeln!(
            out,
            "\ninteraction {} (iteration {}): recorded {} {:.2} -> today {} {:.2}  [{mark}]",
            i.interaction_id,
            i.iteration,
            i.recorded_action.to_uppercase(),
            i.recorded_confidence,
            i.action.as_str().to_uppercase(),
            i.confidence
        );
        let gates: Vec<String> =
            i.gates.iter().map(|g| format!("{} {}", g.gate, if g.passed { "passed" } else { "FAILED" })).collect();
        let gates = if gates.is_empty() { "none".to_string() } else { gates.join(", ") };
        let _ = writeln!(out, "  gates ({}): {gates}", i.gates_source);
        if let Some(rule) = &i.rule {
            let _ = writeln!(out, "  rule {rule} would stop the task");
        }
        let _ = writeln!(out, "  {}", one_line(&i.explanation, 400));
    }
    let _ = writeln!(out, "\n{} of {} decision(s) would change. Nothing was stored.", r.changed, r.iterations.len());
    out
}
