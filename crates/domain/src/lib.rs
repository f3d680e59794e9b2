//! Smart Ticket's domain, with no I/O: parsed values, typed ids and timestamps, roles and who may do what,
//! the ticket state machine, routing's choice, service levels, job kinds and the triage value types. With
//! the `sqlx` feature the ids and timestamps are stored as themselves.

pub mod access;
pub mod article;
mod ids;
mod jobs;
pub mod routing;
pub mod rules;
pub mod sla;
mod ticket;
pub mod triage;
mod user;
pub mod webhooks;
pub mod workflow;

pub use ids::{TicketId, Ts, UserId};
pub use jobs::{InboundState, JobKind, JobState};
pub use ticket::{
    CategoryName, CommentBody, InvalidTransition, Priority, Resolution, Status, TicketDescription, TicketTitle,
};
pub use user::{Email, Password, Role, Skill, Skills};

use std::borrow::Cow;

/// Why a value from outside was refused; `field` names the input it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ParseError {
    pub field: &'static str,
    pub message: Cow<'static, str>,
}

impl ParseError {
    pub fn new(field: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self { field, message: message.into() }
    }
}

/// Trims `raw` and checks its length in characters and that it holds no control characters (tabs and line
/// breaks aside), no bidirectional overrides or isolates (which make text read differently than it is
/// stored) and not only invisible characters: the rule every free-text field shares.
pub fn bounded_text(field: &'static str, raw: &str, min: usize, max: usize) -> Result<String, ParseError> {
    let trimmed = raw.trim();
    let len = trimmed.chars().count();
    if len < min {
        return Err(ParseError::new(
            field,
            if min == 1 {
                Cow::Borrowed("must not be empty")
            } else {
                format!("must be at least {min} characters").into()
            },
        ));
    }
    if len > max {
        return Err(ParseError::new(field, format!("must be at most {max} characters")));
    }
    if trimmed.chars().any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t') {
        return Err(ParseError::new(field, "must not contain control characters"));
    }
    if trimmed.chars().any(is_bidi_control) {
        return Err(ParseError::new(field, "must not contain bidirectional override characters"));
    }
    if len > 0 && trimmed.chars().all(|c| c.is_whitespace() || is_invisible(c)) {
        return Err(ParseError::new(field, "must contain visible text"));
    }
    Ok(trimmed.to_owned())
}

/// [`bounded_text`] on one line: no line breaks or tabs either (titles, names).
pub fn bounded_line(field: &'static str, raw: &str, min: usize, max: usize) -> Result<String, ParseError> {
    let text = bounded_text(field, raw, min, max)?;
    if text.contains(['\n', '\r', '\t']) {
        return Err(ParseError::new(field, "must be one line"));
    }
    Ok(text)
}

/// Bidirectional embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069).
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Characters that show nothing: format characters (zero-width spaces and joiners, marks, the byte-order
/// mark, soft hyphens), variation selectors, fillers and tags.
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}'
        | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}' | '\u{FFF0}'..='\u{FFF8}'
        | '\u{1BCA0}'..='\u{1BCA3}' | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E0FFF}')
}

/// Declares a string enum with its wire names, `FromStr`, `Display` and serde in one place.
macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident, $field:literal { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::ParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err($crate::ParseError::new(
                        $field,
                        format!("must be one of: {}", [$($text),+].join(", ")),
                    )),
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = $crate::ParseError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                s.parse()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$($text),+]))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(|e: $crate::ParseError| serde::de::Error::custom(e.message))
            }
        }
    };
}
pub(crate) use string_enum;
