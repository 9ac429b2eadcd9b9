//! Obra test kit: scripted fake model servers that speak the real wire protocols, and helpers that find the
//! real agent CLIs and prepare a hermetic environment to run them in.
//!
//! - [`fake_anthropic`]: the Anthropic Messages API, for the real `claude` CLI;
//! - [`fake_ollama`]: the Ollama API (`/api/chat`, `/api/generate`, `/api/tags`, `/api/version`);
//! - [`fake_openai_chat`]: the OpenAI chat-completions API (`/v1/chat/completions`, SSE, `/v1/models`);
//! - [`claude`]: find the pinned Claude Code CLI and build a ready-to-run environment for it;
//! - [`codex`], [`aider`]: the same for the pinned OpenAI Codex CLI and Aider;
//! - [`fake_responses`]: the OpenAI Responses API (`/v1/responses`, SSE), for the Codex CLI;
//! - [`postgres`]: a throwaway PostgreSQL database per test, from `OBRA_TEST_POSTGRES_URL`;
//! - [`sshd`]: a real OpenSSH server on 127.0.0.1 with throwaway keys, for the SSH transport;
//! - [`pytest`]: find the pinned pytest, the test command the agents run in the e2e tests;
//! - [`fuzz`]: a deterministic mutation fuzzer for parsers, on the stable toolchain;
//! - [`requirements`]: a missing component fails the test, unless `OBRA_TEST_SKIP` opts out of it.
//!
//! Every fake binds `127.0.0.1:0`, runs on its own thread with its own tokio runtime (so it works from
//! synchronous tests and from inside a tokio runtime alike), records every request it receives, and stops
//! when dropped.

pub mod aider;
pub mod claude;
pub mod codex;
pub mod fake_anthropic;
pub mod fake_ollama;
pub mod fake_openai_chat;
pub mod fake_responses;
pub mod fuzz;
pub mod postgres;
pub mod pytest;
pub mod requirements;
mod server;
pub mod sshd;

pub use aider::{AiderCli, require_aider};
pub use claude::{ClaudeCli, ClaudeEnv, ClaudeOutput, require_claude};
pub use fake_anthropic::{AnthropicReply, ContentBlock, FakeAnthropic};
pub use fake_ollama::{FakeOllama, OllamaModel, OllamaReply};
pub use fake_openai_chat::{ChatReply, FakeOpenAiChat};
pub use fake_responses::{FakeResponses, ResponsesReply};
pub use pytest::require_pytest;
pub use server::RecordedRequest;
pub use sshd::{Sshd, SshdKeys, require_sshd};
