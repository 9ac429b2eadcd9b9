//! Confidence scoring (heuristic factors plus the LLM's opinion, weighted) and the decision it leads to,
//! with a plain-language explanation of both.
//!
//! The agent's claims are checked against evidence (ADR 0033): a run that reports success while no file
//! changed never proceeds when its own actions failed or nothing verified it (no verifying gate passed, no
//! LLM opinion): it is retried with its failed actions as feedback, and escalated on the last iteration.
//! Without a verifying gate that passed, the heuristic score of a run that changed nothing is also capped
//! below the proceed threshold ([`UNVERIFIED_NO_CHANGE_CAP`]).

use std::fmt::Write as _;

use crate::config::{DecisionConfig, GateConfig};
use crate::contract::{Outcome, RunResult};
use crate::state::{Action, GateRecord};

/// Weights of the heuristic factors; they sum to 1.
const W_OUTCOME: f32 = 0.35;
const W_QUALITY: f32 = 0.45;
const W_CHANGES: f32 = 0.10;
const W_EFFORT: f32 = 0.10;

/// The highest heuristic score of a run that changed no file when no verifying gate passed: in the band
/// between the default escalate (0.65) and proceed (0.85) thresholds.
pub const UNVERIFIED_NO_CHANGE_CAP: f32 = 0.75;

/// The heuristic half of the confidence score, with the reasons for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Heuristic {
    /// 0..=1.
    pub score: f32,
    /// The weighted quality score of the gates, 0..=1 (1 when no gate ran).
    pub quality: f32,
    /// Names of required gates that failed.
    pub failed_required: Vec<String>,
    /// One phrase per factor, for the explanation.
    pub reasons: Vec<String>,
    /// Names of the verifying gates (ones that run the project's own checks) that passed.
    pub verified_by: Vec<String>,
}

/// Recorded gate results paired with the configured gates of the same name, in the configuration's order
/// (results of gates no longer configured are left out).
pub fn pair_by_name<'a>(
    configs: impl Iterator<Item = &'a GateConfig>,
    gates: &'a [GateRecord],
) -> Vec<(&'a GateConfig, &'a GateRecord)> {
    configs.filter_map(|c| gates.iter().find(|g| g.gate == c.display_name()).map(|g| (c, g))).collect()
}

/// The weighted quality score of the gates' results, 0..=1 (1 when no gate ran or no gate has a weight).
pub fn gate_quality(gates: &[(&GateConfig, &GateRecord)]) -> f32 {
    let total_weight: f32 = gates.iter().map(|(c, _)| c.weight).sum();
    if gates.is_empty() || total_weight <= 0.0 {
        return 1.0;
    }
    gates.iter().map(|(c, g)| c.weight * g.score.clamp(0.0, 1.0)).sum::<f32>() / total_weight
}

/// Score an iteration without any LLM: outcome, gate quality, whether files changed, effort (lower when
/// actions were refused or failed). A run that changed nothing, with no verifying gate passed, scores at most
/// [`UNVERIFIED_NO_CHANGE_CAP`].
pub fn heuristic(result: Option<&RunResult>, gates: &[(&GateConfig, &GateRecord)], files_changed: usize) -> Heuristic {
    let mut reasons = Vec::new();
    let outcome_score = match result.map(|r| r.outcome) {
        Some(Outcome::Success) => 1.0,
        Some(Outcome::MaxTurns) => 0.5,
        Some(_) | None => 0.0,
    };
    reasons.push(match result {
        Some(r) => format!("outcome {}", r.outcome),
        None => "the agent did not run".into(),
    });

    // Nothing produced means nothing of quality.
    let quality = if result.is_none() { 0.0 } else { gate_quality(gates) };
    let failed_required: Vec<String> =
        gates.iter().filter(|(c, g)| c.required && !g.passed).map(|(_, g)| g.gate.clone()).collect();
    if result.is_none() {
        reasons.push("no work to check".into());
    } else if gates.is_empty() {
        reasons.push("no quality gate ran".into());
    } else {
        let list: Vec<String> = gates
            .iter()
            .map(|(_, g)| format!("{} {:.2}{}", g.gate, g.score, if g.passed { "" } else { " FAILED" }))
            .collect();
        reasons.push(format!("quality {quality:.2} [{}]", list.join(", ")));
    }

    let changes_score = match (result, files_changed) {
        (None, _) => 0.0,
        (Some(_), 0) => 0.5,
        (Some(_), _) => 1.0,
    };
    reasons.push(format!("{files_changed} file(s) changed"));

    let effort_score = match result {
        Some(r) if r.outcome == Outcome::MaxTurns => 0.0,
        Some(r) if !r.permission_denials.is_empty() || !r.failed_actions.is_empty() => 0.5,
        Some(_) => 1.0,
        None => 0.0,
    };
    if let Some(r) = result
        && !r.failed_actions.is_empty()
    {
        reasons.push(format!("{} failed action(s)", r.failed_actions.len()));
    }
    let verified_by: Vec<String> =
        gates.iter().filter(|(c, g)| c.enabled && c.is_verifying() && g.passed).map(|(_, g)| g.gate.clone()).collect();

    let mut score =
        W_OUTCOME * outcome_score + W_QUALITY * quality + W_CHANGES * changes_score + W_EFFORT * effort_score;
    if result.is_some() && files_changed == 0 && verified_by.is_empty() && score > UNVERIFIED_NO_CHANGE_CAP {
        score = UNVERIFIED_NO_CHANGE_CAP;
        reasons.push(format!("capped at {UNVERIFIED_NO_CHANGE_CAP:.2}: nothing changed and no verifying gate passed"));
    }
    Heuristic { score: score.clamp(0.0, 1.0), quality, failed_required, reasons, verified_by }
}

/// The LLM's opinion of an iteration.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmOpinion {
    /// 0..=1.
    pub confidence: f32,
    /// Its reasoning.
    pub reasoning: String,
}

/// The scored iteration and the proposed action.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// Combined confidence.
    pub confidence: f32,
    /// Proposed action, before breakpoint rules.
    pub action: Action,
    /// Plain-language explanation.
    pub explanation: String,
}

/// What the decision needs besides the thresholds and the heuristic score.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The LLM's opinion, when it gave one.
    pub opinion: Option<&'a LlmOpinion>,
    /// Weight of the LLM's opinion in the confidence score.
    pub llm_weight: f32,
    /// Why there is no opinion, when there is none.
    pub llm_note: Option<&'a str>,
    /// How the agent's run ended (none when it could not run).
    pub outcome: Option<Outcome>,
    /// This iteration, from 1.
    pub iteration: u32,
    /// The iteration limit.
    pub max_iterations: u32,
    /// How many files the run changed.
    pub files_changed: usize,
    /// How many of the agent's actions failed inside its own tools.
    pub failed_actions: usize,
}

impl Context<'_> {
    /// Whether the agent reported success although no file changed: a claim to check against evidence.
    pub fn unsupported_success(&self) -> bool {
        self.outcome == Some(Outcome::Success) && self.files_changed == 0
    }
}

/// What verified an iteration's work, for the store (`decisions.verified_by`): the verifying gates that
/// passed and `LLM opinion` when the LLM gave one; empty when nothing did (the work is "unverified").
pub fn verified_by(heuristic: &Heuristic, opinion: Option<&LlmOpinion>) -> String {
    let mut by = heuristic.verified_by.clone();
    if opinion.is_some() {
        by.push("LLM opinion".into());
    }
    by.join(", ")
}

/// Combine heuristic and LLM opinion (`llm_weight` of the LLM when it answered) and decide.
pub fn decide(thresholds: &DecisionConfig, heuristic: &Heuristic, ctx: &Context<'_>) -> Verdict {
    let Context { opinion, llm_weight, llm_note, outcome, iteration, max_iterations, failed_actions, .. } = *ctx;
    // A success with no file changed stands only on evidence: never when the agent's own actions failed (its
    // edits did not land), and never when nothing verified it (no verifying gate passed, no LLM opinion). With
    // evidence, e.g. the tests pass and the task asked for nothing to change, it is judged like any run.
    let verified = !heuristic.verified_by.is_empty() || opinion.is_some();
    let unsupported = ctx.unsupported_success() && (failed_actions > 0 || !verified);
    let confidence = match opinion {
        Some(o) => (1.0 - llm_weight) * heuristic.score + llm_weight * o.confidence.clamp(0.0, 1.0),
        None => heuristic.score,
    };
    let mut why =
        format!("Confidence {confidence:.2} (heuristic {:.2}: {}", heuristic.score, heuristic.reasons.join(", "));
    match (opinion, llm_note) {
        (Some(o), _) => {
            let _ = write!(why, "; LLM opinion {:.2}: {}", o.confidence, o.reasoning.trim());
        }
        (None, Some(note)) => {
            let _ = write!(why, "; no LLM opinion: {note}");
        }
        (None, None) => {}
    }
    why.push_str("). ");

    let last = iteration >= max_iterations;
    let success = outcome == Some(Outcome::Success);
    let claim = if failed_actions > 0 {
        format!("the agent reported success but no file changed and {failed_actions} of its actions failed")
    } else {
        "the agent reported success but no file changed".to_string()
    };
    let action = if confidence >= thresholds.proceed_threshold
        && heuristic.failed_required.is_empty()
        && success
        && !unsupported
    {
        let _ = write!(
            why,
            "At or above the proceed threshold {:.2} and every required gate passed: PROCEED.",
            thresholds.proceed_threshold
        );
        Action::Proceed
    } else if confidence < thresholds.escalate_threshold {
        let _ = write!(why, "Below the escalate threshold {:.2}: ESCALATE to a human.", thresholds.escalate_threshold);
        Action::Escalate
    } else if last && unsupported {
        let _ = write!(
            why,
            "Not proceeding: {claim}, and this was the last of {max_iterations} iterations: ESCALATE to a human."
        );
        Action::Escalate
    } else if last {
        let _ =
            write!(why, "Not good enough to proceed and this was the last of {max_iterations} iterations: ESCALATE.");
        Action::Escalate
    } else if unsupported && heuristic.failed_required.is_empty() {
        let _ = write!(why, "Not proceeding: {claim}: RETRY with the failed actions as feedback.");
        Action::Retry
    } else if !heuristic.failed_required.is_empty() || !success {
        if heuristic.failed_required.is_empty() {
            let _ = write!(why, "The agent did not finish successfully: RETRY.");
        } else {
            let _ = write!(
                why,
                "Required gate(s) {} failed: RETRY with their findings.",
                heuristic.failed_required.join(", ")
            );
        }
        Action::Retry
    } else {
        let _ = write!(
            why,
            "Every gate passed but confidence is below {:.2}: CLARIFY (ask the agent to check and complete its work).",
            thresholds.proceed_threshold
        );
        Action::Clarify
    };
    Verdict { confidence, action, explanation: why }
}

/// When the configured LLM gave no opinion (down, or no usable answer), heuristics settle clear cases alone:
/// a CLARIFY — work that passed every gate with confidence in the doubtful band, the case the LLM's opinion
/// was for — becomes ESCALATE, so a human decides instead of the agent redoing good work. Returns whether it
/// did (the breakpoint's rule is then `llm-unavailable`).
pub fn without_llm(verdict: &mut Verdict, llm_unavailable: bool) -> bool {
    let needs_llm = llm_unavailable && verdict.action == Action::Clarify;
    if needs_llm {
        verdict.action = Action::Escalate;
        verdict.explanation.push_str(
            " The LLM that should settle this doubtful case is unavailable, so a human decides instead of the \
             agent being asked to redo work that passed every gate.",
        );
    }
    needs_llm
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::Usage;

    fn result(outcome: Outcome) -> RunResult {
        RunResult {
            outcome,
            summary: "done".into(),
            session_id: None,
            turns: 2,
            usage: Usage::default(),
            duration_ms: 1,
            api_status: None,
            retry_after_ms: None,
            permission_denials: vec![],
            exit_code: Some(0),
            failed_actions: vec![],
        }
    }

    fn gate(name: &str, passed: bool, weight: f32) -> (GateConfig, GateRecord) {
        (
            GateConfig {
                plugin: name.into(),
                name: String::new(),
                timeout_secs: 900,
                enabled: true,
                required: true,
                weight,
                config: serde_json::json!({}),
                protect: None,
                verifies: None,
            },
            GateRecord {
                gate: name.into(),
                passed,
                score: if passed { 1.0 } else { 0.0 },
                summary: String::new(),
                findings: vec![],
                error: None,
                duration_ms: 0,
            },
        )
    }

    fn thresholds() -> DecisionConfig {
        DecisionConfig { proceed_threshold: 0.85, escalate_threshold: 0.65 }
    }

    fn run(gates: &[(GateConfig, GateRecord)], outcome: Outcome, opinion: Option<f32>, iteration: u32) -> Verdict {
        let pairs: Vec<(&GateConfig, &GateRecord)> = gates.iter().map(|(c, g)| (c, g)).collect();
        let r = result(outcome);
        let h = heuristic(Some(&r), &pairs, 1);
        let o = opinion.map(|c| LlmOpinion { confidence: c, reasoning: "looks fine".into() });
        let ctx = Context {
            opinion: o.as_ref(),
            llm_weight: 0.4,
            llm_note: None,
            outcome: Some(outcome),
            iteration,
            max_iterations: 3,
            files_changed: 1,
            failed_actions: 0,
        };
        decide(&thresholds(), &h, &ctx)
    }

    /// A run that changed `files` files and reported these failed actions, scored and decided.
    fn claim(
        gates: &[(GateConfig, GateRecord)],
        files: usize,
        failed: &[&str],
        opinion: Option<f32>,
        iteration: u32,
    ) -> (Heuristic, Verdict) {
        let pairs: Vec<(&GateConfig, &GateRecord)> = gates.iter().map(|(c, g)| (c, g)).collect();
        let mut r = result(Outcome::Success);
        r.failed_actions = failed.iter().map(|f| f.to_string()).collect();
        let h = heuristic(Some(&r), &pairs, files);
        let o = opinion.map(|c| LlmOpinion { confidence: c, reasoning: "looks fine".into() });
        let ctx = Context {
            opinion: o.as_ref(),
            llm_weight: 0.4,
            llm_note: None,
            outcome: Some(Outcome::Success),
            iteration,
            max_iterations: 3,
            files_changed: files,
            failed_actions: r.failed_actions.len(),
        };
        let v = decide(&thresholds(), &h, &ctx);
        (h, v)
    }

    const NOT_READ: &str = "Edit calc.py: File has not been read yet. Read it first before writing to it.";

    #[test]
    fn a_success_claim_whose_only_edit_failed_is_retried_not_proceeded() {
        let gates = [gate("response-format", true, 1.0)];
        let (h, v) = claim(&gates, 0, &[NOT_READ], None, 1);
        assert!(h.score < thresholds().proceed_threshold, "{h:?}");
        assert!(h.reasons.iter().any(|r| r == "1 failed action(s)"), "{h:?}");
        assert_eq!(v.action, Action::Retry, "{}", v.explanation);
        assert!(
            v.explanation.contains("the agent reported success but no file changed and 1 of its actions failed"),
            "{}",
            v.explanation
        );
        assert_eq!(verified_by(&h, None), "", "nothing verified it");
    }

    #[test]
    fn unverified_heuristics_of_a_run_that_changed_nothing_stay_below_the_proceed_threshold() {
        let gates = [gate("response-format", true, 1.0)];
        let (h, v) = claim(&gates, 0, &[], None, 1);
        assert_eq!(h.score, UNVERIFIED_NO_CHANGE_CAP, "{h:?}");
        assert!(h.reasons.iter().any(|r| r.contains("no verifying gate passed")), "{h:?}");
        assert_eq!(v.action, Action::Retry, "{}", v.explanation);
        // Without the cap the same run would have scored above the proceed threshold.
        let (unchanged, _) = claim(&gates, 1, &[], None, 1);
        assert!(unchanged.score >= thresholds().proceed_threshold, "{unchanged:?}");
    }

    #[test]
    fn a_success_claim_without_changes_escalates_on_the_last_iteration_saying_why() {
        let gates = [gate("response-format", true, 1.0)];
        let (_, v) = claim(&gates, 0, &[NOT_READ], None, 3);
        assert_eq!(v.action, Action::Escalate, "{}", v.explanation);
        assert!(v.explanation.contains("reported success but no file changed"), "{}", v.explanation);
        assert!(v.explanation.contains("last of 3 iterations"), "{}", v.explanation);
    }

    #[test]
    fn a_change_free_success_proceeds_only_on_evidence_and_never_when_its_actions_failed() {
        let gates = [gate("response-format", true, 1.0), gate("tests", true, 2.0)];
        // The tests pass and the LLM agrees (a task that needed no change): judged like any run.
        let (h, v) = claim(&gates, 0, &[], Some(1.0), 1);
        assert_eq!(h.verified_by, ["tests"]);
        assert!(v.confidence >= thresholds().proceed_threshold, "not capped when a verifying gate passed");
        assert_eq!(v.action, Action::Proceed, "{}", v.explanation);
        // Its edit failed: whatever verified it, the claim does not stand.
        let (_, v) = claim(&gates, 0, &[NOT_READ], Some(1.0), 1);
        assert_eq!(v.action, Action::Retry, "{}", v.explanation);
        // Nothing verified it (no verifying gate, no LLM): no PROCEED either.
        let (_, v) = claim(&[gate("response-format", true, 1.0)], 0, &[], None, 1);
        assert_ne!(v.action, Action::Proceed, "{}", v.explanation);
    }

    #[test]
    fn work_that_changed_files_proceeds_and_records_what_verified_it() {
        let gates = [gate("response-format", true, 1.0)];
        let (h, v) = claim(&gates, 2, &[], None, 1);
        assert_eq!(v.action, Action::Proceed, "{}", v.explanation);
        assert_eq!(verified_by(&h, None), "", "response-format checks form, not the work");
        let gates = [gate("response-format", true, 1.0), gate("tests", true, 2.0)];
        let (h, _) = claim(&gates, 2, &[], Some(0.9), 1);
        let o = LlmOpinion { confidence: 0.9, reasoning: String::new() };
        assert_eq!(verified_by(&h, Some(&o)), "tests, LLM opinion");
        let mut lint = gate("lint", true, 1.0);
        lint.0.plugin = "tests".into();
        lint.0.name = "lint".into();
        lint.0.verifies = Some(false);
        let (h, _) = claim(&[lint], 2, &[], None, 1);
        assert!(h.verified_by.is_empty(), "verifies: false overrides the tests plugin's default");
    }

    #[test]
    fn failed_actions_lower_the_effort_factor() {
        let gates = [gate("response-format", true, 1.0)];
        let (clean, _) = claim(&gates, 1, &[], None, 1);
        let (failed, _) = claim(&gates, 1, &[NOT_READ], None, 1);
        assert!(failed.score < clean.score, "{failed:?} vs {clean:?}");
    }

    #[test]
    fn clean_success_proceeds() {
        let gates = [gate("response-format", true, 1.0), gate("tests", true, 2.0)];
        let v = run(&gates, Outcome::Success, Some(0.9), 1);
        assert_eq!(v.action, Action::Proceed, "{}", v.explanation);
        assert!(v.explanation.contains("LLM opinion 0.90"));
    }

    #[test]
    fn failing_tests_are_retried_not_escalated_at_once() {
        let gates = [gate("response-format", true, 1.0), gate("tests", false, 2.0)];
        let v = run(&gates, Outcome::Success, None, 1);
        assert_eq!(v.action, Action::Retry, "{}", v.explanation);
        assert!(v.explanation.contains("tests"));
    }

    #[test]
    fn failing_tests_on_the_last_iteration_escalate() {
        let gates = [gate("response-format", true, 1.0), gate("tests", false, 2.0)];
        assert_eq!(run(&gates, Outcome::Success, None, 3).action, Action::Escalate);
    }

    #[test]
    fn a_required_gate_failure_blocks_proceed_even_with_high_confidence() {
        let gates = [gate("response-format", true, 10.0), gate("tests", false, 0.1)];
        let v = run(&gates, Outcome::Success, Some(1.0), 1);
        assert!(v.confidence >= 0.85);
        assert_eq!(v.action, Action::Retry);
    }

    #[test]
    fn an_agent_that_could_not_run_scores_zero_and_escalates() {
        let h = heuristic(None, &[], 0);
        assert_eq!(h.score, 0.0, "{:?}", h.reasons);
        let ctx = Context {
            opinion: None,
            llm_weight: 0.4,
            llm_note: None,
            outcome: None,
            iteration: 1,
            max_iterations: 3,
            files_changed: 0,
            failed_actions: 0,
        };
        let v = decide(&thresholds(), &h, &ctx);
        assert_eq!(v.action, Action::Escalate);
    }

    #[test]
    fn a_crashed_agent_escalates() {
        let gates = [gate("response-format", false, 1.0)];
        assert_eq!(run(&gates, Outcome::Crashed, None, 1).action, Action::Escalate);
    }

    #[test]
    fn passing_gates_with_a_doubtful_llm_clarify() {
        let gates = [gate("response-format", true, 1.0)];
        let v = run(&gates, Outcome::Success, Some(0.5), 1);
        assert_eq!(v.action, Action::Clarify, "{}", v.explanation);
    }
}
