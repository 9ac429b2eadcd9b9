//! The conformance driver of the `codex` agent: the real OpenAI Codex CLI against a scripted fake Responses API.

use obra_testkit::codex::{CodexEnv, require_codex};
use obra_testkit::{FakeResponses, ResponsesReply};

use crate::common::Project;
use crate::harness::{AgentDriver, Arranged, HANG, RETRY_AFTER_SECS, SUCCESS_CONTENT, SUCCESS_FILE, Scenario};

/// The `codex` agent.
pub struct Codex;

impl AgentDriver for Codex {
    const PLUGIN: &'static str = "codex";

    fn arrange(scenario: Scenario) -> Option<Arranged> {
        let bin = require_codex()?;
        let script = match scenario {
            Scenario::Success => vec![
                ResponsesReply::write_file(SUCCESS_FILE, SUCCESS_CONTENT),
                ResponsesReply::text(format!("Created {SUCCESS_FILE}.")),
            ],
            Scenario::Failure => {
                vec![ResponsesReply::error(400, "invalid_request_error", "Invalid request: conformance says no")]
            }
            Scenario::Timeout | Scenario::Crash => vec![ResponsesReply::text("too late").delay(HANG)],
            Scenario::RateLimit => vec![ResponsesReply::rate_limited(RETRY_AFTER_SECS)],
            // A misconfigured command line: the CLI prints its version instead of JSON events.
            Scenario::Garbage => vec![ResponsesReply::text("never asked")],
        };
        let fake = FakeResponses::start(script);
        let env = CodexEnv::new(&bin, &fake.base_url());
        let mut project = Project::new();
        for (k, v) in env.vars() {
            project.set_env(k, v);
        }
        let path = std::env::var("PATH").unwrap_or_default();
        project.set_env("PATH", &format!("{}:{path}", bin.parent().unwrap().display()));
        let extra = if scenario == Scenario::Garbage { r#"["--version"]"# } else { "[]" };
        let config_yaml =
            format!("agents:\n  codex:\n    bypass_approvals_and_sandbox: true\n    extra_args: {extra}\n");
        let fake = std::sync::Arc::new(fake);
        let counter = fake.clone();
        Some(Arranged {
            project,
            config_yaml,
            agent_yaml: String::new(),
            env_names: Vec::new(),
            model_requests: Box::new(move || counter.response_requests().len()),
            keep_alive: Box::new((fake, env)),
        })
    }
}
