//! `ollama`: an Obra LLM provider plugin for an [Ollama](https://ollama.com) server.
//!
//! `complete` posts to `{base_url}/api/chat` (or `/api/generate` with `api: generate`) with `stream: true` (and `format` = the request's JSON schema, when
//! it has one), reads the NDJSON reply through the host's streaming HTTP capability, concatenates the
//! `message.content` pieces and takes token counts and durations from the final `done: true` object. `health`
//! checks `/api/version` and that `/api/tags` lists the configured model; `list-models` reads `/api/tags`.
//!
//! Config keys (see [`wire::Config`]): `base_url`, `model`, `num_ctx`, `temperature`, `keep_alive`, `options`,
//! `timeout_secs`, `api`. Errors: HTTP 404 for a missing model is fatal and says to run `ollama pull <model>`; 429 is
//! rate-limited (with `retry-after`); 5xx, connection failures, an `{"error": ...}` line mid-stream and invalid
//! JSON when a schema was requested are retryable.

pub mod wire;

use std::time::Duration;

use obra_plugin_sdk::llm_provider::{LlmProvider, ProviderInfo};
use obra_plugin_sdk::{Completion, CompletionRequest, PluginError, export_llm_provider, http, progress};
use serde_json::Value;

use wire::{ChatStream, Config};

/// Report progress every this many streamed pieces.
const PROGRESS_EVERY: u64 = 200;

fn request(cfg: &Config, req: http::Request) -> http::Request {
    match cfg.timeout_secs {
        Some(secs) => req.timeout(Duration::from_secs(secs)),
        None => req,
    }
}

/// `GET {base_url}{path}` as JSON, with Ollama's error mapping.
fn get_json(cfg: &Config, path: &str) -> Result<Value, PluginError> {
    let resp =
        request(cfg, http::Request::get(cfg.url(path))).send().map_err(|e| wire::send_error(cfg, "GET", path, e))?;
    if !resp.is_success() {
        return Err(wire::http_error(cfg, path, resp.status, resp.retry_after_ms(), &resp.text()));
    }
    resp.json::<Value>()
}

fn tags(cfg: &Config) -> Result<Vec<String>, PluginError> {
    Ok(wire::model_names(&get_json(cfg, "/api/tags")?))
}

/// The provider.
pub struct Ollama;

impl LlmProvider for Ollama {
    fn info() -> ProviderInfo {
        ProviderInfo {
            name: "ollama".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Answers completions from an Ollama server".into(),
        }
    }

    fn health(config_json: String) -> Result<String, PluginError> {
        let cfg = Config::parse(&config_json)?;
        let version = get_json(&cfg, "/api/version")?
            .get("version")
            .and_then(Value::as_str)
            .unwrap_or("(unknown version)")
            .to_string();
        let names = tags(&cfg)?;
        if !wire::has_model(&names, &cfg.model) {
            let have = if names.is_empty() { "no models".to_string() } else { names.join(", ") };
            return Err(PluginError::fatal(format!(
                "Ollama {version} at {} does not have the model `{}` (it has {have}): run `ollama pull {}`",
                cfg.base_url, cfg.model, cfg.model
            )));
        }
        Ok(format!("Ollama {version} at {}, model {} present", cfg.base_url, cfg.model))
    }

    fn list_models(config_json: String) -> Result<Vec<String>, PluginError> {
        let cfg = Config::parse(&config_json)?;
        tags(&cfg)
    }

    fn complete(config_json: String, req: CompletionRequest) -> Result<Completion, PluginError> {
        let cfg = Config::parse(&config_json)?;
        let body = wire::chat_body(&cfg, &req)?;
        let path = cfg.api.path();
        let stream = request(&cfg, http::Request::post(cfg.url(path)))
            .json(&body)?
            .send_streaming()
            .map_err(|e| wire::send_error(&cfg, "POST", path, e))?;
        let status = stream.status();
        if !(200..300).contains(&status) {
            let retry_after = stream.retry_after_ms();
            let text = stream.read_to_string().unwrap_or_default();
            return Err(wire::http_error(&cfg, path, status, retry_after, &text));
        }
        let mut reply = ChatStream::new();
        for line in stream.lines() {
            let line = line.map_err(|e| e.context(format!("reading the reply of {}", cfg.url(path))))?;
            reply.feed(&line)?;
            if reply.pieces() > 0 && reply.pieces().is_multiple_of(PROGRESS_EVERY) {
                progress(&format!("{}: {} tokens", cfg.model, reply.pieces()));
            }
        }
        reply.finish(&cfg, req.json_schema.is_some())
    }
}

export_llm_provider!(Ollama);
