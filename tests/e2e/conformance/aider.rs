//! The conformance driver of the `aider` agent: the real Aider CLI (PyPI aider-chat) against the scripted fake
//! OpenAI chat-completions server.

use obra_testkit::aider::MODEL;
use obra_testkit::{ChatReply, FakeOpenAiChat, require_aider};

use crate::common::Project;
use crate::harness::{AgentDriver, Arranged, HANG, RETRY_AFTER_SECS, SUCCESS_CONTENT, SUCCESS_FILE, Scenario};

/// The `aider` agent.
pub struct Aider;

/// A SEARCH/REPLACE block that matches nothing in README.md: aider cannot apply it, asks the model to fix it
/// three times ("reflections") and gives up.
const UNAPPLICABLE_EDIT: &str =
    "README.md\n```\n<<<<<<< SEARCH\nthis line is not in the file\n=======\nnew line\n>>>>>>> REPLACE\n```\n";

impl AgentDriver for Aider {
    const PLUGIN: &'static str = "aider";

    fn arrange(scenario: Scenario) -> Option<Arranged> {
        let cli = require_aider()?;
        let script = match scenario {
            // Edit format `whole`: the reply names the file and gives its whole content; aider writes it.
            Scenario::Success => {
                vec![ChatReply::text(format!("{SUCCESS_FILE}\n```\n{SUCCESS_CONTENT}```\n"))]
            }
            Scenario::Failure => {
                vec![ChatReply::error(400, "invalid_request_error", "Invalid request: conformance says no")]
            }
            Scenario::Timeout | Scenario::Crash => vec![ChatReply::text("too late").delay(HANG)],
            // The OpenAI client inside aider tries three times before aider reports the 429.
            Scenario::RateLimit => vec![ChatReply::rate_limited(RETRY_AFTER_SECS); 3],
            // The reply and aider's three reflections all get an edit that cannot be applied.
            Scenario::Garbage => vec![ChatReply::text(UNAPPLICABLE_EDIT); 4],
        };
        let fake = FakeOpenAiChat::start(script);
        let mut project = Project::new();
        for (k, v) in cli.vars(&fake.base_url(), project.home()) {
            if k != "HOME" {
                project.set_env(&k, &v);
            }
        }
        let (edit_format, files) =
            if scenario == Scenario::Garbage { ("diff", r#"["README.md"]"#) } else { ("whole", "[]") };
        let config_yaml =
            format!("agents:\n  aider:\n    model: {MODEL}\n    edit_format: {edit_format}\n    files: {files}\n");
        let fake = std::sync::Arc::new(fake);
        let counter = fake.clone();
        Some(Arranged {
            project,
            config_yaml,
            agent_yaml: String::new(),
            env_names: Vec::new(),
            model_requests: Box::new(move || counter.chat_requests().len()),
            keep_alive: Box::new(fake),
        })
    }
}
