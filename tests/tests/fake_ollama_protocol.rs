//! The fake Ollama server speaks the documented API: checked with a plain HTTP client.

mod common;

use std::time::Duration;

use common::{get, post, request};
use obra_testkit::{FakeOllama, OllamaModel, OllamaReply};
use serde_json::{Value, json};

fn chat(stream: Option<bool>) -> Value {
    let mut body = json!({
        "model": "qwen2.5-coder:7b",
        "messages": [
            {"role": "system", "content": "You review code."},
            {"role": "user", "content": "Is this change good?"}
        ],
        "options": {"num_ctx": 8192, "temperature": 0.1},
        "keep_alive": "10m"
    });
    if let Some(stream) = stream {
        body["stream"] = json!(stream);
    }
    body
}

fn assert_final_stats(last: &Value) {
    assert_eq!(last["done"], true);
    for key in
        ["total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration", "eval_count", "eval_duration"]
    {
        assert!(last[key].as_u64().is_some(), "final object lacks {key}: {last}");
    }
    assert!(last["total_duration"].as_u64() >= last["eval_duration"].as_u64());
    assert_eq!(last["model"], "qwen2.5-coder:7b");
    assert!(last["created_at"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn chat_streams_ndjson_by_default_and_ends_with_statistics() {
    let fake = FakeOllama::start([OllamaReply::text("The change looks correct and well tested.")]);
    let resp = post(&fake.base_url(), "/api/chat", &chat(None));
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("application/x-ndjson"));
    let lines = resp.ndjson();
    assert!(lines.len() > 2, "several pieces and a final object");
    let (last, pieces) = lines.split_last().unwrap();
    let mut content = String::new();
    for piece in pieces {
        assert_eq!(piece["done"], false);
        assert_eq!(piece["message"]["role"], "assistant");
        assert_eq!(piece["model"], "qwen2.5-coder:7b");
        content.push_str(piece["message"]["content"].as_str().unwrap());
    }
    assert_eq!(content, "The change looks correct and well tested.");
    assert_final_stats(last);
    assert_eq!(last["done_reason"], "stop");
    assert_eq!(last["message"]["content"], "");
}

#[test]
fn chat_without_streaming_returns_one_object() {
    let fake =
        FakeOllama::start(
            [OllamaReply::json(&json!({"decision": "PROCEED", "confidence": 0.91})).eval_counts(120, 18)],
        );
    let mut body = chat(Some(false));
    body["format"] = json!({"type": "object", "properties": {"decision": {"type": "string"}}});
    let resp = post(&fake.base_url(), "/api/chat", &body);
    assert_eq!(resp.status, 200);
    assert!(resp.header("content-type").unwrap().starts_with("application/json"));
    let obj = resp.json();
    assert_final_stats(&obj);
    assert_eq!(obj["prompt_eval_count"], 120);
    assert_eq!(obj["eval_count"], 18);
    let content: Value = serde_json::from_str(obj["message"]["content"].as_str().unwrap()).unwrap();
    assert_eq!(content["decision"], "PROCEED");

    let recorded = &fake.requests_to("/api/chat")[0];
    assert_eq!(recorded.pointer("/format/type"), Some(&json!("object")));
    assert_eq!(recorded.pointer("/options/num_ctx"), Some(&json!(8192)));
    assert_eq!(recorded.pointer("/keep_alive"), Some(&json!("10m")));
}

#[test]
fn generate_streams_response_pieces_and_a_context() {
    let fake = FakeOllama::start([OllamaReply::text("feat: add the parser"), OllamaReply::text("again")]);
    let url = fake.base_url();
    let body = json!({"model": "qwen2.5-coder:7b", "prompt": "Write a commit message", "format": "json"});
    let lines = post(&url, "/api/generate", &body).ndjson();
    let (last, pieces) = lines.split_last().unwrap();
    let text: String = pieces.iter().map(|p| p["response"].as_str().unwrap()).collect();
    assert_eq!(text, "feat: add the parser");
    assert_final_stats(last);
    assert!(last["context"].as_array().is_some_and(|c| !c.is_empty()));
    assert_eq!(fake.requests_to("/api/generate")[0].pointer("/format"), Some(&json!("json")));

    let mut body = body;
    body["stream"] = json!(false);
    let obj = post(&url, "/api/generate", &body).json();
    assert_eq!(obj["response"], "again");
    assert_eq!(obj["done"], true);
}

#[test]
fn malformed_json_content_is_not_json() {
    let fake = FakeOllama::start([OllamaReply::malformed_json()]);
    let mut body = chat(Some(false));
    body["format"] = json!("json");
    let obj = post(&fake.base_url(), "/api/chat", &body).json();
    let content = obj["message"]["content"].as_str().unwrap();
    assert!(content.starts_with('{'));
    assert!(serde_json::from_str::<Value>(content).is_err());
    assert_eq!(obj["done_reason"], "length");
}

#[test]
fn error_in_the_middle_of_a_stream_keeps_http_200() {
    let fake = FakeOllama::start([
        OllamaReply::error_mid_stream("Partial answer", "an error was encountered while running the model"),
        OllamaReply::error_mid_stream("x", "boom"),
    ]);
    let resp = post(&fake.base_url(), "/api/chat", &chat(Some(true)));
    assert_eq!(resp.status, 200);
    let lines = resp.ndjson();
    assert!(lines.len() >= 2);
    assert_eq!(lines[0]["done"], false);
    let last = lines.last().unwrap();
    assert_eq!(last, &json!({"error": "an error was encountered while running the model"}));
    // Not streamed: an HTTP 500 instead.
    let plain = post(&fake.base_url(), "/api/chat", &chat(Some(false)));
    assert_eq!(plain.status, 500);
    assert_eq!(plain.json(), json!({"error": "boom"}));
}

#[test]
fn http_errors_have_ollama_bodies() {
    let fake = FakeOllama::start([
        OllamaReply::model_not_found(),
        OllamaReply::server_error(),
        OllamaReply::error(503, "server busy, please try again.  maximum pending requests exceeded"),
    ]);
    let url = fake.base_url();
    let mut body = chat(Some(false));
    body["model"] = json!("llama9:70b");
    let r404 = post(&url, "/api/chat", &body);
    assert_eq!(r404.status, 404);
    assert_eq!(r404.json(), json!({"error": "model \"llama9:70b\" not found, try pulling it first"}));
    let r500 = post(&url, "/api/chat", &chat(Some(true)));
    assert_eq!(r500.status, 500);
    assert!(r500.json()["error"].as_str().is_some());
    let r503 = post(&url, "/api/generate", &json!({"model": "m", "prompt": "p"}));
    assert_eq!(r503.status, 503);
    // Exhausted script.
    let exhausted = post(&url, "/api/chat", &chat(Some(false)));
    assert_eq!(exhausted.status, 500);
    assert!(exhausted.json()["error"].as_str().unwrap().contains("no reply left"));
}

#[test]
fn bad_requests_are_rejected_like_ollama_does() {
    let fake = FakeOllama::start([OllamaReply::text("unused")]);
    let url = fake.base_url();
    let no_model = post(&url, "/api/chat", &json!({"messages": [{"role": "user", "content": "hi"}]}));
    assert_eq!(no_model.status, 400);
    assert_eq!(no_model.json(), json!({"error": "model is required"}));
    let mut bad_format = chat(Some(false));
    bad_format["format"] = json!("yaml");
    let r = post(&url, "/api/chat", &bad_format);
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().unwrap().contains("invalid format"));
    let empty = request(&url, "POST", "/api/chat", None);
    assert_eq!(empty.status, 400);
    assert_eq!(fake.remaining(), 1, "rejected requests do not consume the script");
}

#[test]
fn load_requests_do_not_consume_the_script() {
    let fake = FakeOllama::start([OllamaReply::text("real answer")]);
    let url = fake.base_url();
    let load = post(&url, "/api/generate", &json!({"model": "qwen2.5-coder:7b"})).ndjson();
    assert_eq!(load.len(), 1);
    assert_eq!(load[0]["done"], true);
    assert_eq!(load[0]["done_reason"], "load");
    let unload = post(&url, "/api/chat", &json!({"model": "qwen2.5-coder:7b", "messages": [], "keep_alive": 0}));
    assert_eq!(unload.ndjson()[0]["done_reason"], "unload");
    assert_eq!(fake.remaining(), 1);
}

#[test]
fn tags_version_and_other_routes() {
    let fake = FakeOllama::start([]);
    let url = fake.base_url();
    let tags = get(&url, "/api/tags").json();
    let model = &tags["models"][0];
    assert_eq!(model["name"], "qwen2.5-coder:7b");
    assert_eq!(model["model"], "qwen2.5-coder:7b");
    assert!(model["size"].as_u64().unwrap() > 0);
    assert_eq!(model["digest"].as_str().unwrap().len(), 64);
    assert!(model["modified_at"].as_str().is_some());
    assert_eq!(model["details"]["format"], "gguf");
    assert!(model["details"]["parameter_size"].as_str().is_some());
    assert!(model["details"]["quantization_level"].as_str().is_some());

    fake.set_models(vec![OllamaModel::new("llama3.2:3b"), OllamaModel::new("qwen3:8b")]);
    let names: Vec<String> = get(&url, "/api/tags").json()["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["llama3.2:3b", "qwen3:8b"]);

    let version = get(&url, "/api/version").json();
    assert!(version["version"].as_str().unwrap().contains('.'));
    assert_eq!(get(&url, "/").text(), "Ollama is running");
    let missing = get(&url, "/api/nope");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.text(), "404 page not found");
    assert_eq!(fake.requests().len(), 5);
}

#[test]
fn slow_replies_still_arrive_complete() {
    let fake = FakeOllama::start([OllamaReply::text("slow but sure")
        .delay(Duration::from_millis(50))
        .chunk_delay(Duration::from_millis(5))]);
    let lines = post(&fake.base_url(), "/api/chat", &chat(None)).ndjson();
    let text: String = lines.iter().filter_map(|l| l["message"]["content"].as_str()).collect();
    assert_eq!(text, "slow but sure");
}

#[tokio::test]
async fn usable_from_a_tokio_runtime() {
    let fake = FakeOllama::start([OllamaReply::text("async hello")]);
    let url = fake.base_url();
    let body = tokio::task::spawn_blocking(move || post(&url, "/api/chat", &chat(Some(false))).json()).await.unwrap();
    assert_eq!(body["message"]["content"], "async hello");
}
