//! Rules: when something happens to a ticket (or on a schedule), if its conditions hold, do its actions. The
//! conditions can test what the AI decided and how sure it was. Everything here is pure: parsing a rule as
//! written, and testing its conditions against a ticket's [`Facts`].

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::workflow::{ActionSpec, Actions, WorkflowName};
use crate::{ParseError, Ts, string_enum};

string_enum!(
    /// What a rule waits for.
    RuleEvent, "when.event" {
        TicketCreated => "ticket_created",
        TicketTriaged => "ticket_triaged",
        TicketUpdated => "ticket_updated",
        CommentAdded => "comment_added",
        Schedule => "schedule",
    }
);

string_enum!(
    /// Whether every condition must hold, or one is enough.
    MatchMode, "match" { All => "all", Any => "any" }
);

/// When a rule runs, as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WhenSpec {
    /// `ticket_created`, `ticket_triaged`, `ticket_updated`, `comment_added` or `schedule`.
    pub event: String,
    /// `ticket_updated`: only when one of these fields changed (any when empty), e.g. `["status", "priority"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
    /// `comment_added`: only for comments by the `requester` or by `staff`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// `comment_added`: only internal notes (`true`) or only public replies (`false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal: Option<bool>,
    /// `schedule`: every this many minutes (5 to 10,080), the open tickets matching the conditions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every_minutes: Option<u32>,
}

/// One condition as written: `{"field": "ai.category.confidence", "op": "gte", "value": 0.95}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConditionSpec {
    pub field: String,
    pub op: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub value: Value,
}

/// A rule as the API and storage write it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub name: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    pub when: WhenSpec,
    /// `all` (default) or `any`.
    #[serde(default = "all", rename = "match")]
    pub match_mode: String,
    #[serde(default)]
    pub conditions: Vec<ConditionSpec>,
    pub actions: Vec<ActionSpec>,
}

fn yes() -> bool {
    true
}

fn all() -> String {
    "all".into()
}

/// When a rule runs, parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum When {
    Created,
    Triaged,
    /// Changed fields (any when empty).
    Updated(Vec<String>),
    Commented {
        by: Option<CommentBy>,
        internal: Option<bool>,
    },
    Every {
        minutes: u32,
    },
}

string_enum!(
    /// Who wrote a comment, for `comment_added` rules.
    CommentBy, "when.by" { Requester => "requester", Staff => "staff" }
);

/// What happened to a ticket, as rules are told it (and as the `rules.run` job carries it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Happened {
    Created,
    Triaged,
    Updated {
        fields: Vec<String>,
    },
    Commented {
        by: CommentBy,
        internal: bool,
        /// The comment (absent in jobs queued before it was carried).
        #[serde(default)]
        comment_id: Option<i64>,
    },
    /// A scheduled rule's scan found the ticket.
    Scanned,
}

impl Happened {
    /// The event rules wait for when this happens.
    pub fn event(&self) -> RuleEvent {
        match self {
            Happened::Created => RuleEvent::TicketCreated,
            Happened::Triaged => RuleEvent::TicketTriaged,
            Happened::Updated { .. } => RuleEvent::TicketUpdated,
            Happened::Commented { .. } => RuleEvent::CommentAdded,
            Happened::Scanned => RuleEvent::Schedule,
        }
    }
}

/// The most rules that act one after another because of each other's changes: the chain is cut there (and
/// history says so), so two rules that undo each other stop.
pub const MAX_CHAIN: u32 = 5;

/// The `rules.run` job's payload: what happened to which ticket; `depth` counts the rules whose changes led
/// here (0: a person or the desk), `by_rule` the one whose change this is (it is not run again for it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RulesRun {
    pub ticket_id: crate::TicketId,
    pub happened: Happened,
    #[serde(default)]
    pub depth: u32,
    #[serde(default)]
    pub by_rule: Option<i64>,
}

impl When {
    /// Whether something that `happened` is what this rule waits for.
    pub fn fits(&self, happened: &Happened) -> bool {
        match (self, happened) {
            (When::Created, Happened::Created) | (When::Triaged, Happened::Triaged) => true,
            (When::Every { .. }, Happened::Scanned) => true,
            (When::Updated(want), Happened::Updated { fields: changed }) => {
                want.is_empty() || want.iter().any(|w| changed.contains(w))
            }
            (When::Commented { by, internal }, Happened::Commented { by: who, internal: note, .. }) => {
                by.is_none_or(|b| b == *who) && internal.is_none_or(|i| i == *note)
            }
            _ => false,
        }
    }
}

/// The ticket fields a `ticket_updated` rule may name.
pub const UPDATABLE_FIELDS: &[&str] =
    &["status", "priority", "category", "skills", "assignee", "resolution", "deadline", "tags"];

impl When {
    fn parse(spec: &WhenSpec) -> Result<Self, ParseError> {
        let event: RuleEvent = spec.event.parse()?;
        let misplaced = |what: &str| ParseError::new("when", format!("{what} does not apply to {}", event.as_str()));
        if !spec.fields.is_empty() && event != RuleEvent::TicketUpdated {
            return Err(misplaced("fields"));
        }
        if (spec.by.is_some() || spec.internal.is_some()) && event != RuleEvent::CommentAdded {
            return Err(misplaced("by and internal"));
        }
        if spec.every_minutes.is_some() && event != RuleEvent::Schedule {
            return Err(misplaced("every_minutes"));
        }
        Ok(match event {
            RuleEvent::TicketCreated => When::Created,
            RuleEvent::TicketTriaged => When::Triaged,
            RuleEvent::TicketUpdated => {
                if let Some(f) = spec.fields.iter().find(|f| !UPDATABLE_FIELDS.contains(&f.as_str())) {
                    return Err(ParseError::new(
                        "when",
                        format!("unknown field {f:?}: use one of {}", UPDATABLE_FIELDS.join(", ")),
                    ));
                }
                When::Updated(spec.fields.clone())
            }
            RuleEvent::CommentAdded => {
                When::Commented { by: spec.by.as_deref().map(str::parse).transpose()?, internal: spec.internal }
            }
            RuleEvent::Schedule => match spec.every_minutes {
                Some(m @ 5..=10_080) => When::Every { minutes: m },
                _ => return Err(ParseError::new("when", "a schedule runs every 5 to 10,080 minutes (every_minutes)")),
            },
        })
    }
}

/// What a ticket is, as conditions read it; `None` where it has no value (not triaged yet, no deadline, …).
#[derive(Debug, Clone)]
pub struct Facts {
    pub status: String,
    pub priority: String,
    pub category: Option<String>,
    pub skills: Vec<String>,
    pub tags: Vec<String>,
    pub assigned: bool,
    pub requester_email: String,
    pub title: String,
    pub description: String,
    pub language: Option<String>,
    pub ai_category: Option<(String, f32)>,
    pub ai_priority: Option<(String, f32)>,
    pub ai_skills: Vec<(String, f32)>,
    pub deadline: Option<Ts>,
    pub created_at: Ts,
    pub updated_at: Ts,
    pub last_customer_reply: Option<Ts>,
    pub now: Ts,
}

impl Facts {
    fn hours_since(&self, t: Ts) -> f64 {
        (self.now.0 - t.0).num_seconds() as f64 / 3600.0
    }

    fn text(&self, f: TextField) -> Option<String> {
        match f {
            TextField::Status => Some(self.status.clone()),
            TextField::Priority => Some(self.priority.clone()),
            TextField::Category => self.category.clone(),
            TextField::RequesterEmail => Some(self.requester_email.clone()),
            TextField::RequesterDomain => self.requester_email.rsplit_once('@').map(|(_, d)| d.to_owned()),
            TextField::Language => self.language.clone(),
            TextField::AiCategory => self.ai_category.as_ref().map(|(v, _)| v.clone()),
            TextField::AiPriority => self.ai_priority.as_ref().map(|(v, _)| v.clone()),
        }
    }

    fn list(&self, f: ListField) -> Vec<String> {
        match f {
            ListField::Skills => self.skills.clone(),
            ListField::Tags => self.tags.clone(),
            ListField::AiSkills => self.ai_skills.iter().map(|(s, _)| s.clone()).collect(),
        }
    }

    fn words(&self, f: WordsField) -> String {
        match f {
            WordsField::Title => self.title.clone(),
            WordsField::Description => self.description.clone(),
            WordsField::Text => format!("{}\n{}", self.title, self.description),
        }
    }

    fn number(&self, f: NumberField) -> Option<f64> {
        match f {
            NumberField::AiCategoryConfidence => self.ai_category.as_ref().map(|(_, c)| f64::from(*c)),
            NumberField::AiPriorityConfidence => self.ai_priority.as_ref().map(|(_, c)| f64::from(*c)),
            NumberField::AiSkillsConfidence => self.ai_skills.iter().map(|(_, c)| f64::from(*c)).reduce(f64::min),
            NumberField::HoursSinceCreated => Some(self.hours_since(self.created_at)),
            NumberField::HoursSinceUpdated => Some(self.hours_since(self.updated_at)),
            NumberField::HoursSinceCustomerReply => self.last_customer_reply.map(|t| self.hours_since(t)),
            NumberField::SlaHoursLeft => self.deadline.map(|d| -self.hours_since(d)),
        }
    }

    fn flag(&self, f: FlagField) -> bool {
        match f {
            FlagField::SlaBreached => {
                self.deadline.is_some_and(|d| d < self.now) && matches!(self.status.as_str(), "open" | "in_progress")
            }
            FlagField::Assigned => self.assigned,
        }
    }
}

macro_rules! fields {
    ($kind:ident { $($variant:ident => $name:literal),+ $(,)? }) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        enum $kind { $($variant),+ }

        impl $kind {
            const NAMES: &'static [&'static str] = &[$($name),+];

            fn parse(raw: &str) -> Option<Self> {
                match raw { $($name => Some($kind::$variant),)+ _ => None }
            }
        }
    };
}

fields!(TextField {
    Status => "status", Priority => "priority", Category => "category", RequesterEmail => "requester.email",
    RequesterDomain => "requester.domain", Language => "language", AiCategory => "ai.category",
    AiPriority => "ai.priority",
});
fields!(ListField { Skills => "skills", Tags => "tags", AiSkills => "ai.skills" });
fields!(WordsField { Title => "title", Description => "description", Text => "text" });
fields!(NumberField {
    AiCategoryConfidence => "ai.category.confidence", AiPriorityConfidence => "ai.priority.confidence",
    AiSkillsConfidence => "ai.skills.confidence", HoursSinceCreated => "hours_since_created",
    HoursSinceUpdated => "hours_since_updated", HoursSinceCustomerReply => "hours_since_customer_reply",
    SlaHoursLeft => "sla.hours_left",
});
fields!(FlagField { SlaBreached => "sla.breached", Assigned => "assigned" });

#[derive(Debug, Clone, Copy, PartialEq)]
enum Compare {
    Gt,
    Gte,
    Lt,
    Lte,
}

/// One condition, parsed: its field, its test and the value it compares with (lower-cased where text).
#[derive(Debug, Clone)]
enum Condition {
    /// `is`/`in` (`negated`: `is_not`/`not_in`) one of `values`; `is_set`/`not_set` with no values.
    Text {
        field: TextField,
        values: Vec<String>,
        negated: bool,
        presence: bool,
    },
    /// `includes` (any of `values`), `excludes` (none of them); `is_empty`/`not_empty` with no values.
    List {
        field: ListField,
        values: Vec<String>,
        negated: bool,
    },
    /// `contains` (`negated`: `not_contains`) a word or phrase, or `matches` a regular expression.
    Words {
        field: WordsField,
        test: WordTest,
        negated: bool,
    },
    Number {
        field: NumberField,
        compare: Compare,
        value: f64,
    },
    Flag {
        field: FlagField,
        value: bool,
    },
}

#[derive(Debug, Clone)]
enum WordTest {
    Contains(String),
    Matches(regex::Regex),
}

fn bad(message: impl Into<std::borrow::Cow<'static, str>>) -> ParseError {
    ParseError::new("conditions", message)
}

/// `value` as a list of lower-cased strings (one string is a list of one).
fn strings(value: &Value) -> Result<Vec<String>, ParseError> {
    let one = |v: &Value| v.as_str().map(|s| s.trim().to_lowercase()).ok_or_else(|| bad("expects text values"));
    match value {
        Value::Array(items) if !items.is_empty() && items.len() <= 50 => items.iter().map(one).collect(),
        Value::String(_) => Ok(vec![one(value)?]),
        _ => Err(bad("expects a value or a list of 1 to 50 values")),
    }
}

impl Condition {
    fn parse(spec: &ConditionSpec) -> Result<Self, ParseError> {
        let (field, op, v) = (spec.field.as_str(), spec.op.as_str(), &spec.value);
        let wrong_op = |ops: &str| bad(format!("{field} takes {ops}, not {op:?}"));
        if let Some(field) = TextField::parse(field) {
            return match op {
                "is" | "in" | "is_not" | "not_in" => {
                    Ok(Condition::Text { field, values: strings(v)?, negated: op.contains("not"), presence: false })
                }
                "is_set" | "not_set" => {
                    Ok(Condition::Text { field, values: Vec::new(), negated: op == "not_set", presence: true })
                }
                _ => Err(wrong_op("is, is_not, in, not_in, is_set, not_set")),
            };
        }
        if let Some(field) = ListField::parse(field) {
            return match op {
                "includes" | "excludes" => {
                    Ok(Condition::List { field, values: strings(v)?, negated: op == "excludes" })
                }
                "is_empty" | "not_empty" => {
                    Ok(Condition::List { field, values: Vec::new(), negated: op == "not_empty" })
                }
                _ => Err(wrong_op("includes, excludes, is_empty, not_empty")),
            };
        }
        if let Some(field) = WordsField::parse(field) {
            let text = v.as_str().filter(|s| !s.trim().is_empty() && s.chars().count() <= 200);
            let text = text.ok_or_else(|| bad(format!("{field:?} {op} needs a text of 1 to 200 characters")))?;
            let test = match op {
                "contains" | "not_contains" => WordTest::Contains(text.trim().to_lowercase()),
                "matches" => WordTest::Matches(
                    regex::RegexBuilder::new(text)
                        .case_insensitive(true)
                        .size_limit(1 << 20)
                        .build()
                        .map_err(|e| bad(format!("not a regular expression: {e}")))?,
                ),
                _ => return Err(wrong_op("contains, not_contains, matches")),
            };
            return Ok(Condition::Words { field, test, negated: op == "not_contains" });
        }
        if let Some(field) = NumberField::parse(field) {
            let compare = match op {
                "gt" => Compare::Gt,
                "gte" => Compare::Gte,
                "lt" => Compare::Lt,
                "lte" => Compare::Lte,
                _ => return Err(wrong_op("gt, gte, lt, lte")),
            };
            let value =
                v.as_f64().filter(|n| n.is_finite()).ok_or_else(|| bad(format!("{field:?} compares with a number")))?;
            return Ok(Condition::Number { field, compare, value });
        }
        if let Some(field) = FlagField::parse(field) {
            let value = match (op, v) {
                ("is", Value::Bool(b)) => *b,
                _ => return Err(bad(format!("{} is tested with \"op\": \"is\" and true or false", spec.field))),
            };
            return Ok(Condition::Flag { field, value });
        }
        let known: Vec<&str> =
            [TextField::NAMES, ListField::NAMES, WordsField::NAMES, NumberField::NAMES, FlagField::NAMES].concat();
        Err(bad(format!("unknown field {field:?}: use one of {}", known.join(", "))))
    }

    fn holds(&self, facts: &Facts) -> bool {
        match self {
            Condition::Text { field, values, negated, presence } => {
                let value = facts.text(*field).map(|v| v.to_lowercase());
                let hit = if *presence { value.is_some() } else { value.is_some_and(|v| values.contains(&v)) };
                hit != *negated
            }
            Condition::List { field, values, negated } => {
                let have = facts.list(*field);
                let hit = if values.is_empty() {
                    have.is_empty()
                } else {
                    values.iter().any(|v| have.iter().any(|h| h.eq_ignore_ascii_case(v)))
                };
                hit != *negated
            }
            Condition::Words { field, test, negated } => {
                let text = facts.words(*field);
                let hit = match test {
                    WordTest::Contains(needle) => text.to_lowercase().contains(needle.as_str()),
                    WordTest::Matches(re) => re.is_match(&text),
                };
                hit != *negated
            }
            Condition::Number { field, compare, value } => facts.number(*field).is_some_and(|n| match compare {
                Compare::Gt => n > *value,
                Compare::Gte => n >= *value,
                Compare::Lt => n < *value,
                Compare::Lte => n <= *value,
            }),
            Condition::Flag { field, value } => facts.flag(*field) == *value,
        }
    }
}

/// See [`Rule::scan_hints`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScanHints {
    pub statuses: Option<Vec<String>>,
    pub hours_since_updated: Option<f64>,
    pub hours_since_created: Option<f64>,
}

/// What rules read beyond the ticket's own row (each costs the service a query to find out).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reads {
    /// `language`.
    pub language: bool,
    /// `hours_since_customer_reply`.
    pub customer_reply: bool,
}

impl std::ops::BitOr for Reads {
    type Output = Reads;
    fn bitor(self, o: Reads) -> Reads {
        Reads { language: self.language || o.language, customer_reply: self.customer_reply || o.customer_reply }
    }
}

/// The value, or `None` with its error kept in `errors`.
fn keep<T>(errors: &mut Vec<ParseError>, r: Result<T, ParseError>) -> Option<T> {
    r.map_err(|e| errors.push(e)).ok()
}

/// A rule, parsed: what it waits for, its conditions, its actions.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: WorkflowName,
    pub enabled: bool,
    pub when: When,
    match_mode: MatchMode,
    conditions: Vec<Condition>,
    pub actions: Actions,
}

impl Rule {
    pub const MAX_CONDITIONS: usize = 20;

    pub fn parse(spec: &RuleSpec) -> Result<Self, Vec<ParseError>> {
        let mut errors = Vec::new();
        let name = keep(&mut errors, WorkflowName::parse(&spec.name));
        let when = keep(&mut errors, When::parse(&spec.when));
        let match_mode = keep(&mut errors, spec.match_mode.parse::<MatchMode>());
        let conditions = keep(&mut errors, Self::conditions(&spec.conditions));
        let actions = keep(&mut errors, Actions::parse_for_rule(&spec.actions));
        if let Some(When::Every { .. }) = &when
            && conditions.as_ref().is_some_and(Vec::is_empty)
        {
            errors.push(bad("a scheduled rule needs at least one condition (it would act on every open ticket)"));
        }
        match (name, when, match_mode, conditions, actions) {
            (Some(name), Some(when), Some(match_mode), Some(conditions), Some(actions)) if errors.is_empty() => {
                Ok(Rule { name, enabled: spec.enabled, when, match_mode, conditions, actions })
            }
            _ => Err(errors),
        }
    }

    fn conditions(specs: &[ConditionSpec]) -> Result<Vec<Condition>, ParseError> {
        if specs.len() > Self::MAX_CONDITIONS {
            return Err(bad(format!("at most {} conditions", Self::MAX_CONDITIONS)));
        }
        specs
            .iter()
            .enumerate()
            .map(|(i, c)| Condition::parse(c).map_err(|e| bad(format!("condition {}: {}", i + 1, e.message))))
            .collect()
    }

    /// What the rule's conditions read beyond the ticket's row: facts left unread stay `None`, which no
    /// condition of this rule tests.
    pub fn reads(&self) -> Reads {
        let mut reads = Reads::default();
        for c in &self.conditions {
            match c {
                Condition::Text { field: TextField::Language, .. } => reads.language = true,
                Condition::Number { field: NumberField::HoursSinceCustomerReply, .. } => reads.customer_reply = true,
                _ => {}
            }
        }
        reads
    }

    /// What a scan for this rule may narrow the tickets by, read from conditions that must all hold: the
    /// statuses it names (`status is/in`), and the least hours since the last change and since filing
    /// (`hours_since_updated`/`hours_since_created` `gt`/`gte`).
    pub fn scan_hints(&self) -> ScanHints {
        let mut hints = ScanHints::default();
        if self.match_mode != MatchMode::All {
            return hints;
        }
        for c in &self.conditions {
            match c {
                Condition::Text { field: TextField::Status, values, negated: false, presence: false } => {
                    hints.statuses = Some(values.clone());
                }
                Condition::Number { field, compare: Compare::Gt | Compare::Gte, value } => match field {
                    NumberField::HoursSinceUpdated => hints.hours_since_updated = Some(*value),
                    NumberField::HoursSinceCreated => hints.hours_since_created = Some(*value),
                    _ => {}
                },
                _ => {}
            }
        }
        hints
    }

    /// Whether the ticket described by `facts` meets the conditions (no conditions: every ticket).
    pub fn matches(&self, facts: &Facts) -> bool {
        match self.match_mode {
            MatchMode::All => self.conditions.iter().all(|c| c.holds(facts)),
            MatchMode::Any => self.conditions.is_empty() || self.conditions.iter().any(|c| c.holds(facts)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(v: Value) -> Rule {
        Rule::parse(&serde_json::from_value(v).unwrap()).unwrap()
    }

    fn facts() -> Facts {
        let now = Ts::now();
        Facts {
            status: "open".into(),
            priority: "medium".into(),
            requester_email: "ann@example.com".into(),
            title: "Password reset".into(),
            description: "I forgot my password".into(),
            ai_category: Some(("account & access".into(), 0.97)),
            category: None,
            skills: Vec::new(),
            tags: Vec::new(),
            assigned: false,
            language: None,
            ai_priority: None,
            ai_skills: Vec::new(),
            deadline: None,
            last_customer_reply: None,
            created_at: now,
            updated_at: now,
            now,
        }
    }

    #[test]
    fn confidence_conditions_fire_only_when_the_ai_is_sure() {
        let r = rule(json!({
            "name": "Auto-close resets",
            "when": { "event": "ticket_triaged" },
            "conditions": [
                { "field": "ai.category", "op": "is", "value": "Account & Access" },
                { "field": "ai.category.confidence", "op": "gte", "value": 0.95 },
                { "field": "text", "op": "matches", "value": "pass(word)?\\s*reset|forgot" }
            ],
            "actions": [{ "type": "add_tags", "tags": ["auto"] }]
        }));
        let mut f = facts();
        assert!(r.matches(&f));
        f.ai_category = Some(("account & access".into(), 0.6));
        assert!(!r.matches(&f), "unsure");
        f.ai_category = None;
        assert!(!r.matches(&f), "not triaged: no confidence to compare");
    }

    #[test]
    fn a_rule_says_which_facts_beyond_the_ticket_it_reads() {
        let with = |conditions: Value| {
            rule(json!({ "name": "R", "when": { "event": "ticket_updated" }, "conditions": conditions,
                "actions": [{ "type": "add_tags", "tags": ["x"] }] }))
            .reads()
        };
        assert_eq!(with(json!([{ "field": "priority", "op": "is", "value": "high" }])), Reads::default());
        let language = with(json!([{ "field": "language", "op": "is", "value": "de" }]));
        assert_eq!(language, Reads { language: true, customer_reply: false });
        let reply = with(json!([{ "field": "hours_since_customer_reply", "op": "gt", "value": 24 }]));
        assert_eq!(reply, Reads { language: false, customer_reply: true });
        assert_eq!(language | reply, Reads { language: true, customer_reply: true });
    }

    #[test]
    fn hours_and_sla_are_read_against_now() {
        let r = rule(json!({
            "name": "Chase", "when": { "event": "schedule", "every_minutes": 60 },
            "conditions": [
                { "field": "status", "op": "is", "value": "in_progress" },
                { "field": "hours_since_updated", "op": "gt", "value": 72 }
            ],
            "actions": [{ "type": "add_tags", "tags": ["stale"] }]
        }));
        let mut f = facts();
        f.status = "in_progress".into();
        assert!(!r.matches(&f));
        f.now = Ts(f.updated_at.0 + chrono::Duration::hours(73));
        assert!(r.matches(&f));
        f.deadline = Some(f.created_at);
        let breached = rule(json!({ "name": "B", "when": { "event": "ticket_updated" },
            "conditions": [{ "field": "sla.breached", "op": "is", "value": true }], "actions": [{ "type": "note", "body": "late" }] }));
        assert!(breached.matches(&f));
    }

    #[test]
    fn invalid_rules_say_what_is_wrong() {
        let errors = |v: Value| Rule::parse(&serde_json::from_value(v).unwrap()).unwrap_err();
        let e = errors(json!({ "name": "", "when": { "event": "someday" },
            "conditions": [{ "field": "ai.mood", "op": "is", "value": "x" }], "actions": [] }));
        let fields: Vec<&str> = e.iter().map(|e| e.field).collect();
        assert_eq!(fields, ["name", "when.event", "conditions", "actions"], "{e:?}");
        let e = errors(
            json!({ "name": "S", "when": { "event": "schedule", "every_minutes": 60 }, "actions": [{ "type": "note", "body": "x" }] }),
        );
        assert!(e[0].message.contains("at least one condition"));
        let e = errors(json!({ "name": "R", "when": { "event": "ticket_created" },
            "conditions": [{ "field": "title", "op": "matches", "value": "(" }], "actions": [{ "type": "note", "body": "x" }] }));
        assert!(e[0].message.starts_with("condition 1: not a regular expression"), "{e:?}");
    }

    #[test]
    fn events_fit_what_rules_wait_for() {
        let updated = When::Updated(vec!["status".into()]);
        assert!(updated.fits(&Happened::Updated { fields: vec!["priority".into(), "status".into()] }));
        assert!(!updated.fits(&Happened::Updated { fields: vec!["tags".into()] }));
        let replies = When::Commented { by: Some(CommentBy::Requester), internal: Some(false) };
        assert!(replies.fits(&Happened::Commented { by: CommentBy::Requester, internal: false, comment_id: None }));
        assert!(!replies.fits(&Happened::Commented { by: CommentBy::Staff, internal: false, comment_id: None }));
        assert!(!When::Created.fits(&Happened::Triaged));
    }
}
