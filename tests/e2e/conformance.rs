//! The agent conformance suite: every agent plugin runs the same six scenarios (a real file edit, an API
//! failure, a timeout, a rate limit, a crash, garbage output) through its REAL client program against a scripted
//! fake model server. Adding an agent means adding a driver in `conformance/` and one `conformance_suite!` line.

mod common;
#[macro_use]
#[path = "conformance/harness.rs"]
mod harness;

#[path = "conformance/aider.rs"]
mod aider;
#[path = "conformance/claude.rs"]
mod claude;
#[path = "conformance/codex.rs"]
mod codex;

conformance_suite!(claude_code, crate::claude::Claude);
conformance_suite!(claude_code_over_ssh, crate::claude::ClaudeOverSsh);
conformance_suite!(claude_as_a_command_agent, crate::claude::ClaudeAsCommand);
conformance_suite!(codex_cli, crate::codex::Codex);
conformance_suite!(aider_cli, crate::aider::Aider);
