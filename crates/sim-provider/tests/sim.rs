//! The simulated provider (a test fixture) against its own specification, the
//! crate's doc comment: one test per behaviour, each on a fresh simulator.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

struct Sim {
    base: String,
    http: reqwest::Client,
}

impl Sim {
    async fn start() -> Sim {
        let addr = tollgate_sim_provider::spawn("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        Sim {
            base: format!("http://{addr}"),
            http,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `POST /v1/chat/completions`, with `key` as a bearer token.
    async fn chat(&self, key: Option<&str>, body: Value) -> reqwest::Response {
        let mut request = self.http.post(self.url("/v1/chat/completions"));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        request.json(&body).send().await.unwrap()
    }

    /// `POST /v1/messages` with `anthropic-version`, `key` as `x-api-key`.
    async fn messages(&self, key: Option<&str>, body: Value) -> reqwest::Response {
        let mut request = self
            .http
            .post(self.url("/v1/messages"))
            .header("anthropic-version", "2023-06-01");
        if let Some(key) = key {
            request = request.header("x-api-key", key);
        }
        request.json(&body).send().await.unwrap()
    }

    async fn stats(&self) -> Value {
        let response = self.http.get(self.url("/sim/stats")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    /// Polls the stats until `ready` holds (or fails after 5 s).
    async fn stats_when(&self, ready: impl Fn(&Value) -> bool) -> Value {
        let waiting = async {
            loop {
                let stats = self.stats().await;
                if ready(&stats) {
                    return stats;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .unwrap_or_else(|_| panic!("stats never got there"))
    }
}

fn openai_body(model: &str) -> Value {
    json!({"model": model, "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello  there\nworld"}
    ]})
}

fn anthropic_body(model: &str) -> Value {
    json!({"model": model, "max_tokens": 64,
           "system": [{"type": "text", "text": "be brief"}],
           "messages": [{"role": "user", "content": [{"type": "text", "text": "hello there world"}]}]})
}

/// The `data:` payloads of an OpenAI stream, in order.
fn openai_data(text: &str) -> Vec<String> {
    text.split("\n\n")
        .filter(|event| !event.is_empty())
        .map(|event| event.strip_prefix("data: ").expect(event).to_owned())
        .collect()
}

/// The `(event, data)` pairs of an Anthropic stream, in order.
fn anthropic_events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|event| !event.is_empty())
        .map(|event| {
            let (name, data) = event.split_once('\n').expect(event);
            let name = name.strip_prefix("event: ").expect(event).to_owned();
            let data = data.strip_prefix("data: ").expect(event);
            (name, serde_json::from_str(data).unwrap())
        })
        .collect()
}

/// Reads a body that the simulator breaks off: what arrived, and whether it
/// ended in an error.
async fn read_broken(response: reqwest::Response) -> (String, bool) {
    let mut body = response.bytes_stream();
    let mut text = String::new();
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(bytes) => text.push_str(std::str::from_utf8(&bytes).unwrap()),
            Err(_) => return (text, true),
        }
    }
    (text, false)
}

#[tokio::test]
async fn chat_echoes_the_last_user_message_with_word_usage() {
    let sim = Sim::start().await;
    let response = sim.chat(None, openai_body("sim-small")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "sim-small");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "echo: hello  there\nworld"
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9})
    );

    let models: Value = sim
        .http
        .get(sim.url("/v1/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["object"], "list");
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["sim-small", "sim-large"]);
}

#[tokio::test]
async fn chat_streams_one_chunk_per_word_then_stop_then_done() {
    let sim = Sim::start().await;
    let mut body = openai_body("sim-large");
    body["stream"] = json!(true);
    let response = sim.chat(None, body).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let data = openai_data(&response.text().await.unwrap());
    assert_eq!(data.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    for chunk in &chunks {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["id"], chunks[0]["id"]);
        assert_eq!(chunk["created"], chunks[0]["created"]);
        assert_eq!(chunk["model"], "sim-large");
        assert!(chunk.get("usage").is_none(), "{chunk}");
    }
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"][0]["delta"], json!({}));
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    let words = &chunks[1..chunks.len() - 1];
    assert_eq!(words.len(), 4);
    let text: String = words
        .iter()
        .map(|c| c["choices"][0]["delta"]["content"].as_str().unwrap())
        .collect();
    assert_eq!(text, "echo: hello  there\nworld");
}

#[tokio::test]
async fn chat_stream_ends_with_usage_when_asked() {
    let sim = Sim::start().await;
    let mut body = openai_body("sim-small");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let data = openai_data(&sim.chat(None, body).await.text().await.unwrap());
    assert_eq!(data.last().unwrap(), "[DONE]");
    let usage: Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(
        usage["usage"],
        json!({"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9})
    );
    let finish: Value = serde_json::from_str(&data[data.len() - 3]).unwrap();
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    assert!(finish["usage"].is_null());
}

#[tokio::test]
async fn a_paced_stream_finishes() {
    let sim = Sim::start().await;
    let mut body = openai_body("sim-small-pace-20");
    body["stream"] = json!(true);
    let data = openai_data(&sim.chat(None, body).await.text().await.unwrap());
    assert_eq!(data.last().unwrap(), "[DONE]");
    assert_eq!(data.len(), 1 + 4 + 1 + 1);

    let mut body = anthropic_body("sim-small-pace-20");
    body["stream"] = json!(true);
    let events = anthropic_events(&sim.messages(None, body).await.text().await.unwrap());
    assert_eq!(events.last().unwrap().0, "message_stop");
}

#[tokio::test]
async fn model_names_script_openai_failures() {
    let sim = Sim::start().await;
    let cases = [
        ("sim-fail-500", 500, "sim_error", json!(500), None),
        ("sim-fail-402", 402, "sim_error", json!(402), None),
        (
            "sim-fail-401",
            401,
            "invalid_request_error",
            json!("invalid_api_key"),
            None,
        ),
        (
            "sim-fail-429",
            429,
            "rate_limit_exceeded",
            json!("rate_limit_exceeded"),
            Some("1"),
        ),
        (
            "sim-fail-429-quota",
            429,
            "insufficient_quota",
            json!("insufficient_quota"),
            None,
        ),
        (
            "sim-fail-400-credit",
            400,
            "invalid_request_error",
            Value::Null,
            None,
        ),
    ];
    for (model, status, kind, code, retry_after) in cases {
        let response = sim.chat(None, openai_body(model)).await;
        assert_eq!(response.status().as_u16(), status, "{model}");
        assert_eq!(
            response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap()),
            retry_after,
            "{model}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["type"], kind, "{model}: {body}");
        assert_eq!(body["error"]["code"], code, "{model}: {body}");
    }
    let quota: Value = sim
        .chat(None, openai_body("sim-fail-429-quota"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        quota,
        json!({"error": {"message": "You exceeded your current quota, please check your plan and billing details.",
                         "type": "insufficient_quota", "code": "insufficient_quota"}})
    );
    let credit: Value = sim
        .chat(None, openai_body("sim-fail-400-credit"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        credit["error"]["message"],
        "Your credit balance is too low to access the API. Please go to Plans & Billing to upgrade or purchase credits."
    );

    // The header still scripts failures for direct callers.
    let response = sim
        .http
        .post(sim.url("/v1/chat/completions"))
        .header("x-sim-fail", "503")
        .json(&openai_body("sim-small"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn a_slow_model_answers_later() {
    let sim = Sim::start().await;
    let response = sim.chat(None, openai_body("sim-slow-100")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "echo: hello  there\nworld"
    );
}

#[tokio::test]
async fn a_hanging_model_never_answers() {
    let sim = Sim::start().await;
    for (path, body) in [
        ("/v1/chat/completions", openai_body("sim-hang")),
        ("/v1/messages", anthropic_body("sim-hang")),
    ] {
        let error = sim
            .http
            .post(sim.url(path))
            .header("anthropic-version", "2023-06-01")
            .timeout(Duration::from_millis(300))
            .json(&body)
            .send()
            .await
            .expect_err("sim-hang answered");
        assert!(error.is_timeout(), "{error}");
    }
}

#[tokio::test]
async fn a_cut_stream_breaks_off_after_n_chunks() {
    let sim = Sim::start().await;
    let mut body = openai_body("sim-cut-2");
    body["stream"] = json!(true);
    let response = sim.chat(None, body).await;
    assert_eq!(response.status(), StatusCode::OK);
    let (text, broken) = read_broken(response).await;
    assert!(broken, "the body ended cleanly: {text}");
    let data = openai_data(&text);
    assert_eq!(data.len(), 3, "{text}");
    let content: String = data[1..]
        .iter()
        .map(|d| {
            let chunk: Value = serde_json::from_str(d).unwrap();
            chunk["choices"][0]["delta"]["content"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(content, "echo: hello  ");

    let mut body = anthropic_body("sim-cut-1");
    body["stream"] = json!(true);
    let (text, broken) = read_broken(sim.messages(None, body).await).await;
    assert!(broken, "the body ended cleanly: {text}");
    let names: Vec<String> = anthropic_events(&text).into_iter().map(|e| e.0).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta"
        ]
    );

    let stats = sim.stats().await;
    assert_eq!(stats["streams_cut"], 2, "{stats}");
    assert_eq!(stats["streams_aborted"], 0, "{stats}");
}

#[tokio::test]
async fn keys_script_failures_on_both_apis() {
    let sim = Sim::start().await;
    // (key, status, OpenAI type, OpenAI code, Anthropic type, Retry-After)
    let cases = [
        (
            "sim-key-fail-401",
            401,
            "invalid_request_error",
            json!("invalid_api_key"),
            "authentication_error",
            None,
        ),
        (
            "sim-key-fail-402",
            402,
            "sim_error",
            json!(402),
            "billing_error",
            None,
        ),
        (
            "sim-key-fail-429-quota",
            429,
            "insufficient_quota",
            json!("insufficient_quota"),
            "rate_limit_error",
            None,
        ),
        (
            "sim-key-fail-429",
            429,
            "rate_limit_exceeded",
            json!("rate_limit_exceeded"),
            "rate_limit_error",
            Some("1"),
        ),
        (
            "sim-key-fail-400-credit",
            400,
            "invalid_request_error",
            Value::Null,
            "invalid_request_error",
            None,
        ),
        (
            "sim-key-fail-500",
            500,
            "sim_error",
            json!(500),
            "api_error",
            None,
        ),
    ];
    for (key, status, openai_type, openai_code, anthropic_type, retry_after) in cases {
        let response = sim.chat(Some(key), openai_body("sim-small")).await;
        assert_eq!(response.status().as_u16(), status, "{key}");
        assert_eq!(
            response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap()),
            retry_after,
            "{key}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["type"], openai_type, "{key}: {body}");
        assert_eq!(body["error"]["code"], openai_code, "{key}: {body}");

        let response = sim.messages(Some(key), anthropic_body("sim-small")).await;
        assert_eq!(response.status().as_u16(), status, "{key}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["type"], "error", "{key}: {body}");
        assert_eq!(body["error"]["type"], anthropic_type, "{key}: {body}");
    }
    let credit: Value = sim
        .messages(Some("sim-key-fail-400-credit"), anthropic_body("sim-small"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        credit["error"]["message"],
        "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits."
    );

    // The key is read where each API puts it: a bearer token means nothing
    // to the Anthropic route.
    let response = sim
        .http
        .post(sim.url("/v1/messages"))
        .header("anthropic-version", "2023-06-01")
        .bearer_auth("sim-key-fail-401")
        .json(&anthropic_body("sim-small"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // Any other key, or none, succeeds; every key is counted.
    assert_eq!(
        sim.chat(Some("sk-real-looking"), openai_body("sim-small"))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        sim.chat(None, openai_body("sim-small")).await.status(),
        StatusCode::OK
    );
    let stats = sim.stats().await;
    assert_eq!(stats["by_key"]["sim-key-fail-401"], 2, "{stats}");
    assert_eq!(stats["by_key"]["sk-real-looking"], 1, "{stats}");
    assert_eq!(stats["by_key"][""], 2, "{stats}");
    assert_eq!(stats["requests"], 2 * 6 + 1 + 1 + 1 + 1, "{stats}");
}

#[tokio::test]
async fn a_flaky_key_fails_its_first_requests_until_reset() {
    let sim = Sim::start().await;
    let statuses = async || {
        let mut statuses = Vec::new();
        for _ in 0..4 {
            let response = sim
                .chat(Some("sim-key-flaky-2"), openai_body("sim-small"))
                .await;
            statuses.push(response.status().as_u16());
        }
        statuses
    };
    assert_eq!(statuses().await, [429, 429, 200, 200]);
    assert_eq!(sim.stats().await["by_key"]["sim-key-flaky-2"], 4);

    let reset = sim.http.post(sim.url("/sim/reset")).send().await.unwrap();
    assert!(reset.status().is_success());
    let stats = sim.stats().await;
    assert_eq!(stats["requests"], 0, "{stats}");
    assert_eq!(stats["by_key"], json!({}), "{stats}");
    assert_eq!(statuses().await, [429, 429, 200, 200]);

    let limited = sim
        .messages(Some("sim-key-flaky-1"), anthropic_body("sim-small"))
        .await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.headers()["retry-after"], "1");
}

#[tokio::test]
async fn messages_echo_with_anthropic_usage() {
    let sim = Sim::start().await;
    let response = sim.messages(None, anthropic_body("sim-small")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({
            "id": "msg_sim", "type": "message", "role": "assistant", "model": "sim-small",
            "content": [{"type": "text", "text": "echo: hello there world"}],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": 5, "output_tokens": 4}
        })
    );

    // String content and system, and the last *user* message is echoed.
    let body: Value = sim
        .messages(
            None,
            json!({"model": "sim-large", "max_tokens": 1, "system": "one two",
               "messages": [{"role": "user", "content": "first"},
                            {"role": "assistant", "content": "second answer"}]}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["content"][0]["text"], "echo: first");
    assert_eq!(
        body["usage"],
        json!({"input_tokens": 5, "output_tokens": 2})
    );
}

#[tokio::test]
async fn messages_stream_anthropic_events() {
    let sim = Sim::start().await;
    let mut body = anthropic_body("sim-small");
    body["stream"] = json!(true);
    let response = sim.messages(None, body).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let events = anthropic_events(&response.text().await.unwrap());
    for (name, data) in &events {
        assert_eq!(data["type"], name.as_str());
    }
    let names: Vec<&str> = events.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let start = &events[0].1["message"];
    assert_eq!(start["content"], json!([]));
    assert_eq!(start["model"], "sim-small");
    assert_eq!(
        start["usage"],
        json!({"input_tokens": 5, "output_tokens": 1})
    );
    assert_eq!(
        events[1].1["content_block"],
        json!({"type": "text", "text": ""})
    );
    let text: String = events[3..7]
        .iter()
        .map(|(_, data)| {
            assert_eq!(data["delta"]["type"], "text_delta");
            data["delta"]["text"].as_str().unwrap()
        })
        .collect();
    assert_eq!(text, "echo: hello there world");
    assert_eq!(
        events[8].1,
        json!({"type": "message_delta",
               "delta": {"stop_reason": "end_turn", "stop_sequence": null},
               "usage": {"output_tokens": 4}})
    );
}

#[tokio::test]
async fn model_names_script_anthropic_failures() {
    let sim = Sim::start().await;
    let cases = [
        ("sim-fail-401", 401, "authentication_error"),
        ("sim-fail-403", 403, "permission_error"),
        ("sim-fail-404", 404, "not_found_error"),
        ("sim-fail-429", 429, "rate_limit_error"),
        ("sim-fail-400", 400, "invalid_request_error"),
        ("sim-fail-400-credit", 400, "invalid_request_error"),
        ("sim-fail-500", 500, "api_error"),
        ("sim-fail-529", 529, "overloaded_error"),
    ];
    for (model, status, kind) in cases {
        let response = sim.messages(None, anthropic_body(model)).await;
        assert_eq!(response.status().as_u16(), status, "{model}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["type"], "error", "{model}: {body}");
        assert_eq!(body["error"]["type"], kind, "{model}: {body}");
        assert!(body["error"]["message"].is_string(), "{model}: {body}");
    }
    let limited = sim.messages(None, anthropic_body("sim-fail-429")).await;
    assert_eq!(limited.headers()["retry-after"], "1");
    let slow = sim.messages(None, anthropic_body("sim-slow-50")).await;
    assert_eq!(slow.status(), StatusCode::OK);
}

#[tokio::test]
async fn bad_requests_are_400_in_each_api_format() {
    let sim = Sim::start().await;
    let no_version = sim
        .http
        .post(sim.url("/v1/messages"))
        .json(&anthropic_body("sim-small"))
        .send()
        .await
        .unwrap();
    assert_eq!(no_version.status(), StatusCode::BAD_REQUEST);
    let body: Value = no_version.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("anthropic-version")
    );

    let mut no_max_tokens = anthropic_body("sim-small");
    no_max_tokens.as_object_mut().unwrap().remove("max_tokens");
    let mut zero_max_tokens = anthropic_body("sim-small");
    zero_max_tokens["max_tokens"] = json!(0);
    let mut no_messages = anthropic_body("sim-small");
    no_messages.as_object_mut().unwrap().remove("messages");
    for body in [no_max_tokens, zero_max_tokens, no_messages] {
        let response = sim.messages(None, body.clone()).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["type"], "invalid_request_error", "{body}");
    }

    let mut no_messages = openai_body("sim-small");
    no_messages.as_object_mut().unwrap().remove("messages");
    let response = sim.chat(None, no_messages).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "invalid_request_error");

    for (path, anthropic) in [("/v1/chat/completions", false), ("/v1/messages", true)] {
        let response = sim
            .http
            .post(sim.url(path))
            .header("anthropic-version", "2023-06-01")
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["type"], "invalid_request_error", "{path}");
        assert_eq!(error["type"] == "error", anthropic, "{path}: {error}");
    }
}

#[tokio::test]
async fn models_in_anthropic_shape_with_anthropic_version() {
    let sim = Sim::start().await;
    let models: Value = sim
        .http
        .get(sim.url("/v1/models"))
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["has_more"], false);
    assert_eq!(models["first_id"], "sim-small");
    assert_eq!(models["last_id"], "sim-large");
    let data = models["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    for model in data {
        assert_eq!(model["type"], "model");
        assert!(model["display_name"].is_string());
    }

    // The key there is `x-api-key`, with Anthropic's error format.
    let refused = sim
        .http
        .get(sim.url("/v1/models"))
        .header("anthropic-version", "2023-06-01")
        .header("x-api-key", "sim-key-fail-401")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["type"], "authentication_error");
}

#[tokio::test]
async fn stats_count_completed_and_aborted_streams() {
    let sim = Sim::start().await;
    let mut body = openai_body("sim-small");
    body["stream"] = json!(true);
    let done = sim
        .chat(Some("sim-key-a"), body)
        .await
        .text()
        .await
        .unwrap();
    assert!(done.ends_with("data: [DONE]\n\n"));
    let stats = sim.stats_when(|s| s["streams_completed"] == 1).await;
    assert_eq!(stats["streams_started"], 1, "{stats}");
    assert_eq!(stats["streams_aborted"], 0, "{stats}");

    // A long, slow stream dropped after its first chunk.
    let long = vec!["word"; 50].join(" ");
    let response = sim
        .messages(
            Some("sim-key-b"),
            json!({"model": "sim-small-pace-100", "max_tokens": 100, "stream": true,
                   "messages": [{"role": "user", "content": long}]}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.bytes_stream();
    let first = tokio::time::timeout(Duration::from_secs(5), body.next())
        .await
        .unwrap();
    assert!(first.unwrap().is_ok());
    drop(body);

    let stats = sim.stats_when(|s| s["streams_aborted"] == 1).await;
    assert_eq!(stats["streams_started"], 2, "{stats}");
    assert_eq!(stats["streams_completed"], 1, "{stats}");
    assert_eq!(stats["requests"], 2, "{stats}");
    assert_eq!(
        stats["by_key"],
        json!({"sim-key-a": 1, "sim-key-b": 1}),
        "{stats}"
    );
}
