//! What triage answers about a ticket: each field with how sure the engine is and which signal decided it.

/// One answer: the value, how sure the engine is, and which signal decided it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Guess {
    pub value: String,
    pub confidence: f32,
    pub source: String,
}

/// What triage says about a ticket (the engine composes its note for the agent separately).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Triage {
    pub category: Option<Guess>,
    pub priority: Guess,
    pub skills: Vec<Guess>,
    pub engine: String,
    /// For a language-model provider: which, the model, latency, attempts and token usage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub provider: Option<serde_json::Value>,
}
