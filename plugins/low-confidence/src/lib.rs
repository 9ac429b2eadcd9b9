//! `low-confidence`: a breakpoint rule that pauses the task when the iteration's confidence score is below a
//! threshold. Config: `{"threshold": 0.65}` (the default; between 0 and 1).

use obra_plugin_sdk::breakpoint_rule::{BreakpointRule, LoopEvent, Verdict};
use obra_plugin_sdk::{PluginError, config, export_breakpoint_rule};
use serde::Deserialize;

/// The rule's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Pause when the confidence is below this; default 0.65.
    #[serde(default = "default_threshold")]
    pub threshold: f32,
}

fn default_threshold() -> f32 {
    0.65
}

/// The verdict for `confidence` under `cfg`.
pub fn verdict(cfg_json: &str, confidence: f32) -> Result<Verdict, PluginError> {
    let cfg: Config = config(cfg_json)?;
    if !(0.0..=1.0).contains(&cfg.threshold) {
        return Err(PluginError::fatal(format!(
            "invalid config: at `threshold`: {} is not between 0 and 1",
            cfg.threshold
        )));
    }
    Ok(if confidence.is_nan() {
        Verdict::Pause(format!("the confidence score is not a number (threshold {:.2})", cfg.threshold))
    } else if confidence < cfg.threshold {
        Verdict::Pause(format!("confidence {confidence:.2} is below the threshold {:.2}", cfg.threshold))
    } else {
        Verdict::Proceed
    })
}

/// The rule.
pub struct LowConfidence;

impl BreakpointRule for LowConfidence {
    fn describe() -> String {
        "Pauses when the confidence score is below a threshold (default 0.65)".into()
    }

    fn evaluate(event: LoopEvent) -> Result<Verdict, PluginError> {
        verdict(&event.config, event.confidence)
    }
}

export_breakpoint_rule!(LowConfidence);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_below_the_threshold_with_both_numbers() {
        assert_eq!(verdict("{}", 0.5).unwrap(), Verdict::Pause("confidence 0.50 is below the threshold 0.65".into()));
        assert_eq!(verdict("{}", 0.65).unwrap(), Verdict::Proceed);
        assert_eq!(
            verdict(r#"{"threshold": 0.9}"#, 0.85).unwrap(),
            Verdict::Pause("confidence 0.85 is below the threshold 0.90".into())
        );
        assert!(matches!(verdict("{}", f32::NAN).unwrap(), Verdict::Pause(_)));
    }

    #[test]
    fn bad_thresholds_are_fatal() {
        assert!(verdict(r#"{"threshold": 1.5}"#, 0.5).unwrap_err().message().contains("threshold"));
        assert!(verdict(r#"{"threshold": "high"}"#, 0.5).unwrap_err().message().contains("threshold"));
        assert!(verdict(r#"{"treshold": 0.5}"#, 0.5).unwrap_err().message().contains("treshold"));
    }
}
