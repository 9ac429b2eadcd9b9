//! The built-in `openai` LLM provider plugin against a fake OpenAI chat-completions server that speaks the
//! real wire protocol (SSE chunks, usage chunk, `[DONE]`, OpenAI error objects): through the plugin host, and
//! through the `obra` binary with the API key put in by the host from the environment — never stored or logged.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Project, text};
use obra::contract::{CompletionRequest, LlmProvider, Message, PluginError, Role};
use obra::plugins::PluginHost;
use obra_testkit::{ChatReply, FakeOpenAiChat};
use serde_json::{Value, json};

const SCHEMA: &str = r#"{"type":"object","properties":{"confidence":{"type":"number"}},"required":["confidence"]}"#;

fn provider(base_url: &str, extra: Value) -> Arc<dyn LlmProvider> {
    let mut config = obra::config::Config::default().plugins;
    config.cache_dir = Some(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("obra-e2e-cache/obra/components"));
    let mut host = PluginHost::new(config, None).expect("plugin host");
    host.load_builtins(obra::builtin::BUILTINS).expect("built-ins load");
    let mut config = json!({ "base_url": format!("{base_url}/v1"), "model": "gpt-4o-mini", "timeout_secs": 5 });
    for (k, v) in extra.as_object().unwrap() {
        config[k] = v.clone();
    }
    host.llm_provider("openai", &config.to_string()).expect("the openai plugin is built in")
}

fn ask(schema: Option<&str>) -> CompletionRequest {
    CompletionRequest {
        messages: vec![
            Message { role: Role::System, content: "You review code.".into() },
            Message { role: Role::User, content: "Rate this work.".into() },
        ],
        json_schema: schema.map(str::to_string),
        temperature: Some(0.0),
        max_tokens: Some(200),
    }
}

#[tokio::test]
async fn a_streamed_structured_completion_reports_usage_and_sends_the_schema() {
    let fake = FakeOpenAiChat::start([ChatReply::json(&json!({ "confidence": 0.8 })).usage(21, 7)]);
    let c = provider(&fake.base_url(), json!({})).complete(&ask(Some(SCHEMA))).await.expect("completion");
    assert_eq!(serde_json::from_str::<Value>(&c.text).unwrap()["confidence"], 0.8);
    assert_eq!((c.usage.input_tokens, c.usage.output_tokens), (21, 7));
    assert_eq!(c.model, "gpt-4o-mini");
    let body = fake.chat_requests()[0].json.clone().unwrap();
    assert_eq!(body["stream"], true);
    assert_eq!(body["stream_options"]["include_usage"], true);
    assert_eq!(body["response_format"]["type"], "json_schema");
    assert_eq!(body["response_format"]["json_schema"]["schema"]["required"][0], "confidence");
    assert_eq!(body["messages"][0]["role"], "system");
    assert_eq!(body["max_tokens"], 200);
    assert!(fake.chat_requests()[0].header("authorization").is_none(), "no key configured, no header");
}

#[tokio::test]
async fn plain_replies_and_older_servers_work_too() {
    let fake = FakeOpenAiChat::start([ChatReply::text("fine"), ChatReply::json(&json!({"confidence": 1}))]);
    let plain = provider(&fake.base_url(), json!({"stream": false})).complete(&ask(None)).await.unwrap();
    assert_eq!(plain.text, "fine");
    assert!(plain.usage.input_tokens > 0);
    let old = provider(&fake.base_url(), json!({"json_mode": "json_object"})).complete(&ask(Some(SCHEMA))).await;
    assert!(old.is_ok(), "{old:?}");
    let body = fake.chat_requests()[1].json.clone().unwrap();
    assert_eq!(body["response_format"]["type"], "json_object");
    assert!(body["messages"][0]["content"].as_str().unwrap().contains("JSON Schema"));
}

#[tokio::test]
async fn every_failure_is_classified_with_a_clear_message() {
    let fake = FakeOpenAiChat::start([
        ChatReply::malformed_chunk("{\"confid"),
        ChatReply::error_mid_stream("{\"conf", "CUDA out of memory"),
        ChatReply::server_error(),
        ChatReply::rate_limited(7),
        ChatReply::error(401, "invalid_request_error", "Incorrect API key provided: sk-****"),
        ChatReply::text("not json at all"),
        ChatReply::text("late").delay(Duration::from_secs(10)),
    ]);
    let llm = provider(&fake.base_url(), json!({"api_key_env": null}));
    let e = llm.complete(&ask(None)).await.unwrap_err();
    assert!(e.is_retryable() && e.to_string().contains("malformed stream chunk"), "{e}");
    let e = llm.complete(&ask(None)).await.unwrap_err();
    assert!(e.is_retryable() && e.to_string().contains("CUDA out of memory"), "{e}");
    let e = llm.complete(&ask(None)).await.unwrap_err();
    assert!(e.is_retryable() && e.to_string().contains("HTTP 500"), "{e}");
    let e = llm.complete(&ask(None)).await.unwrap_err();
    assert!(matches!(e, PluginError::RateLimited { retry_after_ms: Some(7000), .. }), "{e:?}");
    let e = llm.complete(&ask(None)).await.unwrap_err();
    assert!(matches!(e, PluginError::Fatal(_)) && e.to_string().contains("api_key_env"), "{e:?}");
    let e = llm.complete(&ask(Some(SCHEMA))).await.unwrap_err();
    assert!(e.is_retryable() && e.to_string().contains("asked for JSON"), "{e}");
    let e = llm.complete(&ask(None)).await.unwrap_err();
    assert!(matches!(e, PluginError::Timeout(_)), "a hanging server is a timeout: {e:?}");

    // Nothing listening: retryable, naming the URL.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let e = provider(&format!("http://127.0.0.1:{port}"), json!({})).complete(&ask(None)).await.unwrap_err();
    assert!(e.is_retryable() && e.to_string().contains("is it running"), "{e}");
}

#[tokio::test]
async fn models_are_listed_and_health_checks_the_model() {
    let fake = FakeOpenAiChat::start([]);
    fake.set_models(&["gpt-4o-mini", "qwen"]);
    let llm = provider(&fake.base_url(), json!({}));
    assert_eq!(llm.list_models().await.unwrap(), ["gpt-4o-mini", "qwen"]);
    assert!(llm.health().await.unwrap().contains("model gpt-4o-mini present"));
    fake.set_models(&["qwen"]);
    let e = llm.health().await.unwrap_err();
    assert!(e.to_string().contains("does not serve the model `gpt-4o-mini`") && e.to_string().contains("qwen"));
}

const KEY: &str = "sk-proj-ObraTestKey0123456789abcdefghijkl";

/// A project whose LLM is the openai plugin pointed at `fake`, with the key in OPENAI_API_KEY.
fn project(fake: &FakeOpenAiChat) -> Project {
    let mut project = Project::with_echo_agent("true", "  []");
    let config = std::fs::read_to_string(project.path().join(".obra/config.yaml")).unwrap();
    let config = config.replace("llm:\n  provider: none\n", "llm:\n  provider: openai\n  timeout_secs: 20\n").replace(
        "engine:\n  max_iterations: 1\n",
        "engine:\n  max_iterations: 1\n  retry:\n    max_attempts: 3\n    base_delay_ms: 20\n    \
             max_delay_ms: 200\n    jitter: 0.0\n",
    );
    project.write_config(&format!(
        "{config}llms:\n  openai:\n    base_url: {}\n    model: gpt-4o-mini\n    api_key_env: OPENAI_API_KEY\n",
        fake.v1_url()
    ));
    project.set_env("OPENAI_API_KEY", KEY);
    project
}

#[test]
fn obra_asks_the_llm_with_the_key_from_the_environment_and_never_stores_it() {
    let fake = FakeOpenAiChat::start([
        ChatReply::malformed_chunk("{\"conf"),
        ChatReply::json(&json!({"confidence": 0.92, "reasoning": "fine", "concerns": []})).usage(300, 20),
    ]);
    let project = project(&fake);
    let id = project.create_task("Judge me", "anything");
    let out = project.obra(&["task", "execute", &id.to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let requests = fake.chat_requests();
    assert_eq!(requests.len(), 2, "the malformed stream was retried");
    for r in &requests {
        assert_eq!(r.header("authorization"), Some(format!("Bearer {KEY}").as_str()), "the host put the key in");
    }
    assert_eq!(requests[1].pointer("/response_format/type"), Some(&json!("json_schema")));

    let shown = project.obra_json(&["task", "show", &id.to_string(), "--json"], 0);
    let decision = &shown["interactions"][0]["decision"];
    assert!((decision["llm_score"].as_f64().unwrap() - 0.92).abs() < 1e-6, "{decision}");
    let calls = shown["llm_calls"].as_array().unwrap();
    assert!(calls.iter().any(|c| c["error"].as_str().is_some_and(|e| e.contains("malformed"))), "{calls:?}");
    assert!(calls.iter().any(|c| c["input_tokens"] == 300 && c["output_tokens"] == 20), "{calls:?}");

    let everything =
        format!("{shown}{}", std::fs::read_to_string(project.path().join(".obra/logs/obra.jsonl")).unwrap_or_default());
    assert!(!everything.contains(KEY), "the key is neither stored nor logged");
    let db = std::fs::read(project.path().join(".obra/obra.db")).unwrap();
    assert!(!String::from_utf8_lossy(&db).contains(KEY), "not even in the database file");
}

#[test]
fn doctor_checks_the_endpoint_the_model_and_the_key() {
    let fake = FakeOpenAiChat::start([]);
    let project = project(&fake);
    let out = project.obra(&["doctor"]);
    let said = text(&out);
    assert!(said.contains("ok    LLM openai") && said.contains("model gpt-4o-mini present"), "{said}");

    fake.set_models(&["other-model"]);
    let said = text(&project.obra(&["doctor"]));
    assert!(said.contains("FAIL  LLM openai") && said.contains("other-model"), "{said}");

    // A key variable that is not set: the host says which one to export.
    fake.set_models(&["gpt-4o-mini"]);
    let config = std::fs::read_to_string(project.path().join(".obra/config.yaml")).unwrap();
    project.write_config(&config.replace("api_key_env: OPENAI_API_KEY", "api_key_env: OBRA_LLM_API_KEY"));
    let said = text(&project.obra(&["doctor"]));
    assert!(said.contains("FAIL  LLM openai") && said.contains("OBRA_LLM_API_KEY is not set"), "{said}");
    assert!(fake.chat_requests().is_empty(), "a health check costs no completion");
}
