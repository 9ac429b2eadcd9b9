//! The conformance driver of the `aider` agent: the real Aider (PyPI aider-chat) against a scripted fake OpenAI
//! chat-completions server, with the `whole` edit format (the reply carries the whole file).

use obra_testkit::aider::{AiderEnv, install_hint, require_aider};
use obra_testkit::{ChatReply, FakeOpenAiChat};

use crate::common::Project;
use crate::harness::{AgentDriver, Arranged, HANG, RETRY_AFTER_SECS, SUCCESS_CONTENT, SUCCESS_FILE, Scenario};

/// The `aider` agent.
pub struct Aider;

impl AgentDriver for Aider {
    const PLUGIN: &'static str = "aider";

    fn arrange(scenario: Scenario) -> Option<Arranged> {
        let Some(bin) = require_aider() else {
            eprintln!("skipped: {}", install_hint());
            return None;
        };
        let script = match scenario {
            Scenario::Success => vec![ChatReply::text(format!("{SUCCESS_FILE}\n```\n{SUCCESS_CONTENT}```\n"))],
            Scenario::Failure => {
                vec![ChatReply::error(400, "invalid_request_error", "Invalid request: conformance says no")]
            }
            Scenario::Timeout | Scenario::Crash => vec![ChatReply::text("too late").delay(HANG)],
            // Aider retries rate limits itself for about a minute before it gives up.
            Scenario::RateLimit => (0..40).map(|_| ChatReply::rate_limited(RETRY_AFTER_SECS)).collect(),
            // A reply with no edit in it: nothing Aider can apply.
            Scenario::Garbage => vec![ChatReply::text("I would rather talk about the weather. No code today.")],
        };
        let fake = FakeOpenAiChat::start(script);
        let env = AiderEnv::new(&bin, &fake.base_url());
        let mut project = Project::new();
        for (k, v) in env.vars() {
            project.set_env(k, v);
        }
        let path = std::env::var("PATH").unwrap_or_default();
        project.set_env("PATH", &format!("{}:{path}", bin.parent().unwrap().display()));
        let config_yaml = "agents:\n  aider:\n    model: openai/gpt-4o-mini\n    edit_format: whole\n".to_string();
        let fake = std::sync::Arc::new(fake);
        let counter = fake.clone();
        Some(Arranged {
            project,
            config_yaml,
            agent_yaml: String::new(),
            env_names: Vec::new(),
            model_requests: Box::new(move || counter.chat_requests().len()),
            keep_alive: Box::new((fake, env)),
        })
    }
}
