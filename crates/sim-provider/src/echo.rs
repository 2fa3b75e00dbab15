//! What the simulated "model" says and how it counts tokens.

use serde_json::Value;

/// Words, counted as tokens.
pub(crate) fn tokens(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// The text of a message's `content` (or of Anthropic's `system`): a string,
/// or the `text` of each part of an array, joined by spaces.
pub(crate) fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// The answer to a conversation and its token counts.
pub(crate) struct Echo {
    pub(crate) reply: String,
    pub(crate) prompt_tokens: u64,
    pub(crate) completion_tokens: u64,
}

impl Echo {
    /// `"echo: <last user message>"`; the prompt is every message plus
    /// `extra_prompt_tokens` (Anthropic's `system`, which is not a message).
    pub(crate) fn answer(messages: &[Value], extra_prompt_tokens: u64) -> Echo {
        let prompt_tokens = extra_prompt_tokens
            + messages
                .iter()
                .map(|m| tokens(&content_text(&m["content"])))
                .sum::<u64>();
        let last_user = messages
            .iter()
            .rev()
            .find(|m| m["role"] == "user")
            .map(|m| content_text(&m["content"]))
            .unwrap_or_default();
        let reply = format!("echo: {last_user}");
        let completion_tokens = tokens(&reply);
        Echo {
            reply,
            prompt_tokens,
            completion_tokens,
        }
    }
}
