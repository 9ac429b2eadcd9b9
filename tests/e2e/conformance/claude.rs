//! The conformance drivers of the `claude-code` agent: the real Claude Code CLI against a scripted fake Anthropic
//! Messages server, run locally and over the SSH transport (a real sshd on 127.0.0.1).

use obra_testkit::{AnthropicReply, FakeAnthropic, Sshd, require_claude, require_sshd};

use crate::common::Project;
use crate::harness::{AgentDriver, Arranged, HANG, RETRY_AFTER_SECS, SUCCESS_CONTENT, SUCCESS_FILE, Scenario};

/// The `claude-code` agent.
pub struct Claude;

impl AgentDriver for Claude {
    const PLUGIN: &'static str = "claude-code";

    fn arrange(scenario: Scenario) -> Option<Arranged> {
        arrange(scenario, None)
    }
}

/// The `claude-code` agent with `agent.transport.kind: ssh` to a real sshd on 127.0.0.1 (the same machine, so
/// the workspace is shared).
pub struct ClaudeOverSsh;

impl AgentDriver for ClaudeOverSsh {
    const PLUGIN: &'static str = "claude-code";

    fn arrange(scenario: Scenario) -> Option<Arranged> {
        let sshd = Sshd::start(&require_sshd()?);
        arrange(scenario, Some(sshd))
    }
}

/// The real claude CLI configured as a `command` agent (the seeds' CustomAgent): proof that an agent Obra
/// has no plugin for passes the same suite through configuration alone.
pub struct ClaudeAsCommand;

impl AgentDriver for ClaudeAsCommand {
    const PLUGIN: &'static str = "command";

    fn arrange(scenario: Scenario) -> Option<Arranged> {
        let mut arranged = arrange(scenario, None)?;
        let output = if scenario == Scenario::Garbage { r#""text""# } else { r#""stream-json", "--verbose""# };
        let grant = arranged.env_names.clone();
        arranged.config_yaml = format!(
            r#"agents:
  command:
    program: claude
    args: ["-p", "{{prompt}}", "--permission-mode", "acceptEdits", "--max-turns", "5", "--output-format", {output}]
    resume_args: ["--resume", "{{session_id}}"]
    output:
      format: jsonl
      result_match: {{path: /type, equals: result}}
      summary_path: /result
      session_path: /session_id
      error_path: /is_error
      input_tokens_path: /usage/input_tokens
      output_tokens_path: /usage/output_tokens
      cost_path: /total_cost_usd
      turns_path: /num_turns
plugins:
  grants:
    command:
      commands: [{{program: claude, args: ["**"]}}]
      env: [{}]
"#,
            grant.join(", ")
        );
        Some(arranged)
    }
}

/// Variables of the CLI's hermetic environment that must reach the remote side too.
const FORWARD: &str = "[HOME, PATH, ANTHROPIC_BASE_URL, ANTHROPIC_API_KEY, CLAUDE_CODE_MAX_RETRIES, \
                       CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC, DISABLE_AUTOUPDATER, DISABLE_TELEMETRY, \
                       DISABLE_ERROR_REPORTING, CLAUDE_CONFIG_DIR]";

fn arrange(scenario: Scenario, sshd: Option<Sshd>) -> Option<Arranged> {
    {
        let cli = require_claude()?;
        let script = match scenario {
            Scenario::Success => vec![
                AnthropicReply::write_file(SUCCESS_FILE, SUCCESS_CONTENT),
                AnthropicReply::text(format!("Created {SUCCESS_FILE}.")),
            ],
            Scenario::Failure => {
                vec![AnthropicReply::error(400, "invalid_request_error", "messages: conformance says no")]
            }
            Scenario::Timeout | Scenario::Crash => vec![AnthropicReply::text("too late").delay(HANG)],
            Scenario::RateLimit => vec![AnthropicReply::rate_limited().retry_after(RETRY_AFTER_SECS)],
            // Misconfigured output: plain text instead of the stream-json events the plugin reads.
            Scenario::Garbage => vec![AnthropicReply::text("All done, trust me.")],
        };
        let fake = FakeAnthropic::start(script);
        let env = cli.env(&fake.base_url());
        let mut project = Project::new();
        for (k, v) in env.vars() {
            project.set_env(k, v);
        }
        let mut env_names: Vec<String> = env.vars().iter().map(|(k, _)| k.clone()).collect();
        env_names.push("PATH".into());
        let bin_dir = env.bin().parent().unwrap().display().to_string();
        let path = env.vars().iter().find(|(k, _)| k == "PATH").map(|(_, v)| v.clone()).unwrap_or_default();
        project.set_env("PATH", &format!("{bin_dir}:{path}"));
        let extra_args = if scenario == Scenario::Garbage { r#"["--output-format", "text"]"# } else { "[]" };
        let config_yaml = format!(
            "agents:\n  claude-code:\n    permission_mode: acceptEdits\n    max_turns: 5\n    extra_args: {extra_args}\n"
        );
        let agent_yaml = match &sshd {
            None => String::new(),
            Some(sshd) => format!(
                "  transport:\n    kind: ssh\n    forward_env: {FORWARD}\n    ssh:\n      host: 127.0.0.1\n      \
                 port: {}\n      identity_file: {}\n      known_hosts_file: {}\n",
                sshd.keys().port(),
                sshd.keys().identity_file().display(),
                sshd.keys().known_hosts_file().display()
            ),
        };
        let fake = std::sync::Arc::new(fake);
        let counter = fake.clone();
        Some(Arranged {
            project,
            config_yaml,
            agent_yaml,
            env_names,
            model_requests: Box::new(move || counter.message_requests().len()),
            keep_alive: Box::new((fake, env, sshd)),
        })
    }
}
