//! Google Gemini's `generateContent`: the request we send and the parts of its answer we read.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Answer, Failure, FailureKind, Prompt, ProviderSettings};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Request<'a> {
    system_instruction: Content<'a>,
    contents: [Content<'a>; 1],
    generation_config: GenerationConfig,
}

#[derive(Serialize)]
struct Content<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    parts: [TextPart<'a>; 1],
}

#[derive(Serialize)]
struct TextPart<'a> {
    text: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GenerationConfig {
    response_mime_type: &'static str,
    response_schema: Value,
    max_output_tokens: u32,
    temperature: u8,
}

/// The request for `prompt`, authenticated with the API key header.
pub(super) fn request(http: &reqwest::Client, s: &ProviderSettings, prompt: &Prompt<'_>) -> reqwest::RequestBuilder {
    let url = format!("{}/v1beta/models/{}:generateContent", s.base_url.trim_end_matches('/'), s.model);
    let body = Request {
        system_instruction: Content { role: None, parts: [TextPart { text: prompt.system }] },
        contents: [Content { role: Some("user"), parts: [TextPart { text: prompt.user }] }],
        generation_config: GenerationConfig {
            response_mime_type: "application/json",
            response_schema: schema(prompt.schema),
            max_output_tokens: s.max_output_tokens,
            temperature: 0,
        },
    };
    let r = http.post(url).json(&body);
    match &s.api_key {
        Some(k) => r.header("x-goog-api-key", k.expose()),
        None => r,
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct Response {
    prompt_feedback: Option<PromptFeedback>,
    candidates: Vec<Candidate>,
    usage_metadata: Usage,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct PromptFeedback {
    block_reason: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Candidate {
    content: CandidateContent,
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CandidateContent {
    parts: Vec<AnswerPart>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct AnswerPart {
    text: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Usage {
    prompt_token_count: u64,
    candidates_token_count: u64,
}

impl Response {
    /// The answer's text and token counts, or why there is none (a blocked prompt or answer, no candidate,
    /// an answer cut at the token limit).
    pub(super) fn answer(self) -> Result<Answer, Failure> {
        if let Some(reason) = self.prompt_feedback.and_then(|f| f.block_reason) {
            return Err(Failure::new(FailureKind::Blocked, format!("prompt blocked: {reason}")));
        }
        let candidate =
            self.candidates.into_iter().next().ok_or_else(|| Failure::new(FailureKind::Empty, "no candidates"))?;
        match candidate.finish_reason.as_deref() {
            Some("SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII") => {
                return Err(Failure::new(FailureKind::Blocked, "answer blocked by safety filters"));
            }
            Some("MAX_TOKENS") => return Err(Failure::new(FailureKind::Truncated, "answer cut at the token limit")),
            _ => {}
        }
        Ok(Answer {
            text: candidate.content.parts.into_iter().filter_map(|p| p.text).collect(),
            input_tokens: self.usage_metadata.prompt_token_count,
            output_tokens: self.usage_metadata.candidates_token_count,
        })
    }
}

/// Gemini's schema dialect: OpenAPI-style upper-case types, no `additionalProperties`.
fn schema(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| k.as_str() != "additionalProperties")
                .map(|(k, v)| {
                    let v = if k == "type" {
                        json!(v.as_str().unwrap_or("string").to_uppercase())
                    } else {
                        self::schema(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(self::schema).collect()),
        v => v.clone(),
    }
}
