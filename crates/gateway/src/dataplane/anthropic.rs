//! Anthropic's Messages API behind the OpenAI format: a chat completion
//! request becomes a Messages request, and the answer (whole, or streamed
//! event by event) becomes a chat completion again.

use serde::Deserialize;
use serde_json::{Map, Value, json};

/// The `anthropic-version` header sent with every call.
pub const API_VERSION: &str = "2023-06-01";
/// `max_tokens` is required by the Messages API; OpenAI's is optional.
const DEFAULT_MAX_TOKENS: u64 = 4096;

/// Why a chat completion request cannot be sent to an Anthropic provider.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Untranslatable(pub String);

fn text_of(content: &Value) -> Result<String, Untranslatable> {
    match content {
        Value::String(text) => Ok(text.clone()),
        Value::Array(parts) => {
            let mut text = String::new();
            for part in parts {
                match part["type"].as_str() {
                    Some("text") => text.push_str(part["text"].as_str().unwrap_or_default()),
                    other => {
                        return Err(Untranslatable(format!(
                            "message parts of type `{}` are not translated for Anthropic providers",
                            other.unwrap_or("?")
                        )));
                    }
                }
            }
            Ok(text)
        }
        Value::Null => Ok(String::new()),
        _ => Err(Untranslatable(
            "a message's `content` must be a string or an array of parts".into(),
        )),
    }
}

/// The Messages request for an OpenAI chat completion request, for `model`.
pub fn request(openai: &[u8], model: &str) -> Result<Vec<u8>, Untranslatable> {
    let body: Map<String, Value> = serde_json::from_slice(openai)
        .map_err(|_| Untranslatable("the body is not a JSON object".into()))?;
    for unsupported in ["tools", "functions", "n", "logprobs"] {
        if body.get(unsupported).is_some_and(|v| !v.is_null()) {
            return Err(Untranslatable(format!(
                "`{unsupported}` is not translated for Anthropic providers"
            )));
        }
    }
    let mut system = Vec::new();
    let mut messages = Vec::new();
    for message in body["messages"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let text = text_of(&message["content"])?;
        match message["role"].as_str() {
            Some("system" | "developer") => system.push(text),
            Some(role @ ("user" | "assistant")) => {
                messages.push(json!({"role": role, "content": text}));
            }
            other => {
                return Err(Untranslatable(format!(
                    "messages of role `{}` are not translated for Anthropic providers",
                    other.unwrap_or("?")
                )));
            }
        }
    }
    let max_tokens = body
        .get("max_tokens")
        .or_else(|| body.get("max_completion_tokens"))
        .and_then(Value::as_u64)
        .unwrap_or(DEFAULT_MAX_TOKENS);
    let mut out = Map::new();
    out.insert("model".into(), model.into());
    out.insert("max_tokens".into(), max_tokens.into());
    out.insert("messages".into(), messages.into());
    if !system.is_empty() {
        out.insert("system".into(), system.join("\n\n").into());
    }
    for (from, to) in [
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("stream", "stream"),
    ] {
        if let Some(v) = body.get(from).filter(|v| !v.is_null()) {
            out.insert(to.into(), v.clone());
        }
    }
    match body.get("stop") {
        Some(Value::String(s)) => {
            out.insert("stop_sequences".into(), json!([s]));
        }
        Some(Value::Array(a)) => {
            out.insert("stop_sequences".into(), Value::Array(a.clone()));
        }
        _ => {}
    }
    if let Some(user) = body.get("user").and_then(Value::as_str) {
        out.insert("metadata".into(), json!({"user_id": user}));
    }
    serde_json::to_vec(&out).map_err(|e| Untranslatable(e.to_string()))
}

fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens") => "length",
        Some("tool_use") => "tool_calls",
        _ => "stop",
    }
}

#[derive(Deserialize)]
struct Message {
    id: Option<String>,
    model: Option<String>,
    #[serde(default)]
    content: Vec<Block>,
    stop_reason: Option<String>,
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Block {
    #[serde(rename = "type")]
    kind: String,
    text: Option<String>,
}

#[derive(Deserialize, Default, Clone, Copy)]
struct Usage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The chat completion for a Messages answer; `None` when it is not one.
pub fn response(body: &[u8]) -> Option<Vec<u8>> {
    let message: Message = serde_json::from_slice(body).ok()?;
    let text: String = message
        .content
        .iter()
        .filter(|b| b.kind == "text")
        .filter_map(|b| b.text.as_deref())
        .collect();
    let usage = message.usage.unwrap_or_default();
    let (input, output) = (
        usage.input_tokens.unwrap_or(0),
        usage.output_tokens.unwrap_or(0),
    );
    serde_json::to_vec(&json!({
        "id": format!("chatcmpl-{}", message.id.unwrap_or_default()),
        "object": "chat.completion",
        "created": now(),
        "model": message.model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                     "finish_reason": finish_reason(message.stop_reason.as_deref())}],
        "usage": {"prompt_tokens": input, "completion_tokens": output, "total_tokens": input + output},
    }))
    .ok()
}

/// Turns Messages stream events into chat completion chunks, one event at
/// a time.
#[derive(Default)]
pub struct StreamTranslator {
    id: String,
    model: String,
    created: i64,
    input_tokens: u64,
    output_tokens: u64,
}

/// What one event of the Messages stream becomes.
pub enum Translated {
    /// Chunks (JSON) to send, in order.
    Chunks(Vec<Value>),
    /// The end of the answer: (prompt, completion) tokens.
    Done(u64, u64),
    /// The upstream reported an error mid-stream.
    Failed(String),
}

impl StreamTranslator {
    fn chunk(&self, delta: Value, finish_reason: Option<&str>) -> Value {
        json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]})
    }

    /// The usage chunk OpenAI sends last when asked for it.
    pub fn usage_chunk(&self) -> Value {
        json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
               "choices": [], "usage": {"prompt_tokens": self.input_tokens, "completion_tokens": self.output_tokens,
               "total_tokens": self.input_tokens + self.output_tokens}})
    }

    pub fn translate(&mut self, event: &str, data: &str) -> Translated {
        let Ok(data) = serde_json::from_str::<Value>(data) else {
            return Translated::Chunks(Vec::new());
        };
        match event {
            "message_start" => {
                let message = &data["message"];
                self.id = format!("chatcmpl-{}", message["id"].as_str().unwrap_or_default());
                self.model = message["model"].as_str().unwrap_or_default().to_owned();
                self.created = now();
                self.input_tokens = message["usage"]["input_tokens"].as_u64().unwrap_or(0);
                self.output_tokens = message["usage"]["output_tokens"].as_u64().unwrap_or(0);
                Translated::Chunks(vec![
                    self.chunk(json!({"role": "assistant", "content": ""}), None),
                ])
            }
            "content_block_delta" => match data["delta"]["text"].as_str() {
                Some(text) => Translated::Chunks(vec![self.chunk(json!({"content": text}), None)]),
                None => Translated::Chunks(Vec::new()),
            },
            "message_delta" => {
                if let Some(output) = data["usage"]["output_tokens"].as_u64() {
                    self.output_tokens = output;
                }
                let reason = finish_reason(data["delta"]["stop_reason"].as_str());
                Translated::Chunks(vec![self.chunk(json!({}), Some(reason))])
            }
            "message_stop" => Translated::Done(self.input_tokens, self.output_tokens),
            "error" => Translated::Failed(
                data["error"]["message"]
                    .as_str()
                    .unwrap_or("the provider's stream failed")
                    .to_owned(),
            ),
            _ => Translated::Chunks(Vec::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chat_request_becomes_a_messages_request() {
        let openai = br#"{"model":"claude-x","messages":[{"role":"system","content":"Be brief."},
            {"role":"user","content":[{"type":"text","text":"hi "},{"type":"text","text":"there"}]},
            {"role":"assistant","content":"hello"},{"role":"user","content":"again"}],
            "max_tokens":64,"temperature":0.2,"stop":"END","stream":true}"#;
        let sent: Value = serde_json::from_slice(&request(openai, "claude-y").unwrap()).unwrap();
        assert_eq!(
            sent,
            json!({"model": "claude-y", "max_tokens": 64, "system": "Be brief.", "temperature": 0.2,
                   "stream": true, "stop_sequences": ["END"],
                   "messages": [{"role": "user", "content": "hi there"}, {"role": "assistant", "content": "hello"},
                                {"role": "user", "content": "again"}]})
        );
        let defaulted: Value =
            serde_json::from_slice(&request(br#"{"messages":[]}"#, "m").unwrap()).unwrap();
        assert_eq!(defaulted["max_tokens"], 4096);
        for refused in [
            r#"{"messages":[],"tools":[{}]}"#,
            r#"{"messages":[{"role":"tool","content":"x"}]}"#,
            r#"{"messages":[{"role":"user","content":[{"type":"image_url"}]}]}"#,
        ] {
            assert!(request(refused.as_bytes(), "m").is_err(), "{refused}");
        }
    }

    #[test]
    fn a_messages_answer_becomes_a_chat_completion() {
        let answer = br#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-x",
            "content":[{"type":"text","text":"echo: "},{"type":"text","text":"hi"}],
            "stop_reason":"max_tokens","usage":{"input_tokens":3,"output_tokens":2}}"#;
        let chat: Value = serde_json::from_slice(&response(answer).unwrap()).unwrap();
        assert_eq!(chat["choices"][0]["message"]["content"], "echo: hi");
        assert_eq!(chat["choices"][0]["finish_reason"], "length");
        assert_eq!(
            chat["usage"],
            json!({"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5})
        );
        assert_eq!(chat["id"], "chatcmpl-msg_1");
    }

    #[test]
    fn stream_events_become_chunks() {
        let mut t = StreamTranslator::default();
        let Translated::Chunks(first) = t.translate(
            "message_start",
            r#"{"type":"message_start","message":{"id":"msg_2","model":"claude-x","usage":{"input_tokens":4,"output_tokens":1}}}"#,
        ) else {
            panic!("chunks expected")
        };
        assert_eq!(first[0]["choices"][0]["delta"]["role"], "assistant");
        let Translated::Chunks(text) = t.translate(
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"echo"}}"#,
        ) else {
            panic!("chunks expected")
        };
        assert_eq!(text[0]["choices"][0]["delta"]["content"], "echo");
        assert!(
            matches!(t.translate("ping", r#"{"type":"ping"}"#), Translated::Chunks(c) if c.is_empty())
        );
        let Translated::Chunks(end) = t.translate(
            "message_delta",
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":7}}"#,
        ) else {
            panic!("chunks expected")
        };
        assert_eq!(end[0]["choices"][0]["finish_reason"], "stop");
        assert!(matches!(
            t.translate("message_stop", "{}"),
            Translated::Done(4, 7)
        ));
        assert_eq!(t.usage_chunk()["usage"]["total_tokens"], 11);
    }
}
