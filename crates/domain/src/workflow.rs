//! The team's own workflow: tags, reply templates with placeholders (canned responses), and the actions a
//! macro applies to a ticket in one step.

use serde::{Deserialize, Serialize};

use crate::{
    CategoryName, CommentBody, ParseError, Priority, Resolution, Skills, Status, UserId, bounded_line, user::label,
};

/// A ticket tag, e.g. `vip` or `refund-asked`: normalised like a skill (lower-case, trimmed, spaces collapsed).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Tag(String);

impl Tag {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        label("tags", "tag", raw).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A set of tags in first-seen order, without duplicates, at most [`Tags::MAX`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Tags(Vec<Tag>);

impl Tags {
    pub const MAX: usize = 30;

    pub fn parse<S: AsRef<str>>(raw: &[S]) -> Result<Self, ParseError> {
        let mut out: Vec<Tag> = Vec::new();
        for r in raw {
            let t = Tag::parse(r.as_ref())?;
            if !out.contains(&t) {
                out.push(t);
            }
        }
        if out.len() > Self::MAX {
            return Err(ParseError::new("tags", format!("at most {} tags", Self::MAX)));
        }
        Ok(Self(out))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Tag> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(|t| t.0.clone()).collect()
    }

    /// These tags and then `more`, still without duplicates and at most [`Tags::MAX`].
    pub fn and(&self, more: &Tags) -> Result<Tags, ParseError> {
        Tags::parse(&[self.to_strings(), more.to_strings()].concat())
    }
}

/// `tags` with `add` appended (those not there yet) and `remove` taken out, as a ticket stores them.
pub fn retag(tags: &[String], add: &Tags, remove: &Tags) -> Vec<String> {
    let mut out: Vec<String> =
        tags.iter().filter(|t| !remove.0.iter().any(|r| r.as_str() == t.as_str())).cloned().collect();
    for t in add.iter() {
        if !out.iter().any(|o| o == t.as_str()) && !remove.0.contains(t) {
            out.push(t.0.clone());
        }
    }
    out.truncate(Tags::MAX);
    out
}

macro_rules! placeholders {
    ($($variant:ident => $name:literal: $doc:literal),+ $(,)?) => {
        /// A value a reply template may name as `{{ name }}`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Placeholder { $(#[doc = $doc] $variant),+ }

        impl Placeholder {
            pub const ALL: &'static [Placeholder] = &[$(Placeholder::$variant),+];

            pub fn name(self) -> &'static str {
                match self { $(Placeholder::$variant => $name),+ }
            }

            pub fn description(self) -> &'static str {
                match self { $(Placeholder::$variant => $doc),+ }
            }

            fn parse(raw: &str) -> Option<Self> {
                match raw { $($name => Some(Placeholder::$variant),)+ _ => None }
            }
        }
    };
}

placeholders!(
    RequesterName => "requester.name": "The requester's name (from their address: ann.lee@… is Ann Lee).",
    RequesterEmail => "requester.email": "The requester's e-mail address.",
    TicketNumber => "ticket.number": "The ticket's number, e.g. 42.",
    TicketTitle => "ticket.title": "The ticket's title.",
    TicketStatus => "ticket.status": "The ticket's status, e.g. in progress.",
    TicketLink => "ticket.link": "The link to the ticket's page.",
    AssigneeName => "assignee.name": "The assignee's name, or \"the support team\" when nobody is assigned.",
    AssigneeEmail => "assignee.email": "The assignee's e-mail address (empty when nobody is assigned).",
    AgentName => "agent.name": "The name of the person sending the reply.",
    HelpLink => "help.link": "The link to the help centre.",
);

/// One piece of a reply template: text as written, or a placeholder to fill.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Value(Placeholder),
}

/// A reply text with `{{ placeholder }}`s, every one known ([`Placeholder`]); 1 to 20,000 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyTemplate {
    source: String,
    pieces: Vec<Piece>,
}

impl ReplyTemplate {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let source = crate::bounded_text("body", raw, 1, CommentBody::MAX)?;
        let mut pieces = Vec::new();
        let mut rest = source.as_str();
        while let Some(start) = rest.find("{{") {
            let Some(len) = rest[start + 2..].find("}}") else {
                return Err(ParseError::new("body", "a {{ has no closing }}"));
            };
            let name = rest[start + 2..start + 2 + len].trim();
            let Some(p) = Placeholder::parse(name) else {
                let known: Vec<&str> = Placeholder::ALL.iter().map(|p| p.name()).collect();
                return Err(ParseError::new(
                    "body",
                    format!("unknown placeholder {{{{ {name} }}}}: use one of {}", known.join(", ")),
                ));
            };
            if start > 0 {
                pieces.push(Piece::Text(rest[..start].to_owned()));
            }
            pieces.push(Piece::Value(p));
            rest = &rest[start + 2 + len + 2..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_owned()));
        }
        Ok(Self { source, pieces })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The text with every placeholder filled by `value` (plain text: pages escape it when they show it).
    pub fn fill(&self, value: impl Fn(Placeholder) -> String) -> String {
        self.pieces
            .iter()
            .map(|p| match p {
                Piece::Text(t) => t.clone(),
                Piece::Value(v) => value(*v),
            })
            .collect()
    }
}

/// A person's name as far as their address tells it: `ann.lee@example.com` is "Ann Lee".
pub fn name_from_email(email: &str) -> String {
    let local = email.split('@').next().unwrap_or(email);
    let words: Vec<String> = local
        .split(['.', '_', '-', '+'])
        .filter(|w| !w.is_empty() && !w.chars().all(|c| c.is_ascii_digit()))
        .map(|w| {
            let mut c = w.chars();
            c.next().map(|f| f.to_uppercase().chain(c.flat_map(char::to_lowercase)).collect()).unwrap_or_default()
        })
        .collect();
    if words.is_empty() { local.to_owned() } else { words.join(" ") }
}

/// A macro's or canned response's name: one line of 1 to 100 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowName(String);

impl WorkflowName {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        bounded_line("name", raw, 1, 100).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One action as the API and storage write it: `{"type": "set_status", "status": "resolved", ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ActionSpec {
    /// Moves the ticket to `status`; `resolution` is required when that is `resolved` (and none is set yet).
    SetStatus {
        status: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resolution: Option<String>,
    },
    SetPriority {
        priority: String,
    },
    /// A category of the taxonomy, or null to clear it.
    SetCategory {
        category: Option<String>,
    },
    SetSkills {
        skills: Vec<String>,
    },
    /// A moderator's or admin's id, or null to unassign (applying it needs an admin).
    SetAssignee {
        #[schema(value_type = Option<String>)]
        assignee: Option<UserId>,
    },
    /// A public reply from a shared canned response, its placeholders filled for the ticket.
    Reply {
        canned_response_id: i64,
    },
    /// An internal note (only staff see it).
    Note {
        body: String,
    },
    AddTags {
        tags: Vec<String>,
    },
    RemoveTags {
        tags: Vec<String>,
    },
    /// Rules only: an e-mail from a template (placeholders as in canned responses) to `requester`, `assignee`
    /// or an address.
    SendEmail {
        to: String,
        subject: String,
        body: String,
    },
    /// Rules only: raises the priority one step (urgent stays urgent) and alerts the admins by e-mail.
    Escalate,
    /// Rules only: posts the ticket to a webhook (event `rule.fired`), whatever events it subscribed to.
    CallWebhook {
        webhook_id: i64,
    },
}

/// An action, parsed: what a macro (and later a rule) does to a ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    SetStatus { status: Status, resolution: Option<Resolution> },
    SetPriority(Priority),
    SetCategory(Option<CategoryName>),
    SetSkills(Skills),
    SetAssignee(Option<UserId>),
    Reply { canned_response_id: i64 },
    Note(CommentBody),
    AddTags(Tags),
    RemoveTags(Tags),
    SendEmail { to: Recipient, subject: ReplyTemplate, body: ReplyTemplate },
    Escalate,
    CallWebhook(i64),
}

/// Whom a rule's e-mail goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    Requester,
    Assignee,
    Address(crate::Email),
}

impl Recipient {
    fn parse(raw: &str) -> Result<Self, ParseError> {
        match raw.trim() {
            "requester" => Ok(Recipient::Requester),
            "assignee" => Ok(Recipient::Assignee),
            other => crate::Email::parse(other)
                .map(Recipient::Address)
                .map_err(|_| ParseError::new("to", "is requester, assignee or an e-mail address")),
        }
    }
}

impl Action {
    /// Whether only a rule may do this (a macro is applied by a person, who writes their own mail).
    pub fn rule_only(&self) -> bool {
        matches!(self, Action::SendEmail { .. } | Action::Escalate | Action::CallWebhook(_))
    }

    pub fn parse(spec: &ActionSpec) -> Result<Self, ParseError> {
        Ok(match spec {
            ActionSpec::SetStatus { status, resolution } => {
                let status: Status = status.parse()?;
                let resolution = resolution.as_deref().map(Resolution::parse).transpose()?;
                Action::SetStatus { status, resolution }
            }
            ActionSpec::SetPriority { priority } => Action::SetPriority(priority.parse()?),
            ActionSpec::SetCategory { category } => Action::SetCategory(
                category.as_deref().filter(|c| !c.trim().is_empty()).map(CategoryName::parse).transpose()?,
            ),
            ActionSpec::SetSkills { skills } => Action::SetSkills(Skills::parse(skills)?),
            ActionSpec::SetAssignee { assignee } => Action::SetAssignee(*assignee),
            ActionSpec::Reply { canned_response_id } => Action::Reply { canned_response_id: *canned_response_id },
            ActionSpec::Note { body } => Action::Note(CommentBody::parse(body)?),
            ActionSpec::AddTags { tags } => Action::AddTags(non_empty(Tags::parse(tags)?)?),
            ActionSpec::RemoveTags { tags } => Action::RemoveTags(non_empty(Tags::parse(tags)?)?),
            ActionSpec::SendEmail { to, subject, body } => Action::SendEmail {
                to: Recipient::parse(to)?,
                subject: subject_template(subject)?,
                body: ReplyTemplate::parse(body)?,
            },
            ActionSpec::Escalate => Action::Escalate,
            ActionSpec::CallWebhook { webhook_id } => Action::CallWebhook(*webhook_id),
        })
    }
}

/// An e-mail subject with placeholders: one line of 1 to 200 characters.
fn subject_template(raw: &str) -> Result<ReplyTemplate, ParseError> {
    bounded_line("subject", raw, 1, 200)?;
    ReplyTemplate::parse(raw).map_err(|e| ParseError::new("subject", e.message))
}

fn non_empty(tags: Tags) -> Result<Tags, ParseError> {
    if tags.is_empty() { Err(ParseError::new("tags", "name at least one tag")) } else { Ok(tags) }
}

/// A macro's actions: 1 to [`Actions::MAX`], each parsed; an error names the action by its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actions(Vec<Action>);

impl Actions {
    pub const MAX: usize = 20;

    /// A macro's actions: rule-only ones are refused.
    pub fn parse(specs: &[ActionSpec]) -> Result<Self, ParseError> {
        let actions = Self::parse_for_rule(specs)?;
        match actions.0.iter().position(Action::rule_only) {
            Some(i) => Err(ParseError::new(
                "actions",
                format!("action {}: only a rule sends mail, escalates or calls a webhook", i + 1),
            )),
            None => Ok(actions),
        }
    }

    /// A rule's actions: those of a macro, e-mails and escalation.
    pub fn parse_for_rule(specs: &[ActionSpec]) -> Result<Self, ParseError> {
        if specs.is_empty() || specs.len() > Self::MAX {
            return Err(ParseError::new("actions", format!("1 to {} actions", Self::MAX)));
        }
        let actions = specs
            .iter()
            .enumerate()
            .map(|(i, s)| Action::parse(s).map_err(|e| ParseError::new("actions", format!("action {}: {e}", i + 1))))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self(actions))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Action> {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn placeholders_fill_and_unknown_ones_are_refused() {
        let t = ReplyTemplate::parse("Hi {{requester.name}}, #{{ ticket.number }} is {{ticket.status}}.").unwrap();
        let filled = t.fill(|p| match p {
            Placeholder::RequesterName => "Ann".into(),
            Placeholder::TicketNumber => "7".into(),
            _ => "open".into(),
        });
        assert_eq!(filled, "Hi Ann, #7 is open.");
        let e = ReplyTemplate::parse("Hi {{ requester.nmae }}").unwrap_err();
        assert_eq!(e.field, "body");
        assert!(e.message.contains("requester.name"), "{e}");
        assert!(ReplyTemplate::parse("Hi {{ requester.name").is_err());
        assert_eq!(
            ReplyTemplate::parse("no placeholders } {").unwrap().fill(|_| unreachable!()),
            "no placeholders } {"
        );
    }

    #[test]
    fn names_come_from_addresses() {
        assert_eq!(name_from_email("ann.lee@example.com"), "Ann Lee");
        assert_eq!(name_from_email("BOB_smith+help@x.org"), "Bob Smith Help");
        assert_eq!(name_from_email("1234@x.org"), "1234");
    }

    #[test]
    fn retagging_adds_once_and_removes() {
        let add = Tags::parse(&["VIP", "refund"]).unwrap();
        let remove = Tags::parse(&["new"]).unwrap();
        assert_eq!(retag(&["new".into(), "vip".into()], &add, &remove), vec!["vip", "refund"]);
    }

    #[test]
    fn actions_are_parsed_and_errors_name_their_position() {
        let specs: Vec<ActionSpec> = serde_json::from_value(serde_json::json!([
            {"type": "set_priority", "priority": "high"},
            {"type": "add_tags", "tags": ["Billing"]},
            {"type": "set_status", "status": "solved"}
        ]))
        .unwrap();
        let e = Actions::parse(&specs).unwrap_err();
        assert_eq!(e.field, "actions");
        assert!(e.message.starts_with("action 3: status"), "{e}");
        assert!(Actions::parse(&specs[..2]).is_ok());
        assert!(Actions::parse(&[]).is_err());
    }

    proptest! {
        #[test]
        fn template_parse_never_panics_and_keeps_plain_text(t in "\\PC{0,200}") {
            if let Ok(tpl) = ReplyTemplate::parse(&t)
                && !t.contains("{{")
            {
                prop_assert_eq!(tpl.fill(|_| String::new()), t.trim());
            }
        }
    }
}
