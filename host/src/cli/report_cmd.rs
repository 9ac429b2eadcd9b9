//! `obra report`: how the project's tasks went, from the store.

use std::fmt::Write as _;
use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Result;

use super::args::{GlobalArgs, ReportArgs};
use super::open_options;
use super::output::print_json;
use crate::orchestrator::Orchestrator;
use crate::state::Report;

/// Most rows of the usage-by-task table in text output (`--json` has them all).
const TOP_TASKS: usize = 10;

pub(super) async fn run(g: &GlobalArgs, a: ReportArgs) -> Result<ExitCode> {
    let obra = Orchestrator::open(open_options(g)).await?;
    let report = obra.state().report(obra.project().id).await?;
    if let Some(path) = &a.html {
        let page = super::report_html::render(
            &obra.project().name,
            &report,
            &humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        );
        std::fs::write(path, page)
            .map_err(|e| anyhow::anyhow!("cannot write the HTML report to {}: {e}", path.display()))?;
        println!("Wrote the report of project {} to {}", obra.project().name, path.display());
        return Ok(ExitCode::SUCCESS);
    }
    if a.json {
        print_json(&serde_json::json!({ "project": obra.project().name, "report": report }))?;
    } else {
        let text = render(&obra.project().name, &report);
        std::io::stdout().lock().write_all(text.as_bytes())?;
    }
    Ok(ExitCode::SUCCESS)
}

fn percent(rate: Option<f64>) -> String {
    rate.map(|r| format!("{:.0}%", r * 100.0)).unwrap_or_else(|| "n/a".into())
}

/// The report as terminal text.
fn render(project: &str, r: &Report) -> String {
    let mut out = String::new();
    let t = &r.tasks;
    let _ = writeln!(out, "Report of project {project}: {} task(s)\n", t.total);
    let statuses: Vec<String> = t.by_status.iter().map(|(s, n)| format!("{s} {n}")).collect();
    let _ = writeln!(out, "Tasks        {}", if statuses.is_empty() { "none".into() } else { statuses.join(", ") });
    let finished = t.by_status.get("completed").copied().unwrap_or(0) + t.by_status.get("failed").copied().unwrap_or(0);
    let _ = writeln!(out, "Success      {} of {finished} finished task(s) completed", percent(t.success_rate));
    let _ = writeln!(
        out,
        "Autonomous   {} of completed task(s) needed no breakpoint",
        percent(t.autonomous_completion_rate)
    );
    if !t.unverified.is_empty() {
        let ids: Vec<String> = t.unverified.iter().map(i64::to_string).collect();
        let _ = writeln!(
            out,
            "Unverified   {} completed task(s) no verifying gate or LLM checked: {}",
            ids.len(),
            ids.join(", ")
        );
    }
    let decisions: Vec<String> = r.decisions.iter().map(|(a, n)| format!("{a} {n}")).collect();
    let _ = writeln!(out, "Decisions    {}", if decisions.is_empty() { "none".into() } else { decisions.join(", ") });
    let a = &r.agent_runs;
    let _ =
        writeln!(out, "Agent runs   {} ({} retried call(s), {} interrupted)", a.total, a.retried_calls, a.interrupted);

    let _ = writeln!(out, "\nBreakpoints by rule");
    if r.breakpoints.is_empty() {
        let _ = writeln!(out, "  none");
    } else {
        let _ = writeln!(
            out,
            "  {:<24} {:>6} {:>5} {:>8} {:>8} {:>8}",
            "RULE", "OPENED", "OPEN", "APPROVED", "REJECTED", "FEEDBACK"
        );
        for b in &r.breakpoints {
            let _ = writeln!(
                out,
                "  {:<24} {:>6} {:>5} {:>8} {:>8} {:>8}",
                b.rule, b.opened, b.open, b.approved, b.rejected, b.feedback
            );
        }
    }

    let c = &r.calibration;
    let _ = writeln!(
        out,
        "\nConfidence calibration ({} decision(s) with a known outcome, {} waiting)",
        c.settled, c.unsettled
    );
    if c.buckets.is_empty() {
        let _ = writeln!(out, "  no decision has a known outcome yet");
    } else {
        let _ = writeln!(
            out,
            "  {:<10} {:>9} {:>8} {:>8} {:>10}",
            "CONFIDENCE", "DECISIONS", "ACCEPTED", "SUCCESS", "MEAN CONF"
        );
        for b in &c.buckets {
            let _ = writeln!(
                out,
                "  {:<10} {:>9} {:>8} {:>7.0}% {:>10.2}",
                format!("{:.1}-{:.1}", b.from, b.to),
                b.decisions,
                b.accepted,
                b.success_rate * 100.0,
                b.mean_confidence
            );
        }
        if let (Some(brier), Some(ece)) = (c.brier_score, c.expected_calibration_error) {
            let _ = writeln!(
                out,
                "  Brier score {brier:.3} (0 is perfect, 0.25 a coin toss); expected calibration error {ece:.3}"
            );
        }
    }

    for (title, rows, limit) in [
        ("Usage by agent", &r.usage_by_agent, usize::MAX),
        ("Usage by task (most first)", &r.usage_by_task, TOP_TASKS),
        ("LLM calls by provider and purpose (attempts)", &r.usage_by_llm, usize::MAX),
    ] {
        let _ = writeln!(out, "\n{title}");
        if rows.is_empty() {
            let _ = writeln!(out, "  none");
            continue;
        }
        let _ = writeln!(out, "  {:<40} {:>5} {:>12} {:>12} {:>10}", "", "RUNS", "INPUT TOK", "OUTPUT TOK", "COST USD");
        for u in rows.iter().take(limit) {
            let key: String = u.key.chars().take(40).collect();
            let _ = writeln!(
                out,
                "  {key:<40} {:>5} {:>12} {:>12} {:>10.4}",
                u.runs, u.input_tokens, u.output_tokens, u.cost_usd
            );
        }
        if rows.len() > limit {
            let _ = writeln!(out, "  ... and {} more (--json lists all)", rows.len() - limit);
        }
    }

    let _ = writeln!(out, "\nStep durations");
    if r.durations.is_empty() {
        let _ = writeln!(out, "  none recorded");
    } else {
        let _ = writeln!(out, "  {:<32} {:>6} {:>10} {:>10}", "STEP", "COUNT", "P50 MS", "P95 MS");
        for d in &r.durations {
            let _ = writeln!(out, "  {:<32} {:>6} {:>10} {:>10}", d.step, d.count, d.p50_ms, d.p95_ms);
        }
    }
    out
}
