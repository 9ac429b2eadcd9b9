//! `obra report --html FILE`: the report as one self-contained HTML page — inline CSS and SVG charts, no
//! scripts, no network — that opens in any browser and can be attached to a ticket or an e-mail.

use std::fmt::Write as _;

use crate::state::{CalibrationBucket, Report};

/// Escape text for HTML content and attribute values.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn percent(rate: Option<f64>) -> String {
    rate.map(|r| format!("{:.0}%", r * 100.0)).unwrap_or_else(|| "n/a".into())
}

/// A horizontal bar chart of labelled values (an SVG), with the value written after each bar.
fn bars(rows: &[(String, f64)], unit: &str) -> String {
    if rows.is_empty() {
        return "<p class=\"none\">none</p>".into();
    }
    let max = rows.iter().map(|(_, v)| *v).fold(0.0_f64, f64::max).max(f64::MIN_POSITIVE);
    let (label_w, bar_w, row_h) = (220.0, 420.0, 24.0);
    let height = row_h * rows.len() as f64 + 8.0;
    let mut svg = format!(
        "<svg class=\"chart\" role=\"img\" viewBox=\"0 0 {w} {height}\" width=\"{w}\" height=\"{height}\">",
        w = label_w + bar_w + 110.0
    );
    for (i, (label, value)) in rows.iter().enumerate() {
        let y = i as f64 * row_h + 4.0;
        let w = (value / max * bar_w).max(if *value > 0.0 { 2.0 } else { 0.0 });
        let shown = if value.fract() == 0.0 { format!("{value:.0}") } else { format!("{value:.2}") };
        let _ = write!(
            svg,
            "<text x=\"{lx}\" y=\"{ty}\" text-anchor=\"end\">{label}</text>\
             <rect x=\"{label_w}\" y=\"{y}\" width=\"{w:.1}\" height=\"{h}\" rx=\"3\"><title>{label}: {shown}{unit}</title></rect>\
             <text x=\"{vx:.1}\" y=\"{ty}\">{shown}{unit}</text>",
            lx = label_w - 8.0,
            ty = y + row_h * 0.62,
            h = row_h - 6.0,
            vx = label_w + w + 6.0,
            label = esc(label),
            unit = esc(unit),
        );
    }
    svg.push_str("</svg>");
    svg
}

/// A reliability diagram: for each confidence bucket, how often the work was accepted, against the diagonal of
/// perfect calibration.
fn calibration_chart(buckets: &[CalibrationBucket]) -> String {
    if buckets.is_empty() {
        return "<p class=\"none\">no decision has a known outcome yet</p>".into();
    }
    let (size, pad) = (300.0, 36.0);
    let x = |v: f64| pad + v * size;
    let y = |v: f64| pad + (1.0 - v) * size;
    let mut svg = format!(
        "<svg class=\"chart\" role=\"img\" viewBox=\"0 0 {w} {w}\" width=\"{w}\" height=\"{w}\">\
         <rect class=\"frame\" x=\"{pad}\" y=\"{pad}\" width=\"{size}\" height=\"{size}\"/>\
         <line class=\"ideal\" x1=\"{x0}\" y1=\"{y0}\" x2=\"{x1}\" y2=\"{y1}\"/>",
        w = size + 2.0 * pad,
        x0 = x(0.0),
        y0 = y(0.0),
        x1 = x(1.0),
        y1 = y(1.0)
    );
    for b in buckets {
        let (left, right) = (x(b.from), x(b.to));
        let top = y(b.success_rate);
        let _ = write!(
            svg,
            "<rect x=\"{:.1}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"{:.1}\"><title>confidence {:.1}-{:.1}: \
             {} decision(s), {:.0}% accepted, mean confidence {:.2}</title></rect>\
             <circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\"/>",
            left + 2.0,
            (right - left - 4.0).max(1.0),
            y(0.0) - top,
            b.from,
            b.to,
            b.decisions,
            b.success_rate * 100.0,
            b.mean_confidence,
            x(b.mean_confidence),
            y(b.success_rate),
        );
    }
    let _ = write!(
        svg,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">predicted confidence</text>\
         <text x=\"12\" y=\"{:.1}\" transform=\"rotate(-90 12 {:.1})\" text-anchor=\"middle\">accepted</text>\
         <text x=\"{pad}\" y=\"{:.1}\">0</text><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">1</text></svg>",
        pad + size / 2.0,
        size + 2.0 * pad - 6.0,
        pad + size / 2.0,
        pad + size / 2.0,
        size + pad + 14.0,
        size + pad,
        size + pad + 14.0,
    );
    svg
}

fn table(head: &[&str], rows: Vec<Vec<String>>) -> String {
    if rows.is_empty() {
        return "<p class=\"none\">none</p>".into();
    }
    let mut html = String::from("<table><thead><tr>");
    for h in head {
        let _ = write!(html, "<th>{}</th>", esc(h));
    }
    html.push_str("</tr></thead><tbody>");
    for row in rows {
        html.push_str("<tr>");
        for cell in row {
            let _ = write!(html, "<td>{}</td>", esc(&cell));
        }
        html.push_str("</tr>");
    }
    html.push_str("</tbody></table>");
    html
}

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1000px;color:#1d2330;padding:0 1em}\
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #dde;padding-bottom:.2em}\
.meta{color:#667}.cards{display:flex;flex-wrap:wrap;gap:12px;margin:1em 0}.card{border:1px solid #dde;border-radius:8px;\
padding:10px 16px;min-width:150px}.card b{display:block;font-size:1.6em}.card span{color:#667}\
table{border-collapse:collapse;margin:.5em 0}th,td{padding:4px 10px;border-bottom:1px solid #eef;text-align:right}\
th:first-child,td:first-child{text-align:left}th{color:#445;font-weight:600}.none{color:#889;font-style:italic}\
svg.chart{font-size:12px;max-width:100%;height:auto}svg.chart rect{fill:#4f6bed}svg.chart text{fill:#334}\
svg.chart rect.frame{fill:none;stroke:#ccd}svg.chart line.ideal{stroke:#e0603a;stroke-dasharray:4 3}\
svg.chart circle{fill:#e0603a}.two{display:flex;flex-wrap:wrap;gap:2em;align-items:flex-start}";

/// The whole page.
pub fn render(project: &str, r: &Report, generated_at: &str) -> String {
    let t = &r.tasks;
    let mut html = String::new();
    let _ = write!(
        html,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>Obra report: {p}</title><style>{STYLE}</style></head><body>\
         <h1>Obra report: {p}</h1><p class=\"meta\">Generated {g} from the project's store.</p>",
        p = esc(project),
        g = esc(generated_at)
    );
    let card = |value: String, label: &str| {
        format!("<div class=\"card\"><b>{}</b><span>{}</span></div>", esc(&value), esc(label))
    };
    let _ = write!(
        html,
        "<div class=\"cards\">{}{}{}{}{}</div>",
        card(t.total.to_string(), "tasks"),
        card(percent(t.success_rate), "success rate (completed of finished)"),
        card(percent(t.autonomous_completion_rate), "completed without a breakpoint"),
        card(r.agent_runs.total.to_string(), "agent runs"),
        card(r.agent_runs.retried_calls.to_string(), "retried calls"),
    );

    let statuses: Vec<(String, f64)> = t.by_status.iter().map(|(s, n)| (s.clone(), *n as f64)).collect();
    let decisions: Vec<(String, f64)> = r.decisions.iter().map(|(a, n)| (a.clone(), *n as f64)).collect();
    let _ = write!(
        html,
        "<div class=\"two\"><section><h2>Tasks by status</h2>{}</section><section><h2>Decisions</h2>{}</section></div>",
        bars(&statuses, ""),
        bars(&decisions, "")
    );

    let breakpoints: Vec<(String, f64)> = r.breakpoints.iter().map(|b| (b.rule.clone(), b.opened as f64)).collect();
    let _ = write!(
        html,
        "<h2>Breakpoints by rule</h2>{}{}",
        bars(&breakpoints, ""),
        table(
            &["rule", "opened", "open", "approved", "rejected", "feedback"],
            r.breakpoints
                .iter()
                .map(|b| {
                    vec![
                        b.rule.clone(),
                        b.opened.to_string(),
                        b.open.to_string(),
                        b.approved.to_string(),
                        b.rejected.to_string(),
                        b.feedback.to_string(),
                    ]
                })
                .collect()
        )
    );

    let c = &r.calibration;
    let scores = match (c.brier_score, c.expected_calibration_error) {
        (Some(brier), Some(ece)) => format!(
            "<p>Brier score <b>{brier:.3}</b> (0 is perfect, 0.25 a coin toss); expected calibration error \
             <b>{ece:.3}</b>.</p>"
        ),
        _ => String::new(),
    };
    let _ = write!(
        html,
        "<h2>Confidence calibration</h2><p class=\"meta\">{} decision(s) with a known outcome, {} waiting. Bars: how \
         often the work was accepted per confidence band; dots: at the band's mean confidence; dashed: perfect \
         calibration.</p><div class=\"two\">{}{}</div>{scores}",
        c.settled,
        c.unsettled,
        calibration_chart(&c.buckets),
        table(
            &["confidence", "decisions", "accepted", "success", "mean confidence"],
            c.buckets
                .iter()
                .map(|b| {
                    vec![
                        format!("{:.1}-{:.1}", b.from, b.to),
                        b.decisions.to_string(),
                        b.accepted.to_string(),
                        format!("{:.0}%", b.success_rate * 100.0),
                        format!("{:.2}", b.mean_confidence),
                    ]
                })
                .collect()
        )
    );

    for (title, rows) in [
        ("Usage by agent", &r.usage_by_agent),
        ("Usage by task", &r.usage_by_task),
        ("LLM calls by provider and purpose", &r.usage_by_llm),
    ] {
        let tokens: Vec<(String, f64)> =
            rows.iter().map(|u| (u.key.clone(), (u.input_tokens + u.output_tokens) as f64)).collect();
        let _ = write!(
            html,
            "<h2>{}</h2>{}{}",
            esc(title),
            bars(&tokens, " tok"),
            table(
                &["", "runs", "input tokens", "output tokens", "cost USD"],
                rows.iter()
                    .map(|u| {
                        vec![
                            u.key.clone(),
                            u.runs.to_string(),
                            u.input_tokens.to_string(),
                            u.output_tokens.to_string(),
                            format!("{:.4}", u.cost_usd),
                        ]
                    })
                    .collect()
            )
        );
    }

    let p95: Vec<(String, f64)> = r.durations.iter().map(|d| (d.step.clone(), d.p95_ms as f64)).collect();
    let _ = writeln!(
        html,
        "<h2>Step durations (p95)</h2>{}{}</body></html>",
        bars(&p95, " ms"),
        table(
            &["step", "count", "p50 ms", "p95 ms"],
            r.durations
                .iter()
                .map(|d| vec![d.step.clone(), d.count.to_string(), d.p50_ms.to_string(), d.p95_ms.to_string()])
                .collect()
        )
    );
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_the_page_is_self_contained() {
        let mut report = Report::default();
        report.tasks.total = 2;
        report.tasks.by_status.insert("completed".into(), 2);
        report.decisions.insert("<script>alert(1)</script>".into(), 1);
        let page = render("a & <b>", &report, "2026-11-22T10:00:00Z");
        assert!(page.starts_with("<!DOCTYPE html>") && page.trim_end().ends_with("</html>"));
        assert!(page.contains("Obra report: a &amp; &lt;b&gt;"));
        assert!(!page.contains("<script>"), "no markup from the data, and no scripts at all");
        assert!(!page.contains("http://") && !page.contains("https://"), "nothing fetched from the network");
        assert!(page.contains("<svg"));
    }

    #[test]
    fn bars_scale_to_the_largest_value() {
        let svg = bars(&[("a".into(), 10.0), ("b".into(), 5.0)], "");
        assert!(svg.contains("width=\"420.0\"") && svg.contains("width=\"210.0\""), "{svg}");
        assert!(bars(&[], "").contains("none"));
    }
}
