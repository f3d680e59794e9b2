//! Tickets: their texts, priorities and the status state machine.

use crate::{ParseError, bounded_line, bounded_text, string_enum};

string_enum!(
    /// Where a ticket is in its life.
    Status, "status" { Open => "open", InProgress => "in_progress", Resolved => "resolved", Closed => "closed" }
);

string_enum!(
    /// How soon a ticket needs a response.
    Priority, "priority" { Low => "low", Medium => "medium", High => "high", Urgent => "urgent" }
);

/// A status change the state machine does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a ticket cannot go from {from} to {to}")]
pub struct InvalidTransition {
    pub from: Status,
    pub to: Status,
}

impl Status {
    /// `open → in_progress → resolved → closed`, with shortcuts forward and reopening back to `open`.
    /// Staying in the same status is allowed (and changes nothing).
    pub fn transition_to(self, to: Status) -> Result<Status, InvalidTransition> {
        use Status::*;
        let ok = match (self, to) {
            (a, b) if a == b => true,
            (Open, InProgress | Resolved | Closed) => true,
            (InProgress, Open | Resolved | Closed) => true,
            (Resolved, Closed | Open | InProgress) => true,
            (Closed, Open) => true,
            _ => false,
        };
        if ok { Ok(to) } else { Err(InvalidTransition { from: self, to }) }
    }

    /// Whether a ticket in this status still waits on the support team.
    pub fn is_active(self) -> bool {
        matches!(self, Status::Open | Status::InProgress)
    }
}

impl Priority {
    /// Weight of one assigned ticket in a moderator's load.
    pub fn weight(self) -> u32 {
        match self {
            Priority::Low => 1,
            Priority::Medium => 2,
            Priority::High => 3,
            Priority::Urgent => 5,
        }
    }
}

macro_rules! text_newtype {
    ($(#[$meta:meta])* $name:ident, $field:literal, $min:expr, $max:expr) => {
        text_newtype!($(#[$meta])* $name, $field, $min, $max, bounded_text);
    };
    ($(#[$meta:meta])* $name:ident, $field:literal, $min:expr, $max:expr, $check:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name(String);

        impl $name {
            pub const MIN: usize = $min;
            pub const MAX: usize = $max;

            pub fn parse(raw: &str) -> Result<Self, ParseError> {
                $check($field, raw, Self::MIN, Self::MAX).map(Self)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_inner(self) -> String {
                self.0
            }
        }
    };
}

/// A ticket category's name, e.g. `bug` or `account & access`: lower-case, trimmed, inner spaces collapsed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct CategoryName(String);

impl CategoryName {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        crate::user::label("category", "category", raw).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Priority {
    /// What the priority means, for people and for the AI's prompt.
    pub fn description(self) -> &'static str {
        match self {
            Priority::Low => "No deadline pressure: questions, wishes, cosmetic issues with a workaround.",
            Priority::Medium => "Normal work: one person or team is hindered, a workaround may exist.",
            Priority::High => "Important work is blocked for several people, or a deadline is close.",
            Priority::Urgent => "An outage, data loss, a security problem, or all users are affected.",
        }
    }
}

text_newtype!(
    /// A ticket's title: one line of 3 to 200 characters once trimmed.
    TicketTitle, "title", 3, 200, bounded_line
);
text_newtype!(
    /// A ticket's description: 1 to 20,000 characters once trimmed.
    TicketDescription, "description", 1, 20_000
);
text_newtype!(
    /// How a ticket was resolved: required to resolve it.
    Resolution, "resolution", 1, 20_000
);
text_newtype!(
    /// A reply or an internal note.
    CommentBody, "body", 1, 20_000
);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn any_status() -> impl Strategy<Value = Status> {
        proptest::sample::select(Status::ALL)
    }

    #[test]
    fn the_documented_transitions_hold() {
        use Status::*;
        assert!(Open.transition_to(InProgress).is_ok());
        assert!(InProgress.transition_to(Resolved).is_ok());
        assert!(Resolved.transition_to(Closed).is_ok());
        assert!(Closed.transition_to(Open).is_ok(), "reopen");
        assert!(Resolved.transition_to(Open).is_ok(), "reopen");
        assert_eq!(Closed.transition_to(Resolved), Err(InvalidTransition { from: Closed, to: Resolved }));
        assert!(Closed.transition_to(InProgress).is_err());
    }

    #[test]
    fn category_names_are_normalised() {
        assert_eq!(CategoryName::parse("  Account  &  Access ").unwrap().as_str(), "account & access");
        assert_eq!(CategoryName::parse("").unwrap_err().field, "category");
        assert!(CategoryName::parse("<b>").is_err());
    }

    #[test]
    fn titles_are_bounded_and_trimmed() {
        assert_eq!(TicketTitle::parse("  VPN down  ").unwrap().as_str(), "VPN down");
        assert!(TicketTitle::parse("ab").is_err());
        assert!(TicketTitle::parse("   abc   ").is_ok());
        assert!(TicketTitle::parse(&"x".repeat(201)).is_err());
        assert!(TicketTitle::parse(&"é".repeat(200)).is_ok(), "characters, not bytes");
        assert!(TicketTitle::parse("bad\u{0}title").is_err());
        assert!(TicketDescription::parse(" ").is_err());
    }

    #[test]
    fn titles_refuse_line_breaks_bidi_overrides_and_invisible_text() {
        for bad in [
            "VPN\r\nBcc: x",
            "two\nlines",
            "evil \u{202E}txt.exe",
            "\u{200B}\u{200B}\u{200B}\u{2060}",
            "\u{2066}abc\u{2069}",
        ] {
            assert!(TicketTitle::parse(bad).is_err(), "{bad:?}");
        }
        assert!(TicketDescription::parse("first line\nsecond line").is_ok(), "descriptions keep their lines");
        assert!(TicketDescription::parse("\u{FEFF}\u{200D}").is_err(), "nothing visible");
        assert!(CommentBody::parse("abc \u{202D}def").is_err());
        assert!(TicketTitle::parse("Café crème ☕ ok").is_ok());
    }

    proptest! {
        #[test]
        fn every_status_can_stay_and_every_status_can_reach_open_or_is_open(s in any_status()) {
            prop_assert_eq!(s.transition_to(s), Ok(s));
            prop_assert!(s.transition_to(Status::Open).is_ok());
        }

        #[test]
        fn closed_only_reopens(to in any_status()) {
            let r = Status::Closed.transition_to(to);
            prop_assert_eq!(r.is_ok(), matches!(to, Status::Closed | Status::Open));
        }

        #[test]
        fn every_status_is_reachable_from_open_in_at_most_two_steps(target in any_status()) {
            let reachable = Status::ALL.iter().any(|&mid| {
                Status::Open.transition_to(mid).is_ok() && mid.transition_to(target).is_ok()
            });
            prop_assert!(reachable);
        }

        #[test]
        fn status_names_round_trip(s in any_status()) {
            prop_assert_eq!(s.as_str().parse::<Status>().unwrap(), s);
        }

        #[test]
        fn titles_accept_exactly_the_bounded_lengths(t in "[a-zA-Z0-9 ]{0,260}") {
            let n = t.trim().chars().count();
            prop_assert_eq!(TicketTitle::parse(&t).is_ok(), (3..=200).contains(&n));
        }

        #[test]
        fn title_parse_never_panics(t in "\\PC{0,300}") {
            let _ = TicketTitle::parse(&t);
        }
    }
}
