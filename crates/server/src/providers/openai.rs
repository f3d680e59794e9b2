//! OpenAI Chat Completions (and every server that speaks it): the request we send and the parts of its
//! answer we read.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Answer, Failure, FailureKind, Prompt, ProviderSettings};

#[derive(Serialize)]
struct Request<'a> {
    model: &'a str,
    messages: [Message<'a>; 2],
    response_format: ResponseFormat<'a>,
    max_tokens: u32,
    temperature: u8,
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'static str,
    content: &'a str,
}

#[derive(Serialize)]
struct ResponseFormat<'a> {
    r#type: &'static str,
    json_schema: JsonSchema<'a>,
}

#[derive(Serialize)]
struct JsonSchema<'a> {
    name: &'a str,
    strict: bool,
    schema: &'a Value,
}

/// The request for `prompt`, with the bearer key when one is configured (self-hosted servers may need none).
pub(super) fn request(http: &reqwest::Client, s: &ProviderSettings, prompt: &Prompt<'_>) -> reqwest::RequestBuilder {
    let url = format!("{}/chat/completions", s.base_url.trim_end_matches('/'));
    let body = Request {
        model: &s.model,
        messages: [Message { role: "system", content: prompt.system }, Message { role: "user", content: prompt.user }],
        response_format: ResponseFormat {
            r#type: "json_schema",
            json_schema: JsonSchema { name: prompt.name, strict: true, schema: prompt.schema },
        },
        max_tokens: s.max_output_tokens,
        temperature: 0,
    };
    let r = http.post(url).json(&body);
    match &s.api_key {
        Some(k) => r.bearer_auth(k.expose()),
        None => r,
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct Response {
    choices: Vec<Choice>,
    usage: Usage,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Choice {
    message: ChoiceMessage,
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ChoiceMessage {
    content: Option<String>,
    refusal: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Usage {
    prompt_tokens: u64,
    completion_tokens: u64,
}

impl Response {
    /// The answer's text and token counts, or why there is none (a refusal, the content filter, no choice,
    /// an answer cut at the token limit).
    pub(super) fn answer(self) -> Result<Answer, Failure> {
        let choice = self.choices.into_iter().next().ok_or_else(|| Failure::new(FailureKind::Empty, "no choices"))?;
        if let Some(refusal) = choice.message.refusal {
            let refusal: String = refusal.chars().take(120).collect();
            return Err(Failure::new(FailureKind::Blocked, format!("refused: {refusal}")));
        }
        match choice.finish_reason.as_deref() {
            Some("content_filter") => {
                return Err(Failure::new(FailureKind::Blocked, "answer blocked by the content filter"));
            }
            Some("length") => return Err(Failure::new(FailureKind::Truncated, "answer cut at the token limit")),
            _ => {}
        }
        Ok(Answer {
            text: choice.message.content.unwrap_or_default(),
            input_tokens: self.usage.prompt_tokens,
            output_tokens: self.usage.completion_tokens,
        })
    }
}
