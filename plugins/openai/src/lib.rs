//! `openai`: an Obra LLM provider plugin for OpenAI-compatible servers — vLLM, LM Studio, llama.cpp's server,
//! OpenAI itself and the like — through `POST {base_url}/chat/completions`.
//!
//! `complete` streams the reply as Server-Sent Events (`stream: true` with `stream_options.include_usage`) and
//! takes the usage from the last chunk, or reads one `chat.completion` with `stream: false`; with a JSON schema it
//! sends `response_format: json_schema` (or `json_object` / nothing, per `json_mode`). `health` reads
//! `GET {base_url}/models` and checks the model is there; `list-models` returns it.
//!
//! The API key never enters the plugin: with `api_key_env: OPENAI_API_KEY` the request carries the header
//! `Authorization: Bearer {env:OPENAI_API_KEY}`, which the host fills from Obra's environment when that variable
//! is granted. Errors: 401/403 fatal (check the key), 404 fatal (model or base_url), 429 rate-limited with
//! `retry-after`, 5xx, connection failures, a malformed chunk or an early end of the stream retryable.

pub mod wire;

use std::time::{Duration, Instant};

use obra_plugin_sdk::llm_provider::{LlmProvider, ProviderInfo};
use obra_plugin_sdk::{Completion, CompletionRequest, PluginError, export_llm_provider, http, progress};
use serde_json::Value;

use wire::{Config, SseReader};

/// Report progress every this many streamed pieces.
const PROGRESS_EVERY: u64 = 200;

fn request(cfg: &Config, mut req: http::Request) -> http::Request {
    for (k, v) in cfg.headers() {
        req = req.header(k, v);
    }
    match cfg.timeout_secs {
        Some(secs) => req.timeout(Duration::from_secs(secs)),
        None => req,
    }
}

fn models(cfg: &Config) -> Result<Vec<String>, PluginError> {
    let path = "/models";
    let resp = request(cfg, http::Request::get(cfg.url(path))).send().map_err(|e| wire::send_error(cfg, path, e))?;
    if !resp.is_success() {
        return Err(wire::http_error(cfg, path, resp.status, resp.retry_after_ms(), &resp.text()));
    }
    Ok(wire::model_ids(&resp.json::<Value>()?))
}

/// The provider.
pub struct OpenAi;

impl LlmProvider for OpenAi {
    fn info() -> ProviderInfo {
        ProviderInfo {
            name: "openai".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Answers completions from an OpenAI-compatible server".into(),
        }
    }

    fn health(config_json: String) -> Result<String, PluginError> {
        let cfg = Config::parse(&config_json)?;
        let names = models(&cfg)?;
        if !names.is_empty() && !names.iter().any(|m| m == &cfg.model) {
            return Err(PluginError::fatal(format!(
                "the server at {} does not serve the model `{}` (it serves {}): fix llms.openai.model",
                cfg.base_url,
                cfg.model,
                names.join(", ")
            )));
        }
        Ok(format!("OpenAI-compatible server at {}, model {} present", cfg.base_url, cfg.model))
    }

    fn list_models(config_json: String) -> Result<Vec<String>, PluginError> {
        models(&Config::parse(&config_json)?)
    }

    fn complete(config_json: String, req: CompletionRequest) -> Result<Completion, PluginError> {
        let cfg = Config::parse(&config_json)?;
        let body = wire::chat_body(&cfg, &req)?;
        let path = "/chat/completions";
        let started = Instant::now();
        let call = request(&cfg, http::Request::post(cfg.url(path))).json(&body)?;
        let reply = if cfg.stream {
            let stream = call.send_streaming().map_err(|e| wire::send_error(&cfg, path, e))?;
            let status = stream.status();
            if !(200..300).contains(&status) {
                let retry_after = stream.retry_after_ms();
                let text = stream.read_to_string().unwrap_or_default();
                return Err(wire::http_error(&cfg, path, status, retry_after, &text));
            }
            let mut reader = SseReader::new();
            for line in stream.lines() {
                let line = line.map_err(|e| e.context(format!("reading the reply of {}", cfg.url(path))))?;
                reader.feed(&line)?;
                if reader.pieces > 0 && reader.pieces.is_multiple_of(PROGRESS_EVERY) {
                    progress(&format!("{}: {} chunks", cfg.model, reader.pieces));
                }
                if reader.done {
                    break;
                }
            }
            reader.finish()?
        } else {
            let resp = call.send().map_err(|e| wire::send_error(&cfg, path, e))?;
            if !resp.is_success() {
                return Err(wire::http_error(&cfg, path, resp.status, resp.retry_after_ms(), &resp.text()));
            }
            wire::parse_completion(&resp.text())?
        };
        let duration_ms = started.elapsed().as_millis() as u64;
        wire::completion(&cfg, reply, req.json_schema.is_some(), duration_ms)
    }
}

export_llm_provider!(OpenAi);
