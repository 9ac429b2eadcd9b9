//! The fake Messages API speaks the wire protocol: checked with a plain HTTP client.

mod common;

use common::{post, request};
use obra_testkit::{AnthropicReply, ContentBlock, FakeAnthropic};
use serde_json::{Value, json};

fn main_request(stream: bool) -> Value {
    json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "stream": stream,
        "tools": [{"name": "Write", "input_schema": {"type": "object"}}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Please apply the reviewer's feedback"}]}]
    })
}

#[test]
fn streamed_text_reply_has_the_real_event_sequence() {
    let fake = FakeAnthropic::start([AnthropicReply::text("Hello there, general Kenobi")]);
    let resp = post(&fake.base_url(), "/v1/messages?beta=true", &main_request(true));
    assert_eq!(resp.status, 200);
    assert!(resp.header("content-type").unwrap().starts_with("text/event-stream"));
    assert!(resp.header("request-id").unwrap().starts_with("req_"));
    let events = resp.sse();
    let names: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(names.first(), Some(&"message_start"));
    assert_eq!(names.last(), Some(&"message_stop"));
    for (name, data) in &events {
        assert_eq!(data["type"], name.as_str(), "the data's type repeats the event name");
    }
    let start = &events[0].1["message"];
    assert_eq!(start["model"], "claude-sonnet-4-5");
    assert_eq!(start["role"], "assistant");
    assert_eq!(start["content"], json!([]));
    assert!(start["id"].as_str().unwrap().starts_with("msg_"));
    let text: String = events
        .iter()
        .filter(|(e, _)| e == "content_block_delta")
        .map(|(_, d)| {
            assert_eq!(d["delta"]["type"], "text_delta");
            d["delta"]["text"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(text, "Hello there, general Kenobi");
    assert!(events.iter().filter(|(e, _)| e == "content_block_delta").count() > 1, "streamed in pieces");
    let delta = &events.iter().find(|(e, _)| e == "message_delta").unwrap().1;
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert!(delta["usage"]["output_tokens"].as_u64().unwrap() > 0);
}

#[test]
fn streamed_tool_use_reassembles_to_the_input() {
    let fake =
        FakeAnthropic::start([AnthropicReply::write_file("src/main.rs", "fn main() {\n    println!(\"hi\");\n}\n")
            .with_text_before("Writing the file.")]);
    let events = post(&fake.base_url(), "/v1/messages", &main_request(true)).sse();
    let starts: Vec<&Value> = events.iter().filter(|(e, _)| e == "content_block_start").map(|(_, d)| d).collect();
    assert_eq!(starts.len(), 2);
    assert_eq!(starts[0]["content_block"]["type"], "text");
    let tool = &starts[1]["content_block"];
    assert_eq!(tool["type"], "tool_use");
    assert_eq!(tool["name"], "Write");
    assert_eq!(tool["input"], json!({}));
    assert!(tool["id"].as_str().unwrap().starts_with("toolu_"));
    let json_text: String = events
        .iter()
        .filter(|(e, d)| e == "content_block_delta" && d["index"] == 1)
        .map(|(_, d)| {
            assert_eq!(d["delta"]["type"], "input_json_delta");
            d["delta"]["partial_json"].as_str().unwrap().to_string()
        })
        .collect();
    let input: Value = serde_json::from_str(&json_text).unwrap();
    assert_eq!(input, json!({"file_path": "src/main.rs", "content": "fn main() {\n    println!(\"hi\");\n}\n"}));
    let stops = events.iter().filter(|(e, _)| e == "content_block_stop").count();
    assert_eq!(stops, 2);
    let delta = &events.iter().find(|(e, _)| e == "message_delta").unwrap().1;
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
}

#[test]
fn non_streamed_request_gets_one_message_object() {
    let fake = FakeAnthropic::start([AnthropicReply::message(vec![
        ContentBlock::text("Running it."),
        ContentBlock::tool_use("Bash", json!({"command": "cargo test"})),
    ])
    .usage(42, 7)]);
    let resp = post(&fake.base_url(), "/v1/messages", &main_request(false));
    assert_eq!(resp.status, 200);
    assert!(resp.header("content-type").unwrap().starts_with("application/json"));
    let msg = resp.json();
    assert_eq!(msg["type"], "message");
    assert_eq!(msg["role"], "assistant");
    assert_eq!(msg["stop_reason"], "tool_use");
    assert_eq!(msg["stop_sequence"], Value::Null);
    assert_eq!(msg["content"][0], json!({"type": "text", "text": "Running it."}));
    assert_eq!(msg["content"][1]["type"], "tool_use");
    assert_eq!(msg["content"][1]["input"], json!({"command": "cargo test"}));
    assert_eq!(msg["usage"]["input_tokens"], 42);
    assert_eq!(msg["usage"]["output_tokens"], 7);
}

#[test]
fn errors_have_the_real_body_and_headers() {
    let fake = FakeAnthropic::start([
        AnthropicReply::rate_limited().retry_after(7),
        AnthropicReply::server_error(),
        AnthropicReply::overloaded(),
        AnthropicReply::error(400, "invalid_request_error", "max_tokens: too large"),
    ]);
    let url = fake.base_url();
    let r429 = post(&url, "/v1/messages", &main_request(true));
    assert_eq!(r429.status, 429);
    assert_eq!(r429.header("retry-after"), Some("7"));
    let request_id = r429.header("request-id").unwrap().to_string();
    let body = r429.json();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "rate_limit_error");
    assert!(body["error"]["message"].as_str().unwrap().contains("rate limit"));
    assert_eq!(body["request_id"], request_id.as_str());

    let r500 = post(&url, "/v1/messages", &main_request(true));
    assert_eq!(r500.status, 500);
    assert_eq!(r500.json()["error"]["type"], "api_error");
    assert_eq!(r500.header("retry-after"), None);
    let r529 = post(&url, "/v1/messages", &main_request(false));
    assert_eq!(r529.status, 529);
    assert_eq!(r529.json()["error"]["type"], "overloaded_error");
    let r400 = post(&url, "/v1/messages", &main_request(true));
    assert_eq!(r400.status, 400);
    assert_eq!(r400.json()["error"]["message"], "max_tokens: too large");
}

#[test]
fn stream_error_fails_after_the_stream_started() {
    let fake = FakeAnthropic::start([
        AnthropicReply::stream_error("overloaded_error", "Overloaded"),
        AnthropicReply::stream_error("overloaded_error", "Overloaded"),
    ]);
    let resp = post(&fake.base_url(), "/v1/messages", &main_request(true));
    assert_eq!(resp.status, 200);
    let events = resp.sse();
    assert_eq!(events[0].0, "message_start");
    let (name, data) = events.last().unwrap();
    assert_eq!(name, "error");
    assert_eq!(data["error"]["type"], "overloaded_error");
    assert!(!events.iter().any(|(e, _)| e == "message_stop"));
    // Not streamed: a plain HTTP error instead.
    let plain = post(&fake.base_url(), "/v1/messages", &main_request(false));
    assert_eq!(plain.status, 529);
}

#[test]
fn requests_are_recorded_and_consume_the_script_in_order() {
    let fake = FakeAnthropic::start([AnthropicReply::text("one")]);
    fake.push(AnthropicReply::text("two"));
    assert_eq!(fake.remaining(), 2);
    let url = fake.base_url();
    let first = post(&url, "/v1/messages", &main_request(false)).json();
    let second = post(&url, "/v1/messages", &main_request(false)).json();
    assert_eq!(first["content"][0]["text"], "one");
    assert_eq!(second["content"][0]["text"], "two");
    assert_eq!(fake.remaining(), 0);

    // Exhausted: a clear 500 that says so.
    let third = post(&url, "/v1/messages", &main_request(false));
    assert_eq!(third.status, 500);
    assert!(third.json()["error"]["message"].as_str().unwrap().contains("no reply left"));

    let recorded = fake.message_requests();
    assert_eq!(recorded.len(), 3);
    assert_eq!(recorded[0].method, "POST");
    assert_eq!(recorded[0].path, "/v1/messages");
    assert_eq!(recorded[0].model(), Some("claude-sonnet-4-5"));
    assert_eq!(recorded[0].header("Content-Type"), Some("application/json"));
    assert!(recorded[0].all_text().contains("reviewer's feedback"));
    assert_eq!(recorded[0].pointer("/max_tokens"), Some(&json!(1024)));
}

#[test]
fn side_requests_and_other_endpoints_do_not_consume_the_script() {
    let fake = FakeAnthropic::start([AnthropicReply::text("main answer")]);
    let url = fake.base_url();
    // A title request: small model, not streamed, no tools.
    let side = post(
        &url,
        "/v1/messages",
        &json!({"model": "claude-haiku-4-5", "max_tokens": 50, "messages": [{"role": "user", "content": "title?"}]}),
    );
    assert_eq!(side.status, 200);
    assert_eq!(side.json()["type"], "message");
    let count = post(&url, "/v1/messages/count_tokens", &main_request(false));
    assert_eq!(count.status, 200);
    assert!(count.json()["input_tokens"].as_u64().unwrap() > 0);
    let head = request(&url, "HEAD", "/", None);
    assert_eq!(head.status, 404);
    let unknown = common::get(&url, "/v1/nope");
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["error"]["type"], "not_found_error");
    assert_eq!(fake.remaining(), 1, "nothing above consumed the script");
    let main = post(&url, "/v1/messages", &main_request(true)).sse();
    let text: String = main.iter().filter_map(|(_, d)| d["delta"]["text"].as_str()).collect();
    assert_eq!(text, "main answer");
    assert_eq!(fake.requests().len(), 5);
    assert_eq!(fake.message_requests().len(), 1);
}

#[test]
fn dropping_the_server_closes_the_port() {
    let fake = FakeAnthropic::start([]);
    let addr = fake.addr();
    drop(fake);
    assert!(std::net::TcpStream::connect(addr).is_err());
}

#[tokio::test(flavor = "current_thread")]
async fn works_from_inside_a_single_threaded_runtime_even_with_blocking_calls() {
    // The server has its own thread and runtime: a blocking client call on this runtime's only thread
    // must not starve it.
    let fake = FakeAnthropic::start([AnthropicReply::text("from a tokio test")]);
    let resp = post(&fake.base_url(), "/v1/messages", &main_request(false));
    assert_eq!(resp.json()["content"][0]["text"], "from a tokio test");
    drop(fake); // dropping inside the runtime is fine too
}
