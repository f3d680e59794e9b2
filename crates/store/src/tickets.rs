//! Tickets, their conversation and their history.

use serde_json::{Value, json};
use smart_ticket_domain::rules::{CommentBy, Happened, RulesRun};
use smart_ticket_domain::workflow::{Tags, retag};
use smart_ticket_domain::{
    CommentBody, JobKind, ParseError, Priority, Resolution, Role, Skills, Status, TicketDescription, TicketTitle,
};
use sqlx::QueryBuilder;
use sqlx::types::Json;

use super::attachments::{AttachTo, NewAttachment, insert_attachments};
use super::jobs::enqueue;
use super::mail::MailOrigin;
use super::{Db, NewJob, StoreError, StoreResult, on_pool};
use crate::model::{Actor, Comment, Ticket, TicketEvent, TicketId, Ts, User, UserId};

/// A `SELECT` of tickets' columns (then the `extra` ones given) from `tickets t`, with their people joined.
macro_rules! ticket_select {
    ($($extra:literal)?) => {
        concat!(
            "SELECT t.id, t.number, t.title, t.description, t.status, t.priority, t.category, \
             t.skills, t.helpful_notes, t.created_by, t.assigned_to, t.deadline, t.resolution, t.created_at, \
             t.updated_at, t.resolved_at, t.ai_triage, t.triaged_at, t.routing_reason, t.duplicate_of, \
             t.duplicate_score, t.merged_into, t.tags, c.email AS requester_email, a.email AS assignee_email",
            $(", ", $extra,)?
            " FROM tickets t JOIN users c ON c.id = t.created_by LEFT JOIN users a ON a.id = t.assigned_to"
        )
    };
}
pub(crate) const TICKET_SELECT: &str = ticket_select!();

/// Appends one history row through the executor `$ex`; `$via` names the macro or rule that made it.
macro_rules! record_event {
    ($ex:expr, $ticket:expr, $actor:expr, $field:expr, $old:expr, $new:expr, $now:expr) => {
        record_event!($ex, $ticket, $actor, $field, $old, $new, $now, None::<&serde_json::Value>)
    };
    ($ex:expr, $ticket:expr, $actor:expr, $field:expr, $old:expr, $new:expr, $now:expr, $via:expr) => {{
        let actor: Actor = $actor;
        let old: Option<serde_json::Value> = $old;
        let new: Option<serde_json::Value> = $new;
        let via: Option<&serde_json::Value> = $via;
        sqlx::query(
            "INSERT INTO ticket_events (ticket_id, actor_kind, actor_id, field, old_value, new_value, created_at, via) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind($ticket)
        .bind(actor.kind())
        .bind(actor.user_id())
        .bind($field)
        .bind(old.map(sqlx::types::Json))
        .bind(new.map(sqlx::types::Json))
        .bind($now)
        .bind(via.map(sqlx::types::Json))
        .execute($ex)
        .await
    }};
}
pub(crate) use record_event;

/// Adds a comment through the transaction `$tx` and, for a public one, the job that notifies the other side;
/// evaluates to the comment's id as a [`StoreResult`] (its `?`s stay inside: the caller handles the result).
macro_rules! insert_comment {
    ($tx:expr, $ticket:expr, $author:expr, $body:expr, $internal:expr, $now:expr) => {
        super::scoped(async {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO comments (ticket_id, author_id, body, internal, created_at) \
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
            )
            .bind($ticket)
            .bind($author)
            .bind($body)
            .bind($internal)
            .bind($now)
            .fetch_one(&mut *$tx)
            .await?;
            if !$internal {
                let job = NewJob {
                    kind: JobKind::CommentCreated,
                    payload: json!({ "ticket_id": $ticket, "comment_id": id }),
                    idempotency_key: id.to_string(),
                };
                enqueue!(&mut *$tx, &job, $now)?;
            }
            Ok(id)
        })
        .await
    };
}

/// Records, through the transaction `$tx`, that comment `$comment` was written from canned response `$canned`.
macro_rules! insert_canned_use {
    ($tx:expr, $canned:expr, $ticket:expr, $comment:expr, $user:expr, $now:expr) => {
        sqlx::query(
            "INSERT INTO canned_uses (canned_id, ticket_id, comment_id, user_id, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind($canned)
        .bind($ticket)
        .bind($comment)
        .bind($user)
        .bind($now)
        .execute(&mut *$tx)
        .await
    };
}

/// Writes `$ticket`'s workable fields (as changed in memory, `updated_at` included) through the transaction
/// `$tx`; `$labelled`: its labels now stand as confirmed by a person.
macro_rules! write_ticket {
    ($tx:expr, $ticket:expr, $labelled:expr) => {{
        let t: &Ticket = $ticket;
        sqlx::query(
            "UPDATE tickets SET status = $2, priority = $3, category = $4, skills = $5, assigned_to = $6, \
             resolution = $7, deadline = $8, helpful_notes = $9, resolved_at = $10, updated_at = $11, \
             labelled_at = CASE WHEN $12 THEN $11 ELSE labelled_at END, tags = $13 WHERE id = $1",
        )
        .bind(t.id)
        .bind(t.status.as_str())
        .bind(t.priority.as_str())
        .bind(t.category.as_deref())
        .bind(Json(&t.skills))
        .bind(t.assigned_to)
        .bind(t.resolution.as_deref())
        .bind(t.deadline)
        .bind(t.helpful_notes.as_deref())
        .bind(t.resolved_at)
        .bind(t.updated_at)
        .bind($labelled)
        .bind(Json(&t.tags))
        .execute(&mut *$tx)
        .await
    }};
}

/// Records, through the transaction `$tx`, that the rule of firing `$f` acted on ticket `$ticket` (seen at
/// `$version`); [`StoreError::Repeated`] when it had for this event already.
macro_rules! record_firing {
    ($tx:expr, $f:expr, $ticket:expr, $version:expr, $now:expr) => {
        super::scoped(async {
            let f: &Firing = $f;
            let fired = sqlx::query(
                "INSERT INTO rule_firings (rule_id, ticket_id, event_key, version, fired_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            )
            .bind(f.rule_id)
            .bind($ticket)
            .bind(&f.event_key)
            .bind($version)
            .bind($now)
            .execute(&mut *$tx)
            .await?;
            if fired.rows_affected() == 0 { Err(StoreError::Repeated) } else { Ok(()) }
        })
        .await
    };
}

/// Writes `$work`'s replies and notes by `$author` through the transaction `$tx`, each counted as a use of
/// its canned response and told to the rules (continuing `$cause`).
macro_rules! insert_work_comments {
    ($tx:expr, $work:expr, $ticket:expr, $author:expr, $cause:expr, $now:expr) => {
        super::scoped(async {
            let work: &TicketWork = $work;
            for c in &work.comments {
                let comment = insert_comment!($tx, $ticket, $author, c.body.as_str(), c.internal, $now)?;
                if let Some(canned) = c.canned_id {
                    insert_canned_use!($tx, canned, $ticket, comment, $author, $now)?;
                }
                let happened =
                    Happened::Commented { by: CommentBy::Staff, internal: c.internal, comment_id: Some(comment) };
                enqueue!(&mut *$tx, &rules_job($ticket, happened, $cause, format!("comment:{comment}")), $now)?;
            }
            Ok(())
        })
        .await
    };
}

/// Marks the received message `$mail` (a `&MailOrigin`) ingested into ticket `$ticket` and threads its
/// Message-ID to it, through the transaction `$tx`; evaluates to a [`StoreResult`] (its `?`s stay inside).
macro_rules! settle_mail {
    ($tx:expr, $mail:expr, $ticket:expr, $now:expr) => {
        super::scoped(async {
            let mail: &MailOrigin = $mail;
            sqlx::query(
                "UPDATE inbound_messages SET state = 'ingested', ticket_id = $2, updated_at = $3 WHERE id = $1",
            )
            .bind(mail.inbound)
            .bind($ticket)
            .bind($now)
            .execute(&mut *$tx)
            .await?;
            if let Some(message_id) = &mail.message_id {
                sqlx::query(
                    "INSERT INTO mail_threads (message_id, ticket_id, created_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (message_id) DO NOTHING",
                )
                .bind(message_id.as_str())
                .bind($ticket)
                .bind($now)
                .execute(&mut *$tx)
                .await?;
            }
            Ok(())
        })
        .await
    };
}

/// The survivor's internal note about a merged ticket: who merged it, then its requester's words quoted line by
/// line, so what the customer wrote never reads as the moderator's own.
fn merge_note(source: &Ticket, by: &User) -> String {
    let quoted: String =
        format!("{}\n\n{}", source.title, source.description).lines().map(|l| format!("> {l}\n")).collect();
    format!(
        "#{} was merged into this ticket by {}. Its requester {} wrote:\n\n{}",
        source.number, by.email, source.requester_email, quoted
    )
    .chars()
    .take(CommentBody::MAX)
    .collect()
}

/// One term of a search text, read as PostgreSQL's `websearch_to_tsquery` reads it.
struct SearchTerm {
    /// Lower-cased runs of letters and digits (as the tokenizer splits them): one word, or a quoted phrase.
    words: Vec<String>,
    /// `-word`: tickets without it.
    negated: bool,
    /// `or` stood before it: either this term or the one before.
    or: bool,
}

/// The terms of search text `q` that have words: `"quoted words"` a phrase, `or` between two terms for either,
/// `-word` (unquoted) to exclude.
fn search_terms(q: &str) -> Vec<SearchTerm> {
    let mut terms = Vec::new();
    let mut or_next = false;
    let mut rest = q.trim();
    while !rest.is_empty() {
        let (raw, quoted, after) = if let Some(r) = rest.strip_prefix('"') {
            let end = r.find('"').unwrap_or(r.len());
            (&r[..end], true, r.get(end + 1..).unwrap_or(""))
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            (&rest[..end], false, &rest[end..])
        };
        rest = after.trim_start();
        if !quoted && raw.eq_ignore_ascii_case("or") {
            or_next = !terms.is_empty();
            continue;
        }
        let (negated, text) = match raw.strip_prefix('-') {
            Some(t) if !quoted => (true, t),
            _ => (false, raw),
        };
        let words: Vec<String> =
            text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect();
        if words.is_empty() {
            continue;
        }
        terms.push(SearchTerm { words, negated, or: or_next });
        or_next = false;
    }
    terms
}

/// Whether search text `q` excludes a word (`-word`): meaning cannot honour that, so such a search is answered
/// by words alone.
pub fn search_excludes(q: &str) -> bool {
    search_terms(q).iter().any(|t| t.negated)
}

/// `q` as an FTS5 query meaning what PostgreSQL's `websearch_to_tsquery` makes of it: every word must appear,
/// `"quoted words"` as a phrase, `or` between two terms for either, `-word` to exclude (see [`search_terms`]).
/// Each phrase is quoted, so no input can inject query syntax. `None` when nothing searchable is left (an
/// exclusion needs something to exclude from).
pub fn fts5_query(q: &str) -> Option<String> {
    let mut out = String::new();
    for term in search_terms(q) {
        if term.negated && out.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push_str(if term.negated {
                " NOT "
            } else if term.or {
                " OR "
            } else {
                " AND "
            });
        }
        out.push('"');
        out.push_str(&term.words.join(" "));
        out.push('"');
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::{fts5_query, search_excludes};

    #[test]
    fn search_text_reads_like_websearch_and_cannot_inject_syntax() {
        assert_eq!(fts5_query("VPN drops"), Some(r#""vpn" AND "drops""#.into()));
        assert_eq!(
            fts5_query(r#""error 502" or timeout -printer"#),
            Some(r#""error 502" OR "timeout" NOT "printer""#.into())
        );
        assert_eq!(fts5_query("e-mail NEAR(x) \"unclosed"), Some(r#""e mail" AND "near x" AND "unclosed""#.into()));
        assert_eq!(fts5_query("Zürich Ölpreis"), Some(r#""zürich" AND "ölpreis""#.into()));
        assert_eq!(fts5_query("-only -negatives"), None);
        assert_eq!(fts5_query(" *** () or "), None);
        assert_eq!(fts5_query("-a or b"), Some(r#""b""#.into()));
    }

    #[test]
    fn a_search_excludes_only_with_an_unquoted_minus_word() {
        assert!(search_excludes("vpn -printer"));
        assert!(search_excludes("-printer"));
        assert!(!search_excludes("e-mail is down"), "a hyphen inside a word");
        assert!(!search_excludes(r#""-printer" - -- -!!"#), "quoted, or no word after the minus");
    }
}

/// A ticket with what hybrid reordering of suggestions reads beside it.
#[derive(Debug, sqlx::FromRow)]
pub struct RerankRow {
    #[sqlx(flatten)]
    pub ticket: Ticket,
    /// Its English embedding as stored (little-endian f32s).
    pub embedding: Option<Vec<u8>>,
    /// Its language as stored (ISO 639-1), when known.
    pub language: Option<String>,
}

/// A ticket as the in-memory vector index reads it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct IndexRow {
    pub number: i64,
    pub created_by: UserId,
    pub assigned_to: Option<UserId>,
    pub status: String,
    pub priority: String,
    pub merged_into: Option<i64>,
    pub has_resolution: bool,
    pub embedding: Option<Vec<u8>>,
    pub search_vector: Option<Vec<u8>>,
    pub language: Option<String>,
    pub updated_at: Ts,
}

/// Whose tickets a listing may show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssigneeFilter {
    Me,
    Nobody,
    User(UserId),
}

/// Filters of `GET /api/tickets`, parsed.
#[derive(Debug, Clone, Default)]
pub struct TicketFilter {
    pub status: Option<Status>,
    pub priority: Option<Priority>,
    pub assignee: Option<AssigneeFilter>,
    pub q: Option<String>,
    /// Only tickets numbered below this (the cursor).
    pub before: Option<i64>,
    /// Only open and in-progress tickets.
    pub open_only: bool,
    /// Soonest SLA deadline first (tickets without one last), instead of newest first.
    pub by_deadline: bool,
}

/// A change to a ticket; `None` leaves a field as it is, `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct TicketPatch {
    pub status: Option<Status>,
    pub priority: Option<Priority>,
    pub category: Option<Option<String>>,
    pub skills: Option<Skills>,
    pub assigned_to: Option<Option<UserId>>,
    pub resolution: Option<Resolution>,
    pub deadline: Option<Option<Ts>>,
    pub helpful_notes: Option<Option<String>>,
}

/// A reply or internal note a piece of work adds, and the canned response it was written from.
#[derive(Debug, Clone)]
pub struct WorkComment {
    pub body: CommentBody,
    pub internal: bool,
    pub canned_id: Option<i64>,
}

/// Work applied to a ticket at once, in one transaction: field changes, tags, then replies and notes (written by
/// the acting person). `via` names the macro or rule doing it, in every history row it leaves.
#[derive(Debug, Clone, Default)]
pub struct TicketWork {
    pub patch: TicketPatch,
    pub add_tags: Tags,
    pub remove_tags: Tags,
    pub comments: Vec<WorkComment>,
    pub via: Option<Via>,
    /// Who writes the replies and notes when the actor is not a person (a rule): else the actor.
    pub author: Option<UserId>,
    /// Jobs (e-mails) committed with the work.
    pub jobs: Vec<NewJob>,
    /// For a rule: the event it acts on, recorded once ([`StoreError::Repeated`] the second time).
    pub firing: Option<Firing>,
    /// The chain of rules this work continues (none for a person's).
    pub cause: Cause,
}

/// A rule acting on a ticket for one event: `event_key` is the event's own key; `scanned` the ticket's
/// `updated_at` a scheduled rule's scan saw.
#[derive(Debug, Clone)]
pub struct Firing {
    pub rule_id: i64,
    pub event_key: String,
    pub scanned: Option<Ts>,
}

/// How many rules' changes led to this work, and which rule's this is.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cause {
    pub depth: u32,
    pub by_rule: Option<i64>,
}

/// The `rules.run` job telling the rules that `happened` to ticket `id`, keyed `key` (once per event).
pub fn rules_job(id: TicketId, happened: Happened, cause: Cause, key: String) -> NewJob {
    let run = RulesRun { ticket_id: id, happened, depth: cause.depth, by_rule: cause.by_rule };
    NewJob { kind: JobKind::RulesRun, payload: json!(run), idempotency_key: key }
}

/// The macro or rule that did some work, as its history rows name it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Via {
    /// `macro` or `rule`: also the field of the history row that says it ran.
    pub kind: &'static str,
    pub id: i64,
    pub name: String,
}

impl TicketWork {
    pub fn patch(patch: TicketPatch) -> Self {
        Self { patch, ..Self::default() }
    }
}

/// What `work` would do to `ticket`: the ticket afterwards and the fields it changes (tags included), or why
/// it is refused (the state machine, a missing resolution). Reads and writes nothing.
pub fn plan_work(ticket: &Ticket, work: &TicketWork) -> StoreResult<(Ticket, Vec<Change>)> {
    let mut t = ticket.clone();
    let changes = apply_work(&mut t, work, Ts::now())?;
    Ok((t, changes))
}

/// [`apply_patch`], then the tags.
fn apply_work(t: &mut Ticket, work: &TicketWork, now: Ts) -> StoreResult<Vec<Change>> {
    let mut changes = apply_patch(t, &work.patch, now)?;
    let tags = retag(&t.tags, &work.add_tags, &work.remove_tags);
    changed(&mut changes, "tags", &t.tags, &tags);
    t.tags = tags;
    Ok(changes)
}

/// One field a change altered: its history row (and what a preview shows).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Change {
    pub field: &'static str,
    pub old: Value,
    pub new: Value,
}

/// Adds a history row to `changes` when `old` and `new` differ.
pub(super) fn changed<T: PartialEq + serde::Serialize>(
    changes: &mut Vec<Change>,
    field: &'static str,
    old: &T,
    new: &T,
) {
    if old != new {
        changes.push(Change { field, old: json!(old), new: json!(new) });
    }
}

/// Applies `patch` to `t` in memory, returning the changes to record. Checks the state machine and that a
/// resolved ticket has a resolution.
fn apply_patch(t: &mut Ticket, patch: &TicketPatch, now: Ts) -> StoreResult<Vec<Change>> {
    let mut changes = Vec::new();
    let old = t.clone();
    if let Some(s) = patch.status {
        t.status = old.status.transition_to(s)?;
    }
    if let Some(p) = patch.priority {
        t.priority = p;
    }
    if let Some(c) = &patch.category {
        t.category = c.clone();
    }
    if let Some(s) = &patch.skills {
        t.skills = s.to_strings();
    }
    if let Some(a) = patch.assigned_to {
        t.assigned_to = a;
    }
    if let Some(r) = &patch.resolution {
        t.resolution = Some(r.as_str().to_owned());
    }
    if let Some(d) = patch.deadline {
        t.deadline = d;
    }
    if let Some(n) = &patch.helpful_notes {
        t.helpful_notes = n.clone();
    }
    if t.status == Status::Resolved && old.status != Status::Resolved {
        if t.resolution.is_none() {
            return Err(ParseError::new("resolution", "is required to resolve a ticket").into());
        }
        t.resolved_at = Some(now);
    }
    if t.status.is_active() {
        t.resolved_at = None;
    }
    changed(&mut changes, "status", &old.status, &t.status);
    changed(&mut changes, "priority", &old.priority, &t.priority);
    changed(&mut changes, "category", &old.category, &t.category);
    changed(&mut changes, "skills", &old.skills, &t.skills);
    changed(&mut changes, "assignee", &old.assigned_to, &t.assigned_to);
    changed(&mut changes, "resolution", &old.resolution, &t.resolution);
    changed(&mut changes, "deadline", &old.deadline, &t.deadline);
    changed(&mut changes, "helpful_notes", &old.helpful_notes, &t.helpful_notes);
    Ok(changes)
}

/// For each of category/priority/skills a person just changed away from what the AI said, the pair
/// (`{"field", "ai"}`, `{"field", "human"}`) that history shows.
fn corrections(t: &Ticket, changes: &[Change]) -> Vec<(Value, Value)> {
    let Some(ai) = &t.ai else { return Vec::new() };
    let mut out = Vec::new();
    for Change { field, new, .. } in changes {
        let said = match *field {
            "category" => json!(ai.category.as_ref().map(|g| &g.value)),
            "priority" => json!(ai.priority.value),
            "skills" => json!(ai.skills.iter().map(|g| &g.value).collect::<Vec<_>>()),
            _ => continue,
        };
        if &said != new {
            out.push((json!({ "field": field, "ai": said }), json!({ "field": field, "human": new })));
        }
    }
    out
}

/// The e-mail address of the person a ticket is being assigned to (their role and address as stored), if they
/// may work tickets.
fn assignable(row: Option<(String, String)>) -> StoreResult<String> {
    match row {
        Some((role, email)) if role.parse::<Role>().is_ok_and(Role::is_staff) => Ok(email),
        _ => Err(ParseError::new("assigned_to", "must be the id of a moderator or admin").into()),
    }
}

/// Whether a person's `changes` confirm or correct the labels, which makes the ticket something the AI
/// learns from: a label changed, or the ticket resolved (its labels then stand as they are).
fn labels_confirmed(changes: &[Change], status: Status) -> bool {
    let label = |c: &Change| matches!(c.field, "category" | "priority" | "skills");
    changes.iter().any(|c| label(c) || c.field == "status") && (status == Status::Resolved || changes.iter().any(label))
}

/// The job that tells the requester their ticket is resolved, when `patch` just resolved it.
fn resolved_job(ticket: &Ticket, patch: &TicketPatch) -> Option<NewJob> {
    let resolved_at = ticket.resolved_at.filter(|_| patch.status == Some(Status::Resolved))?;
    Some(NewJob {
        kind: JobKind::TicketResolved,
        payload: json!({ "ticket_id": ticket.id }),
        idempotency_key: format!("{}:{}", ticket.id, resolved_at.0.timestamp_micros()),
    })
}

/// [`smart_ticket_domain::access::may_see`] as SQL over the ticket columns named with `prefix`: admins every ticket, moderators
/// those they filed or are assigned, users those they filed.
pub(crate) fn push_may_see<DB: sqlx::Database>(qb: &mut QueryBuilder<DB>, viewer: &User, prefix: &str)
where
    for<'a> UserId: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    match viewer.role {
        Role::Admin => {}
        Role::Moderator => {
            qb.push(format!(" AND ({prefix}assigned_to = "))
                .push_bind(viewer.id)
                .push(format!(" OR {prefix}created_by = "))
                .push_bind(viewer.id)
                .push(")");
        }
        Role::User => {
            qb.push(format!(" AND {prefix}created_by = ")).push_bind(viewer.id);
        }
    }
}

/// The list filters of `filter` (status, priority, assignee, page cursor, open only) as SQL over `t`.
fn push_filters<DB: sqlx::Database>(qb: &mut QueryBuilder<DB>, viewer: &User, filter: &TicketFilter)
where
    for<'a> UserId: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    for<'a> &'static str: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    for<'a> i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    if let Some(s) = filter.status {
        qb.push(" AND t.status = ").push_bind(s.as_str());
    }
    if let Some(p) = filter.priority {
        qb.push(" AND t.priority = ").push_bind(p.as_str());
    }
    match filter.assignee {
        None => {}
        Some(AssigneeFilter::Nobody) => {
            qb.push(" AND t.assigned_to IS NULL");
        }
        Some(AssigneeFilter::Me) => {
            qb.push(" AND t.assigned_to = ").push_bind(viewer.id);
        }
        Some(AssigneeFilter::User(u)) => {
            qb.push(" AND t.assigned_to = ").push_bind(u);
        }
    }
    if let Some(b) = filter.before {
        qb.push(" AND t.number < ").push_bind(b);
    }
    if filter.open_only {
        qb.push(" AND t.status IN ('open', 'in_progress')");
    }
}

/// The job that tells `assignee` about ticket `id` (once per ticket and person).
pub fn notify_job(id: TicketId, assignee: UserId) -> NewJob {
    NewJob {
        kind: JobKind::TicketNotify,
        payload: json!({ "ticket_id": id, "assignee": assignee }),
        idempotency_key: format!("{id}:{assignee}"),
    }
}

impl Db {
    /// Files a ticket; its `created` history row and its `ticket.created` job commit with it.
    pub async fn create_ticket(
        &self,
        by: &User,
        title: &TicketTitle,
        description: &TicketDescription,
    ) -> StoreResult<Ticket> {
        self.create_ticket_from(by, title, description, None, &[]).await
    }

    /// Files a ticket as [`Db::create_ticket`] does; for one that came by mail, in the same transaction its
    /// message is marked ingested and its Message-ID threads to the ticket (a retried ingest files nothing twice).
    pub async fn create_ticket_from(
        &self,
        by: &User,
        title: &TicketTitle,
        description: &TicketDescription,
        mail: Option<&MailOrigin>,
        files: &[NewAttachment],
    ) -> StoreResult<Ticket> {
        let now = Ts::now();
        let id = TicketId::new();
        let job = NewJob {
            kind: JobKind::TicketCreated,
            payload: json!({ "ticket_id": id, "by_mail": mail.is_some() }),
            idempotency_key: id.to_string(),
        };
        let number: i64 = on_pool!(self.writer(), |pool, DB, pg| {
            let mut tx = pool.begin().await?;
            let number: i64 = sqlx::query_scalar(
                "INSERT INTO tickets (id, title, description, created_by, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $5) RETURNING number",
            )
            .bind(id)
            .bind(title.as_str())
            .bind(description.as_str())
            .bind(by.id)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            record_event!(&mut *tx, id, Actor::User(by.id), "created", None, Some(json!(Status::Open)), now)?;
            enqueue!(&mut *tx, &job, now)?;
            enqueue!(&mut *tx, &rules_job(id, Happened::Created, Cause::default(), format!("created:{id}")), now)?;
            if let Some(mail) = mail {
                settle_mail!(tx, mail, id, now)?;
            }
            let to = AttachTo { ticket: id, comment: None, internal: false, by: Some(by.id) };
            insert_attachments!(tx, to, files, now)?;
            tx.commit().await?;
            number
        })?;
        Ok(Ticket {
            id,
            number,
            title: title.as_str().to_owned(),
            description: description.as_str().to_owned(),
            status: Status::Open,
            priority: Priority::Medium,
            category: None,
            skills: Vec::new(),
            helpful_notes: None,
            created_by: by.id,
            assigned_to: None,
            deadline: None,
            resolution: None,
            created_at: now,
            updated_at: now,
            resolved_at: None,
            ai: None,
            triaged_at: None,
            routing_reason: None,
            duplicate_of: None,
            duplicate_score: None,
            merged_into: None,
            tags: Vec::new(),
            requester_email: by.email.clone(),
            assignee_email: None,
        })
    }

    /// The tickets with these numbers (in no particular order; missing ones are left out).
    pub async fn tickets_by_numbers(&self, numbers: &[i64]) -> StoreResult<Vec<Ticket>> {
        self.by_numbers(TICKET_SELECT, numbers).await
    }

    /// [`Db::tickets_by_numbers`], each ticket with what hybrid reordering reads beside it.
    pub async fn rerank_rows(&self, numbers: &[i64]) -> StoreResult<Vec<RerankRow>> {
        self.by_numbers(ticket_select!("t.embedding, t.language"), numbers).await
    }

    /// The rows of `select` (a [`ticket_select!`]) for the tickets with these numbers.
    async fn by_numbers<T>(&self, select: &str, numbers: &[i64]) -> StoreResult<Vec<T>>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
            + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
            + Send
            + Unpin,
    {
        if numbers.is_empty() {
            return Ok(Vec::new());
        }
        on_pool!(self.reader(), |pool, DB, pg| {
            let mut qb = sqlx::QueryBuilder::<DB>::new(format!("{select} WHERE t.number IN ("));
            let mut list = qb.separated(", ");
            for n in numbers {
                list.push_bind(*n);
            }
            qb.push(")");
            qb.build_query_as::<T>().fetch_all(pool).await?
        })
    }

    /// Tickets changed after `since` (a change time and, for changes at that same time, a ticket number; all
    /// tickets when `None`), in (change time, number) order, with what the in-memory vector index keeps of them.
    pub async fn index_rows_since(&self, since: Option<(Ts, i64)>, limit: i64) -> StoreResult<Vec<IndexRow>> {
        on_pool!(self.reader(), |pool, DB, pg| {
            let mut qb = sqlx::QueryBuilder::<DB>::new(
                "SELECT number, created_by, assigned_to, status, priority, merged_into, \
                 (resolution IS NOT NULL) AS has_resolution, embedding, search_vector, language, updated_at \
                 FROM tickets",
            );
            if let Some((t, n)) = since {
                qb.push(" WHERE updated_at > ")
                    .push_bind(t)
                    .push(" OR (updated_at = ")
                    .push_bind(t)
                    .push(" AND number > ")
                    .push_bind(n)
                    .push(")");
            }
            qb.push(" ORDER BY updated_at, number LIMIT ").push_bind(limit);
            qb.build_query_as::<IndexRow>().fetch_all(pool).await?
        })
    }

    pub async fn ticket_by_number(&self, number: i64) -> StoreResult<Option<Ticket>> {
        on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!("{TICKET_SELECT} WHERE t.number = $1")))
                .bind(number)
                .fetch_optional(pool)
                .await?
        })
    }

    pub async fn ticket(&self, id: TicketId) -> StoreResult<Option<Ticket>> {
        on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!("{TICKET_SELECT} WHERE t.id = $1")))
                .bind(id)
                .fetch_optional(pool)
                .await?
        })
    }

    /// Tickets `viewer` may see, newest first, matching `filter`; one more than `limit` when another page follows.
    /// With `filter.q`, the full-text matches instead, best first (PostgreSQL: `websearch_to_tsquery`; SQLite: FTS5
    /// with the same reading of the query, see [`fts5_query`]).
    pub async fn list_tickets(&self, viewer: &User, filter: &TicketFilter, limit: i64) -> StoreResult<Vec<Ticket>> {
        let search = filter.q.as_deref().map(|q| (q, fts5_query(q)));
        on_pool!(self.reader(), |pool, DB, pg| {
            let join =
                if search.is_some() && !pg { " JOIN ticket_search ON ticket_search.rowid = t.number" } else { "" };
            let mut qb = sqlx::QueryBuilder::<DB>::new(format!("{TICKET_SELECT}{join} WHERE 1 = 1"));
            push_may_see(&mut qb, viewer, "t.");
            push_filters(&mut qb, viewer, filter);
            match &search {
                Some((q, _)) if pg => {
                    qb.push(" AND t.search @@ websearch_to_tsquery('simple', ").push_bind(*q).push(")");
                }
                Some((_, Some(fts))) => {
                    qb.push(" AND ticket_search MATCH ").push_bind(fts.clone());
                }
                Some((_, None)) => {
                    qb.push(" AND 1 = 0");
                }
                None => {}
            }
            if let Some((q, _)) = &search {
                if pg {
                    qb.push(" ORDER BY ts_rank_cd(t.search, websearch_to_tsquery('simple', ")
                        .push_bind(q)
                        .push(")) DESC");
                } else {
                    // bm25 is lower for better matches; a title match counts four times a description match.
                    qb.push(" ORDER BY bm25(ticket_search, 4.0, 1.0)");
                }
                qb.push(", t.number DESC LIMIT ").push_bind(limit + 1);
            } else if filter.by_deadline {
                qb.push(" ORDER BY (t.deadline IS NULL), t.deadline, t.number DESC LIMIT ").push_bind(limit + 1);
            } else {
                qb.push(" ORDER BY t.number DESC LIMIT ").push_bind(limit + 1);
            }
            qb.build_query_as::<Ticket>().fetch_all(pool).await?
        })
    }

    /// Applies `patch` atomically, recording one history row per changed field.
    pub async fn update_ticket(&self, id: TicketId, actor: Actor, patch: &TicketPatch) -> StoreResult<Ticket> {
        self.work_ticket(id, actor, &TicketWork::patch(patch.clone())).await
    }

    /// Applies `work` atomically: all of it or, when any part is refused, none. One history row per changed
    /// field (naming `work.via`), and one for the macro or rule itself; notifications as jobs in the same commit.
    pub async fn work_ticket(&self, id: TicketId, actor: Actor, work: &TicketWork) -> StoreResult<Ticket> {
        let now = Ts::now();
        let patch = &work.patch;
        on_pool!(self.writer(), |pool, DB, pg| {
            // SQLite: take the write lock up front, so a concurrent writer cannot invalidate what we read.
            let mut tx = if pg { pool.begin().await? } else { pool.begin_with("BEGIN IMMEDIATE").await? };
            let lock = if pg { " FOR UPDATE OF t" } else { "" };
            let mut ticket: Ticket =
                sqlx::query_as(sqlx::AssertSqlSafe(format!("{TICKET_SELECT} WHERE t.id = $1{lock}")))
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or(StoreError::NotFound)?;
            let changes = apply_work(&mut ticket, work, now)?;
            let writes = !changes.is_empty() || !work.comments.is_empty();
            if !writes && work.jobs.is_empty() && work.firing.is_none() {
                return Ok(ticket);
            }
            let via = work.via.as_ref().map(|v| json!(v));
            let via = via.as_ref();
            let cause = Cause { depth: work.cause.depth, by_rule: work.cause.by_rule };
            if !work.comments.is_empty() {
                let author = work.author.or(actor.user_id());
                let author = author.ok_or(StoreError::Conflict("a reply needs a person to write it"))?;
                insert_work_comments!(tx, work, id, author, cause, now)?;
            }
            if let Some(Some(assignee)) = patch.assigned_to {
                let row: Option<(String, String)> = sqlx::query_as("SELECT role, email FROM users WHERE id = $1")
                    .bind(assignee)
                    .fetch_optional(&mut *tx)
                    .await?;
                ticket.assignee_email = Some(assignable(row)?);
            }
            if ticket.assigned_to.is_none() {
                ticket.assignee_email = None;
            }
            if let Some(f) = &work.firing {
                let version = if writes { now } else { f.scanned.unwrap_or(ticket.updated_at) };
                record_firing!(tx, f, id, version, now)?;
            }
            for job in &work.jobs {
                enqueue!(&mut *tx, job, now)?;
            }
            if !writes {
                tx.commit().await?;
                return Ok(ticket);
            }
            ticket.updated_at = now;
            let by_person = matches!(actor, Actor::User(_));
            let labelled = by_person && labels_confirmed(&changes, ticket.status);
            let corrections = if by_person { corrections(&ticket, &changes) } else { Vec::new() };
            write_ticket!(tx, &ticket, labelled)?;
            if !changes.is_empty() {
                let fields: Vec<String> = changes.iter().map(|c| c.field.to_owned()).collect();
                let key = format!("updated:{id}:{}", now.0.timestamp_micros());
                enqueue!(&mut *tx, &rules_job(id, Happened::Updated { fields }, cause, key), now)?;
            }
            if let (Some(v), Some(value)) = (&work.via, via) {
                record_event!(&mut *tx, id, actor, v.kind, None, Some(value.clone()), now, via)?;
            }
            for c in changes {
                record_event!(&mut *tx, id, actor, c.field, Some(c.old), Some(c.new), now, via)?;
            }
            for (old, new) in corrections {
                record_event!(&mut *tx, id, actor, "ai_correction", Some(old), Some(new), now, via)?;
            }
            // Notifications, as jobs committed with the change.
            if let Some(job) = resolved_job(&ticket, patch) {
                enqueue!(&mut *tx, &job, now)?;
            }
            if let (Some(Some(assignee)), Actor::User(_)) = (patch.assigned_to, actor) {
                enqueue!(&mut *tx, &notify_job(id, assignee), now)?;
            }
            tx.commit().await?;
            ticket
        })
    }

    pub async fn add_comment(
        &self,
        ticket: TicketId,
        author: &User,
        body: &CommentBody,
        internal: bool,
    ) -> StoreResult<Comment> {
        self.add_comment_from(ticket, author, body, internal, None, &[]).await
    }

    /// Adds a comment as [`Db::add_comment`] does; for a reply that came by mail, in the same transaction its
    /// message is marked ingested and threads to the ticket.
    pub async fn add_comment_from(
        &self,
        ticket: TicketId,
        author: &User,
        body: &CommentBody,
        internal: bool,
        mail: Option<&MailOrigin>,
        files: &[NewAttachment],
    ) -> StoreResult<Comment> {
        let now = Ts::now();
        let id: i64 = on_pool!(self.writer(), |pool, DB, pg| {
            let mut tx = pool.begin().await?;
            let id = insert_comment!(tx, ticket, author.id, body.as_str(), internal, now)?;
            let by = if author.role.is_staff() { CommentBy::Staff } else { CommentBy::Requester };
            let happened = Happened::Commented { by, internal, comment_id: Some(id) };
            enqueue!(&mut *tx, &rules_job(ticket, happened, Cause::default(), format!("comment:{id}")), now)?;
            let to = AttachTo { ticket, comment: Some(id), internal, by: Some(author.id) };
            insert_attachments!(tx, to, files, now)?;
            if let Some(mail) = mail {
                settle_mail!(tx, mail, ticket, now)?;
            }
            sqlx::query("UPDATE tickets SET updated_at = $2 WHERE id = $1")
                .bind(ticket)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            id
        })?;
        Ok(Comment {
            id,
            ticket_id: ticket,
            author_id: author.id,
            author_email: author.email.clone(),
            body: body.as_str().to_owned(),
            internal,
            created_at: now,
        })
    }

    /// Merges ticket `id` into the ticket numbered `into`, in one transaction: `id` is closed with `merged_into`
    /// set; history on both (`merged_into`, `merged_from`); the survivor gets an internal note carrying the
    /// merged ticket's text and requester, and the merged ticket a reply telling its requester (by e-mail too).
    pub async fn merge_ticket(&self, id: TicketId, into: i64, by: &User) -> StoreResult<Ticket> {
        let now = Ts::now();
        let actor = Actor::User(by.id);
        on_pool!(self.writer(), |pool, DB, pg| {
            let mut tx = if pg { pool.begin().await? } else { pool.begin_with("BEGIN IMMEDIATE").await? };
            let lock = if pg { " FOR UPDATE OF t" } else { "" };
            let mut source: Ticket =
                sqlx::query_as(sqlx::AssertSqlSafe(format!("{TICKET_SELECT} WHERE t.id = $1{lock}")))
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or(StoreError::NotFound)?;
            let target: Ticket =
                sqlx::query_as(sqlx::AssertSqlSafe(format!("{TICKET_SELECT} WHERE t.number = $1{lock}")))
                    .bind(into)
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or(StoreError::NotFound)?;
            if source.id == target.id {
                return Err(StoreError::Conflict("a ticket cannot be merged into itself"));
            }
            if source.merged_into.is_some() {
                return Err(StoreError::Conflict("this ticket is already merged"));
            }
            if target.merged_into.is_some() {
                return Err(StoreError::Conflict("that ticket was merged into another: merge into the one it went to"));
            }
            let status = source.status.transition_to(Status::Closed)?;
            sqlx::query("UPDATE tickets SET status = $2, merged_into = $3, updated_at = $4 WHERE id = $1")
                .bind(id)
                .bind(status.as_str())
                .bind(target.number)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE tickets SET updated_at = $2 WHERE id = $1")
                .bind(target.id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            if source.status != status {
                record_event!(&mut *tx, id, actor, "status", Some(json!(source.status)), Some(json!(status)), now)?;
            }
            record_event!(&mut *tx, id, actor, "merged_into", None, Some(json!(target.number)), now)?;
            record_event!(&mut *tx, target.id, actor, "merged_from", None, Some(json!(source.number)), now)?;
            let note = merge_note(&source, by);
            let reply = format!(
                "This ticket was merged into #{} by {}, which covers the same request: the work continues there.",
                target.number, by.email
            );
            insert_comment!(tx, target.id, by.id, note, true, now)?;
            insert_comment!(tx, id, by.id, reply, false, now)?;
            tx.commit().await?;
            source.status = status;
            source.merged_into = Some(target.number);
            source.updated_at = now;
            source
        })
    }

    /// A ticket's conversation in order; internal notes only when `include_internal`.
    pub async fn comments(&self, ticket: TicketId, include_internal: bool) -> StoreResult<Vec<Comment>> {
        on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_as(
                "SELECT m.id, m.ticket_id, m.author_id, u.email AS author_email, m.body, m.internal, m.created_at \
                 FROM comments m JOIN users u ON u.id = m.author_id \
                 WHERE m.ticket_id = $1 AND (m.internal = FALSE OR $2) ORDER BY m.id",
            )
            .bind(ticket)
            .bind(include_internal)
            .fetch_all(pool)
            .await?
        })
    }

    /// One comment.
    pub async fn comment(&self, id: i64) -> StoreResult<Option<Comment>> {
        on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_as(
                "SELECT m.id, m.ticket_id, m.author_id, u.email AS author_email, m.body, m.internal, m.created_at \
                 FROM comments m JOIN users u ON u.id = m.author_id WHERE m.id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?
        })
    }

    /// A ticket's history in order.
    pub async fn events(&self, ticket: TicketId) -> StoreResult<Vec<TicketEvent>> {
        on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_as(
                "SELECT e.id, e.ticket_id, e.actor_kind, e.actor_id, u.email AS actor_email, e.field, e.via, \
                 e.old_value, e.new_value, e.created_at FROM ticket_events e LEFT JOIN users u ON u.id = e.actor_id \
                 WHERE e.ticket_id = $1 ORDER BY e.id",
            )
            .bind(ticket)
            .fetch_all(pool)
            .await?
        })
    }
}
