//! Rules (triggers and time-based automations): admins keep them; the `rules.run` job runs those waiting for
//! what happened to a ticket, in order, and the minute's `sla.check` runs the scheduled ones over the tickets
//! their conditions pick. A rule acts once per event and ticket; its own changes do not run it again; a chain
//! of rules reacting to each other is cut after [`MAX_CHAIN`] (history says so).

use serde::{Deserialize, Serialize};
use smart_ticket_domain::Priority;
use smart_ticket_domain::access::may_manage_workflow;
use smart_ticket_domain::rules::{Facts, MAX_CHAIN, Reads, Rule, RuleSpec, RulesRun, When};
use smart_ticket_domain::workflow::{Action, Recipient};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use utoipa::ToSchema;

use super::error::{AppError, AppResult};
use super::{AuthUser, Desk};
use crate::db::{Cause, Firing, Job, Scan, StoreError, StoredRule, TicketWork, Via, WorkComment};
use crate::model::{Actor, Ticket, Ts, User};
use crate::pipeline::Pipeline;

fn require_admin(auth: &AuthUser) -> AppResult<()> {
    if may_manage_workflow(auth.user.role) { Ok(()) } else { Err(AppError::Forbidden) }
}

/// The rule parsed, and what its actions name checked to exist; every refusal a field error.
async fn checked(desk: &Desk, spec: &RuleSpec) -> AppResult<Rule> {
    let rule = Rule::parse(spec).map_err(|errors| {
        let mut fields = std::collections::BTreeMap::new();
        for e in errors {
            fields.entry(e.field).or_insert_with(|| e.message.into_owned());
        }
        AppError::Validation(fields)
    })?;
    for (i, a) in rule.actions.iter().enumerate() {
        if let Some(why) = super::macros::missing_reference(desk, a).await? {
            return Err(AppError::field("actions", format!("action {}: {why}", i + 1)));
        }
    }
    Ok(rule)
}

pub(crate) async fn list(desk: &Desk, auth: &AuthUser) -> AppResult<Vec<StoredRule>> {
    require_admin(auth)?;
    Ok(desk.db.rules().await?)
}

pub(crate) async fn get(desk: &Desk, auth: &AuthUser, id: i64) -> AppResult<StoredRule> {
    require_admin(auth)?;
    desk.db.rule(id).await?.ok_or(AppError::NotFound)
}

pub(crate) async fn create(desk: &Desk, auth: &AuthUser, spec: RuleSpec) -> AppResult<StoredRule> {
    require_admin(auth)?;
    checked(desk, &spec).await?;
    let event = spec.when.event.trim().to_owned();
    Ok(desk.db.insert_rule(&spec, &event, auth.user.id).await?)
}

pub(crate) async fn replace(desk: &Desk, auth: &AuthUser, id: i64, spec: RuleSpec) -> AppResult<StoredRule> {
    require_admin(auth)?;
    checked(desk, &spec).await?;
    let event = spec.when.event.trim().to_owned();
    Ok(desk.db.update_rule(id, &spec, &event, None).await?)
}

/// Turning a rule on or off, or moving it in the order.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RuleToggle {
    pub enabled: Option<bool>,
    /// Its place: rules run in ascending position (1 to 100,000).
    pub position: Option<i32>,
}

pub(crate) async fn toggle(desk: &Desk, auth: &AuthUser, id: i64, change: RuleToggle) -> AppResult<StoredRule> {
    let mut stored = get(desk, auth, id).await?;
    if change.position.is_some_and(|p| !(1..=100_000).contains(&p)) {
        return Err(AppError::field("position", "must be between 1 and 100,000"));
    }
    if let Some(enabled) = change.enabled {
        stored.spec.enabled = enabled;
    }
    Ok(desk.db.update_rule(id, &stored.spec, &stored.event, change.position).await?)
}

pub(crate) async fn delete(desk: &Desk, auth: &AuthUser, id: i64) -> AppResult<()> {
    require_admin(auth)?;
    if desk.db.delete_rule(id).await? { Ok(()) } else { Err(AppError::NotFound) }
}

/// A ticket a dry run found.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DryRunMatch {
    pub number: i64,
    pub id: crate::model::TicketId,
    pub title: String,
    pub status: String,
}

/// Which of the recently changed tickets the rule would have matched.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DryRun {
    /// How many recent tickets were tested (the most recently changed, at most 200).
    pub checked: usize,
    pub matched: Vec<DryRunMatch>,
}

/// Tests rule `spec` (not saved) against the 200 most recently changed tickets, as they are now.
pub(crate) async fn dry_run(desk: &Desk, auth: &AuthUser, spec: RuleSpec) -> AppResult<DryRun> {
    require_admin(auth)?;
    let rule = checked(desk, &spec).await?;
    let recent = desk.db.recently_updated_tickets(200).await?;
    let now = desk.pipeline.clock.now();
    let mut matched = Vec::new();
    for t in &recent {
        if rule.matches(&facts(&desk.pipeline, t, now, rule.reads()).await?) {
            matched.push(DryRunMatch {
                number: t.number,
                id: t.id,
                title: t.title.clone(),
                status: t.status.to_string(),
            });
        }
    }
    Ok(DryRun { checked: recent.len(), matched })
}

/// What rules read of `ticket` at `now`, with the facts beyond its row in `reads` looked up (the rest `None`).
async fn facts(p: &Pipeline, t: &Ticket, now: Ts, reads: Reads) -> anyhow::Result<Facts> {
    let ai = t.ai.as_ref().map(|a| &a.0);
    let language = async { if reads.language { p.db.ticket_language(t.id).await } else { Ok(None) } };
    let reply = async { if reads.customer_reply { p.db.last_customer_reply(t.id).await } else { Ok(None) } };
    let (language, last_customer_reply) = tokio::try_join!(language, reply)?;
    Ok(Facts {
        status: t.status.as_str().to_owned(),
        priority: t.priority.as_str().to_owned(),
        category: t.category.clone(),
        skills: t.skills.clone(),
        tags: t.tags.clone(),
        assigned: t.assigned_to.is_some(),
        requester_email: t.requester_email.clone(),
        title: t.title.clone(),
        description: t.description.clone(),
        language,
        ai_category: ai.and_then(|a| a.category.as_ref()).map(|g| (g.value.clone(), g.confidence)),
        ai_priority: ai.map(|a| (a.priority.value.clone(), a.priority.confidence)),
        ai_skills: ai.map(|a| a.skills.iter().map(|g| (g.value.clone(), g.confidence)).collect()).unwrap_or_default(),
        deadline: t.deadline,
        created_at: t.created_at,
        updated_at: t.updated_at,
        last_customer_reply,
        now,
    })
}

/// The ticket of `run` as the event left it, and the enabled rules (in order) that wait for what happened and
/// whose conditions it meets; `None` when the ticket is gone. What the `rules.run` job decides before acting.
pub async fn matching(p: &Pipeline, run: &RulesRun) -> anyhow::Result<Option<(Ticket, Vec<(StoredRule, Arc<Rule>)>)>> {
    // Both at once: each is a round trip to the database.
    let (rules, seen) = tokio::try_join!(p.rules.enabled(&p.db, run.happened.event().as_str()), async {
        anyhow::Ok(p.db.ticket(run.ticket_id).await?)
    })?;
    let Some(seen) = seen else { return Ok(None) };
    let waiting: Vec<_> =
        rules.iter().filter(|(r, rule)| Some(r.id) != run.by_rule && rule.when.fits(&run.happened)).collect();
    if waiting.is_empty() {
        return Ok(Some((seen, Vec::new())));
    }
    let reads = waiting.iter().fold(Reads::default(), |reads, (_, rule)| reads | rule.reads());
    let facts = facts(p, &seen, p.clock.now(), reads).await?;
    let mut matched = Vec::new();
    for (stored, rule) in waiting {
        if rule.matches(&facts) {
            matched.push((stored.clone(), rule.clone()));
        }
    }
    Ok(Some((seen, matched)))
}

/// The `rules.run` job: the webhooks subscribed to the event are sent it, and the rules [`matching`] it act, in order, each on the ticket as the rules before
/// it left it (one event is one step of a chain: the changes a rule makes are the next event).
pub(crate) async fn run(p: Pipeline, job: Job) -> anyhow::Result<()> {
    let run: RulesRun = serde_json::from_value(job.payload.clone())?;
    let Some((seen, matched)) = matching(&p, &run).await? else { return Ok(()) };
    // The same stream of events feeds the webhooks (once per event: a retried job queues nothing twice).
    super::webhooks::fan_out(&p, &run, &seen, &job.idempotency_key).await?;
    for (stored, rule) in matched {
        if run.depth >= MAX_CHAIN {
            let via = serde_json::json!(via(&stored));
            p.db.record_rule_chain_cut(seen.id, run.depth, &via).await?;
            tracing::warn!(ticket = seen.number, rule = stored.id, depth = run.depth, "rule chain cut");
            return Ok(());
        }
        let Some(ticket) = p.db.ticket(run.ticket_id).await? else { return Ok(()) };
        let firing = Firing { rule_id: stored.id, event_key: job.idempotency_key.clone(), scanned: None };
        fire(&p, &stored, &rule, &ticket, firing, run.depth).await?;
    }
    Ok(())
}

/// The enabled rules of each event, parsed, kept while the rules are as they were (`Db::rules_version`:
/// their count and latest change): an event costs one small query, not reading and parsing every rule
/// (parsing compiles their patterns).
#[derive(Default)]
pub struct RuleCache {
    parsed: Mutex<HashMap<i64, (Ts, Arc<Rule>)>>,
    enabled: Mutex<HashMap<String, EnabledRules>>,
}

/// One event's enabled rules, in order, and the rules' version they were read at.
type EnabledRules = ((i64, Option<Ts>), Arc<Vec<(StoredRule, Arc<Rule>)>>);

impl RuleCache {
    /// The enabled rules waiting for `event`, in order, parsed (those that no longer parse left out).
    async fn enabled(&self, db: &crate::db::Db, event: &str) -> anyhow::Result<Arc<Vec<(StoredRule, Arc<Rule>)>>> {
        let version = db.rules_version().await?;
        if let Some((seen, rules)) = self.enabled.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(event)
            && *seen == version
        {
            return Ok(rules.clone());
        }
        let rules: Vec<(StoredRule, Arc<Rule>)> = db
            .enabled_rules(event)
            .await?
            .into_iter()
            .filter_map(|stored| self.parsed(&stored).map(|rule| (stored, rule)))
            .collect();
        let rules = Arc::new(rules);
        self.enabled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(event.to_owned(), (version, rules.clone()));
        Ok(rules)
    }

    /// The stored rule parsed, once per version of it (one that no longer parses is skipped and logged).
    fn parsed(&self, stored: &StoredRule) -> Option<Arc<Rule>> {
        let mut cache = self.parsed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((version, rule)) = cache.get(&stored.id)
            && *version == stored.updated_at
        {
            return Some(rule.clone());
        }
        match Rule::parse(&stored.spec) {
            Ok(rule) => {
                let rule = Arc::new(rule);
                cache.insert(stored.id, (stored.updated_at, rule.clone()));
                Some(rule)
            }
            Err(e) => {
                tracing::warn!(rule = stored.id, errors = ?e, "a stored rule no longer parses: skipped");
                None
            }
        }
    }
}

fn via(stored: &StoredRule) -> Via {
    Via { kind: "rule", id: stored.id, name: stored.name.clone() }
}

/// Rule `stored` acts on `ticket` for the event `firing` names, once: a repeat of the event does nothing; an
/// action the ticket refuses (the state machine, a category gone) is logged and the rule skipped.
async fn fire(
    p: &Pipeline,
    stored: &StoredRule,
    rule: &Rule,
    ticket: &Ticket,
    firing: Firing,
    depth: u32,
) -> anyhow::Result<()> {
    let mut work = work_of(p, stored, rule, ticket).await?;
    // Webhook calls first, keyed by the event: a repeat of it queues nothing twice.
    for a in rule.actions.iter() {
        if let Action::CallWebhook(id) = a {
            super::webhooks::call(p, *id, stored, ticket, &firing.event_key).await?;
        }
    }
    work.firing = Some(firing);
    work.cause = Cause { depth: depth + 1, by_rule: Some(stored.id) };
    match p.db.work_ticket(ticket.id, Actor::System, &work).await {
        Ok(_) => {
            tracing::info!(ticket = ticket.number, rule = stored.id, "rule fired");
            Ok(())
        }
        Err(StoreError::Repeated) => Ok(()),
        Err(e @ (StoreError::Invalid(_) | StoreError::Transition(_) | StoreError::Conflict(_))) => {
            tracing::warn!(ticket = ticket.number, rule = stored.id, error = %e, "rule could not act on the ticket");
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// The rule's actions as one piece of work on `ticket`. Replies and notes are written by the assignee, or by
/// the rule's author when nobody is assigned.
async fn work_of(p: &Pipeline, stored: &StoredRule, rule: &Rule, ticket: &Ticket) -> anyhow::Result<TicketWork> {
    let author = ticket.assigned_to.or(stored.created_by);
    let author_email = match author {
        Some(id) => p.db.user_by_id(id).await?.map(|u: User| u.email),
        None => None,
    };
    let mut work = TicketWork { via: Some(via(stored)), author, ..TicketWork::default() };
    for (i, a) in rule.actions.iter().enumerate() {
        if super::macros::patch_action(&mut work, a)? {
            continue;
        }
        let key = format!("rule:{}:{}:{}:{i}", stored.id, ticket.id, Ts::now().0.timestamp_micros());
        match a {
            Action::Reply { canned_response_id } => {
                let Some(canned) = p.db.canned_response(*canned_response_id).await? else { continue };
                let text = super::canned::fill_for(
                    p,
                    &smart_ticket_domain::workflow::ReplyTemplate::parse(&canned.body)?,
                    ticket,
                    author_email.as_deref(),
                );
                let body = smart_ticket_domain::CommentBody::parse(&text)?;
                work.comments.push(WorkComment { body, internal: false, canned_id: Some(canned.id) });
            }
            Action::SendEmail { to, subject, body } => {
                let to = match to {
                    Recipient::Requester => Some(ticket.requester_email.clone()),
                    Recipient::Assignee => ticket.assignee_email.clone(),
                    Recipient::Address(a) => Some(a.as_str().to_owned()),
                };
                let Some(to) = to else { continue };
                let subject = super::canned::fill_for(p, subject, ticket, author_email.as_deref());
                let body = super::canned::fill_for(p, body, ticket, author_email.as_deref());
                let ctx = minijinja::context! { body, number => ticket.number, title => ticket.title, link => p.link(ticket.id) };
                let email = crate::mail::render("rule", key, &to, subject, ctx)?;
                work.jobs.push(crate::mail::job(&email)?);
            }
            Action::Escalate => {
                let up = escalated(ticket.priority);
                work.patch.priority = Some(up);
                for admin in p.db.admin_emails().await? {
                    let ctx = minijinja::context! {
                        number => ticket.number, title => ticket.title, priority => up.as_str(), rule => stored.name,
                        assignee => ticket.assignee_email, link => p.link(ticket.id),
                    };
                    let subject = format!("[#{}] escalated to {}: {}", ticket.number, up, ticket.title);
                    let email = crate::mail::render("escalated", format!("{key}:{admin}"), &admin, subject, ctx)?;
                    work.jobs.push(crate::mail::job(&email)?);
                }
            }
            _ => {}
        }
    }
    Ok(work)
}

/// One step up: low → medium → high → urgent (urgent stays).
fn escalated(p: Priority) -> Priority {
    match p {
        Priority::Low => Priority::Medium,
        Priority::Medium => Priority::High,
        Priority::High | Priority::Urgent => Priority::Urgent,
    }
}

/// How many tickets one scheduled rule looks at per run (the oldest changes first; the next run goes on).
const SCAN_BATCH: i64 = 500;

/// The scheduled rules due at `now`, each over the tickets its conditions narrow to (see [`scan_of`]).
pub(crate) async fn scan(p: &Pipeline, now: Ts) -> anyhow::Result<()> {
    for stored in p.db.enabled_rules("schedule").await? {
        let Some(rule) = p.rules.parsed(&stored) else { continue };
        let When::Every { minutes } = rule.when else { continue };
        if stored.last_run_at.is_some_and(|last| last + chrono::Duration::minutes(i64::from(minutes)) > now) {
            continue;
        }
        for ticket in p.db.scan_tickets(stored.id, &scan_of(&rule, now), SCAN_BATCH).await? {
            if !rule.matches(&facts(p, &ticket, now, rule.reads()).await?) {
                continue;
            }
            let key = format!("scan:{}", ticket.updated_at.0.timestamp_micros());
            let firing = Firing { rule_id: stored.id, event_key: key, scanned: Some(ticket.updated_at) };
            fire(p, &stored, &rule, &ticket, firing, 0).await?;
        }
        p.db.mark_rule_run(stored.id, now).await?;
    }
    Ok(())
}

/// The part of a scheduled rule's conditions the scan's query serves from the indexes on `(status,
/// updated_at)` and `(status, created_at)`: the statuses (else the active ones) and the time cut-offs.
fn scan_of(rule: &Rule, now: Ts) -> Scan {
    let hints = rule.scan_hints();
    let statuses: Vec<&'static str> = match &hints.statuses {
        Some(named) => smart_ticket_domain::Status::ALL
            .iter()
            .filter(|s| named.iter().any(|n| n == s.as_str()))
            .map(|s| s.as_str())
            .collect(),
        None => vec!["open", "in_progress"],
    };
    let before = |hours: f64| now + chrono::Duration::seconds((-hours * 3600.0) as i64);
    Scan {
        statuses,
        updated_before: hints.hours_since_updated.map(before),
        created_before: hints.hours_since_created.map(before),
    }
}
