//! The built-in `ollama` LLM provider plugin (a WASM component, through the host's http capability) against a
//! fake Ollama server that follows the documented API: streaming, structured output, usage, and every way a
//! reply can go wrong.

use std::sync::Arc;

use obra::contract::{CompletionRequest, LlmProvider, Message, PluginError, Role};
use obra::plugins::PluginHost;
use obra_testkit::{FakeOllama, OllamaModel, OllamaReply};
use serde_json::json;

const SCHEMA: &str = r#"{"type":"object","properties":{"confidence":{"type":"number"}},"required":["confidence"]}"#;

fn provider(base_url: &str) -> Arc<dyn LlmProvider> {
    let mut config = obra::config::Config::default().plugins;
    config.cache_dir = Some(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("obra-e2e-cache/obra/components"));
    let mut host = PluginHost::new(config, None).expect("plugin host");
    host.load_builtins(obra::builtin::BUILTINS).expect("built-ins load");
    let config = json!({ "base_url": base_url, "model": "qwen2.5-coder:7b", "num_ctx": 4096, "keep_alive": "5m" });
    host.llm_provider("ollama", &config.to_string()).expect("the ollama plugin is built in")
}

fn ask(schema: Option<&str>) -> CompletionRequest {
    CompletionRequest {
        messages: vec![Message { role: Role::User, content: "Rate this work.".into() }],
        json_schema: schema.map(str::to_string),
        temperature: Some(0.0),
        max_tokens: None,
    }
}

#[tokio::test]
async fn a_structured_completion_streams_and_reports_usage() {
    let fake = FakeOllama::start([OllamaReply::json(&json!({ "confidence": 0.8 })).eval_counts(12, 34)]);
    let completion = provider(&fake.base_url()).complete(&ask(Some(SCHEMA))).await.expect("completion");
    let value: serde_json::Value = serde_json::from_str(&completion.text).unwrap();
    assert_eq!(value["confidence"], 0.8);
    assert_eq!((completion.usage.input_tokens, completion.usage.output_tokens), (12, 34));
    assert_eq!(completion.model, "qwen2.5-coder:7b");

    let chats = fake.requests_to("/api/chat");
    assert_eq!(chats.len(), 1);
    let body = chats[0].json.clone().unwrap();
    assert_eq!(body["stream"], true);
    assert_eq!(body["format"]["required"][0], "confidence", "the schema is sent as `format`: {body}");
    assert_eq!(body["options"]["num_ctx"], 4096);
    assert_eq!(body["keep_alive"], "5m");
    assert_eq!(body["messages"][0]["role"], "user");
}

#[tokio::test]
async fn malformed_json_in_a_structured_reply_is_a_retryable_error_with_an_excerpt() {
    let fake = FakeOllama::start([OllamaReply::malformed_json()]);
    let err = provider(&fake.base_url()).complete(&ask(Some(SCHEMA))).await.unwrap_err();
    match &err {
        PluginError::Retryable(message) => assert!(message.to_lowercase().contains("json"), "{message}"),
        other => panic!("expected retryable, got {other:?}"),
    }
}

#[tokio::test]
async fn an_error_in_the_middle_of_a_stream_is_reported_with_its_text() {
    let fake = FakeOllama::start([OllamaReply::error_mid_stream("{\"confid", "model runner has unexpectedly stopped")]);
    let err = provider(&fake.base_url()).complete(&ask(None)).await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert!(err.to_string().contains("model runner has unexpectedly stopped"), "{err}");
}

#[tokio::test]
async fn a_missing_model_is_fatal_and_says_how_to_pull_it() {
    let fake = FakeOllama::start([OllamaReply::model_not_found()]);
    let err = provider(&fake.base_url()).complete(&ask(None)).await.unwrap_err();
    assert!(matches!(err, PluginError::Fatal(_)), "{err:?}");
    assert!(err.to_string().contains("ollama pull"), "{err}");
}

#[tokio::test]
async fn server_errors_are_retryable_and_rate_limits_are_rate_limited() {
    let fake = FakeOllama::start([OllamaReply::server_error(), OllamaReply::error(429, "too many requests")]);
    let llm = provider(&fake.base_url());
    let err = llm.complete(&ask(None)).await.unwrap_err();
    assert!(matches!(err, PluginError::Retryable(_)), "{err:?}");
    let err = llm.complete(&ask(None)).await.unwrap_err();
    assert!(matches!(err, PluginError::RateLimited { .. }), "{err:?}");
}

#[tokio::test]
async fn a_server_that_is_not_running_is_retryable_and_names_the_url() {
    // Bind a port and close it again: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let err = provider(&url).complete(&ask(None)).await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert!(err.to_string().contains(&format!("127.0.0.1:{port}")), "{err}");
}

#[tokio::test]
async fn health_checks_the_version_and_that_the_model_is_present() {
    let fake = FakeOllama::start([]);
    let llm = provider(&fake.base_url());
    let status = llm.health().await.expect("healthy");
    assert!(status.contains("qwen2.5-coder:7b"), "{status}");
    assert_eq!(llm.list_models().await.unwrap(), vec!["qwen2.5-coder:7b".to_string()]);

    fake.set_models(vec![OllamaModel::new("llama3:8b")]);
    let err = llm.health().await.unwrap_err();
    assert!(err.to_string().contains("qwen2.5-coder:7b") && err.to_string().contains("ollama pull"), "{err}");
}

#[tokio::test]
async fn the_generate_endpoint_takes_the_system_message_apart_and_reports_usage() {
    let fake = FakeOllama::start([OllamaReply::json(&json!({ "confidence": 0.6 })).eval_counts(9, 4)]);
    let mut config = obra::config::Config::default().plugins;
    config.cache_dir = Some(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("obra-e2e-cache/obra/components"));
    let mut host = PluginHost::new(config, None).expect("plugin host");
    host.load_builtins(obra::builtin::BUILTINS).expect("built-ins load");
    let cfg = json!({ "base_url": fake.base_url(), "model": "qwen2.5-coder:7b", "api": "generate", "keep_alive": 0 });
    let llm = host.llm_provider("ollama", &cfg.to_string()).unwrap();
    let mut request = ask(Some(SCHEMA));
    request.messages.insert(0, Message { role: Role::System, content: "Answer in JSON.".into() });
    let completion = llm.complete(&request).await.expect("completion");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&completion.text).unwrap()["confidence"], 0.6);
    assert_eq!((completion.usage.input_tokens, completion.usage.output_tokens), (9, 4));
    assert!(completion.duration_ms > 0, "latency from the server's total_duration");
    let generated = fake.requests_to("/api/generate");
    assert_eq!(generated.len(), 1, "{:?}", fake.requests());
    let body = generated[0].json.clone().unwrap();
    assert_eq!(body["system"], "Answer in JSON.");
    assert_eq!(body["prompt"], "Rate this work.");
    assert_eq!(body["keep_alive"], 0);
    assert_eq!(body["format"]["required"][0], "confidence");
}
