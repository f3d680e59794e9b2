//! The `ticket.created` workflow, as durable jobs: triage with the AI, then route to the best moderator,
//! then notify the assignee. Each step is its own job, idempotent, and enqueues the next in the transaction
//! that records its result, so a crash at any point resumes where it stopped and never repeats a step.

use anyhow::Context;
use serde::Deserialize;
use smart_ticket_domain::{JobKind, Priority};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use minijinja::context;

use crate::config::PipelineSettings;
use crate::db::{Db, Job, NewJob, Routed, TriageWrite, notify_job};
use crate::engine::Ai;
use crate::jobs::{JobHandler, Registry};
use crate::mail::{Email, Mailer, render};
use crate::model::{Ticket, TicketId, Ts, UserId};
use crate::providers::Provider;
use smart_ticket_domain::routing;

/// What every step shares.
#[derive(Clone)]
pub struct Pipeline {
    pub db: Db,
    pub ai: Arc<Ai>,
    /// A language model for triage, when configured (the embedded engine is the fallback).
    pub triage_provider: Option<Arc<Provider>>,
    /// A language model for drafting replies, when configured (composed from resolutions otherwise).
    pub suggest_provider: Option<Arc<Provider>>,
    pub mailer: Arc<Mailer>,
    pub settings: Arc<PipelineSettings>,
    /// Turns true when the process stops: long-running jobs (a mailbox waiting for mail) end early.
    pub stop: Arc<tokio::sync::watch::Sender<bool>>,
    /// The knowledge base's vectors (self-service, the help centre's search, answers by e-mail).
    pub articles: Arc<crate::search::articles::ArticleIndex>,
    /// What time it is for the team's scheduled rules (the system clock; tests move it forward).
    pub clock: Clock,
    /// The team's rules, parsed once per version.
    pub rules: Arc<crate::desk::rules::RuleCache>,
    /// Webhook deliveries' HTTP clients, kept so deliveries to one receiver reuse connections.
    pub webhook_clients: Arc<crate::desk::webhooks::WebhookClients>,
}

/// The time scheduled rules read: the system clock plus an offset that is zero unless a test advances it.
#[derive(Clone, Default, Debug)]
pub struct Clock(Arc<std::sync::atomic::AtomicI64>);

impl Clock {
    pub fn now(&self) -> Ts {
        Ts::now() + chrono::Duration::seconds(self.0.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Moves this clock `by` ahead of the system's.
    pub fn advance(&self, by: chrono::Duration) {
        self.0.fetch_add(by.num_seconds(), std::sync::atomic::Ordering::Relaxed);
    }
}

#[derive(Debug, Deserialize)]
struct TicketPayload {
    ticket_id: TicketId,
    /// Filed by e-mail (`ticket.created` says so): it may be answered by e-mail with articles.
    #[serde(default)]
    by_mail: bool,
}

fn payload<T: for<'de> Deserialize<'de>>(job: &Job) -> anyhow::Result<T> {
    serde_json::from_value(job.payload.clone()).with_context(|| format!("job {} has a malformed payload", job.id))
}

/// A job handler from an async function of the pipeline and the job.
struct Step<F>(Pipeline, F);

impl<F, Fut> JobHandler for Step<F>
where
    F: Fn(Pipeline, Job) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    fn run<'a>(&'a self, job: &'a Job) -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + 'a>> {
        Box::pin((self.1)(self.0.clone(), job.clone()))
    }
}

impl Pipeline {
    /// Loads the AI engine (its model is shared by every pipeline of the process).
    pub fn new(db: Db, settings: PipelineSettings) -> anyhow::Result<Self> {
        // Webhook deliveries and language models post over reqwest, which has no crypto provider of its own.
        crate::providers::install_crypto();
        let ai = Ai::load(&settings.model_dir, &settings.e5_dir, settings.ai_retrain_every);
        let mailer = Arc::new(Mailer::new(&settings.mail)?);
        let triage_provider = settings.triage_provider.clone().map(Provider::new).transpose()?.map(Arc::new);
        let suggest_provider = settings.suggest_provider.clone().map(Provider::new).transpose()?.map(Arc::new);
        if let Some(p) = &triage_provider {
            tracing::info!(
                provider = p.name(),
                model = p.settings.model,
                "triage uses a language model; the embedded engine is the fallback"
            );
        }
        let stop = Arc::new(tokio::sync::watch::channel(false).0);
        let settings = Arc::new(settings);
        let articles =
            Arc::new(crate::search::articles::ArticleIndex::new(ai.e5().map(|e| e.seed_centering().clone())));
        Ok(Self {
            db,
            ai,
            triage_provider,
            suggest_provider,
            mailer,
            settings,
            stop,
            articles,
            clock: Clock::default(),
            rules: Arc::default(),
            webhook_clients: Arc::default(),
        })
    }

    /// The address of ticket `ticket`'s page.
    pub(crate) fn link(&self, ticket: TicketId) -> String {
        format!("{}/tickets/{ticket}", self.settings.app_url)
    }

    /// Queues `email` as part of ticket `ticket_id`'s conversation (threaded to its first message).
    async fn queue_ticket_email(&self, email: Email, ticket_id: TicketId) -> anyhow::Result<()> {
        let email = self.threaded(email, ticket_id).await?;
        self.queue_email(email).await
    }

    /// `email` as part of ticket `ticket_id`'s conversation: an answer to it comes back to the ticket.
    pub(crate) async fn threaded(&self, email: Email, ticket_id: TicketId) -> anyhow::Result<Email> {
        let root = self.db.thread_root(ticket_id).await?;
        Ok(email.about(ticket_id, root, self.mailer.from()))
    }

    async fn queue_email(&self, email: Email) -> anyhow::Result<()> {
        crate::mail::queue(&self.db, &email).await
    }

    /// The articles nearest in meaning to `text` (cosine at least `min`, the `k` best first), compared with
    /// the language means of the team's tickets taken out; none without the multilingual model.
    pub async fn nearest_articles(
        &self,
        text: &str,
        public_only: bool,
        (k, min): (usize, f32),
    ) -> anyhow::Result<Vec<(i64, f32)>> {
        let Some((query, lang)) = self.ai.search_vector(text).await? else { return Ok(Vec::new()) };
        self.ai.index.sync(&self.db).await?;
        let Some(centering) = self.ai.index.centering() else { return Ok(Vec::new()) };
        self.articles.sync(&self.db).await?;
        Ok(self.articles.nearest(&query, lang, &centering, public_only, (k, min)))
    }

    /// The names of the mailboxes this process reads (each has a poll job the scheduler keeps queued).
    pub fn mailbox_names(&self) -> Vec<String> {
        self.settings.mail.mailboxes.iter().map(|m| m.name.clone()).collect()
    }

    /// Every job kind of the pipeline with its handler.
    pub fn registry(&self) -> Registry {
        Registry::new()
            .with(JobKind::TicketCreated, Step(self.clone(), triage))
            .with(JobKind::AiRetrain, Step(self.clone(), retrain))
            .with(JobKind::TicketRoute, Step(self.clone(), route))
            .with(JobKind::TicketNotify, Step(self.clone(), notify_assignee))
            .with(JobKind::TicketResolved, Step(self.clone(), notify_resolved))
            .with(JobKind::CommentCreated, Step(self.clone(), notify_reply))
            .with(JobKind::UserSignedUp, Step(self.clone(), welcome))
            .with(JobKind::EmailSend, Step(self.clone(), send_email))
            .with(JobKind::SlaCheck, Step(self.clone(), sla_check))
            .with(JobKind::AiVectors, Step(self.clone(), fill_search_vectors))
            .with(JobKind::AiFinetune, Step(self.clone(), finetune))
            .with(JobKind::MailIngest, Step(self.clone(), ingest_mail))
            .with(JobKind::TicketVectors, Step(self.clone(), ticket_vectors))
            .with(JobKind::KbPropose, Step(self.clone(), propose_articles))
            .with(JobKind::MailAnswer, Step(self.clone(), answer_by_mail))
            .with(JobKind::TicketSummarize, Step(self.clone(), summarize))
            .with(JobKind::RulesRun, Step(self.clone(), crate::desk::rules::run))
            .with(JobKind::WebhookDeliver, Step(self.clone(), crate::desk::webhooks::deliver))
            .with_if(!self.settings.mail.mailboxes.is_empty(), JobKind::MailPoll, || MailPoll(self.clone()))
    }

    /// Enqueues a retraining if enough tickets were labelled since the last one.
    pub async fn maybe_retrain(&self) -> anyhow::Result<()> {
        let labelled = self.db.count_labelled().await?;
        let trained_on = self.ai.status(&self.db).await?.trained_on;
        if let Some(job) = self.ai.retrain_job(labelled, trained_on) {
            self.db.enqueue(&job).await?;
        }
        Ok(())
    }
}

/// Step 1: category, priority, skills, the note and the SLA deadline; then routing.
async fn triage(p: Pipeline, job: Job) -> anyhow::Result<()> {
    let TicketPayload { ticket_id, by_mail } = payload(&job)?;
    let next = NewJob {
        kind: JobKind::TicketRoute,
        payload: serde_json::json!({ "ticket_id": ticket_id }),
        idempotency_key: ticket_id.to_string(),
    };
    let Some(ticket) = p.db.ticket(ticket_id).await? else {
        tracing::warn!(%ticket_id, "ticket.created for a ticket that no longer exists");
        return Ok(());
    };
    if by_mail && crate::desk::settings::email_answers(&p.db).await? {
        // Beside triage: the answer does not wait for it (queued once: the key).
        p.db.enqueue(&answer_job(ticket_id)).await?;
    }
    if ticket.triaged_at.is_some() {
        // Triaged by an earlier attempt that then failed to finish: make sure routing is queued.
        p.db.enqueue(&next).await?;
        return Ok(());
    }
    let started = std::time::Instant::now();
    // The AI reads the ticket with what its text files (logs, JSON, CSV) say.
    let mut read = ticket.clone();
    read.description = crate::desk::attachments::with_file_text(&p.db, ticket.id, &ticket.description).await?;
    let answer = p.ai.triage(&p.db, &read, None).await?;
    let (triage, remarks) = match &p.triage_provider {
        None => (answer.triage, Vec::new()),
        Some(provider) => with_provider(provider, &read, answer.triage, &answer.taxonomy, &answer.similar).await,
    };
    let priority: Priority = triage.priority.value.parse().unwrap_or(Priority::Medium);
    let duplicate = duplicate_of(&p, &ticket, answer.embedding.clone()).await?;
    let write = TriageWrite {
        deadline: Some(ticket.created_at + p.settings.sla.for_priority(priority)),
        triage,
        note: answer.note,
        embedding: answer.embedding,
        remarks,
        duplicate,
    };
    crate::metrics::triage(&write.triage.engine, started.elapsed().as_secs_f64());
    let applied = p.db.apply_triage(ticket_id, &write, &next).await?;
    if p.ai.multilingual() {
        // Its multilingual vector in a job of its own: the assignee's e-mail does not wait for it. (Should this
        // enqueue be lost, the minute's `sla.check` finds the ticket without a vector.)
        let job = NewJob {
            kind: JobKind::TicketVectors,
            payload: serde_json::json!({ "ticket_id": ticket_id }),
            idempotency_key: ticket_id.to_string(),
        };
        p.db.enqueue(&job).await?;
    }
    tracing::info!(
        ticket = ticket.number,
        applied,
        engine = write.triage.engine,
        category = ?write.triage.category.as_ref().map(|g| &g.value),
        priority = write.triage.priority.value,
        ms = started.elapsed().as_millis() as u64,
        "triaged"
    );
    Ok(())
}

/// Open tickets filed before a new one that it is compared with (the newest).
const DUPLICATE_CANDIDATES: i64 = 500;
/// Likeness from which a new ticket is flagged as a duplicate: cosine of the sentence embeddings, or of hashed
/// word vectors without the model. Stricter than the hint shown while typing (0.7 / 0.35).
const DUPLICATE_SEMANTIC: f32 = 0.85;
const DUPLICATE_LEXICAL: f32 = 0.6;

/// The open, unmerged ticket filed before `ticket` that reads most like it, when alike enough to flag.
async fn duplicate_of(
    p: &Pipeline,
    ticket: &Ticket,
    embedding: Option<Vec<f32>>,
) -> anyhow::Result<Option<(i64, f32)>> {
    let candidates = p.db.open_tickets_before(ticket.number, DUPLICATE_CANDIDATES).await?;
    if candidates.is_empty() {
        return Ok(None);
    }
    let text = ticket.text();
    tokio::task::spawn_blocking(move || {
        let texts: Vec<String> =
            candidates.iter().map(|c| crate::model::ticket_text(&c.title, &c.description)).collect();
        let (scores, semantic) = crate::search::likeness(
            &text,
            embedding,
            texts.iter().zip(&candidates).map(|(t, c)| (t.as_str(), c.embedding.as_deref())),
        );
        let threshold = if semantic { DUPLICATE_SEMANTIC } else { DUPLICATE_LEXICAL };
        candidates
            .iter()
            .zip(scores)
            .filter(|(_, s)| *s >= threshold)
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(c, s)| (c.number, s))
    })
    .await
    .context("the duplicate check failed")
}

/// Asks the language model; on any failure keeps the embedded engine's answer and says why. A category the
/// model gave outside the taxonomy is dropped and the embedded engine's kept.
async fn with_provider(
    provider: &Provider,
    ticket: &crate::model::Ticket,
    local: smart_ticket_ai::triage::Triage,
    taxonomy: &smart_ticket_ai::triage::Taxonomy,
    similar: &[crate::providers::Grounding],
) -> (smart_ticket_ai::triage::Triage, Vec<String>) {
    match provider.triage(&ticket.title, &ticket.description, taxonomy, similar).await {
        Ok(mut answer) => {
            let mut remarks: Vec<String> =
                answer.adjustments.iter().map(|a| format!("{}: {a}", provider.name())).collect();
            if answer.triage.category.is_none() && local.category.is_some() {
                answer.triage.category = local.category.clone();
                remarks.push(format!("{}: no usable category; kept the embedded engine's", provider.name()));
            }
            (answer.triage, remarks)
        }
        Err((failure, attempts)) => {
            provider.record_fallback();
            let what = match failure.kind {
                crate::providers::FailureKind::Timeout => "timed out".to_owned(),
                crate::providers::FailureKind::CircuitOpen => "is paused after repeated failures".to_owned(),
                _ => format!("failed ({})", failure.detail),
            };
            let tries = if attempts == 1 { "1 attempt".to_owned() } else { format!("{attempts} attempts") };
            let remark = if attempts == 0 {
                format!("{} {what}; triaged locally", provider.name())
            } else {
                format!("{} {what} after {tries}; triaged locally", provider.name())
            };
            tracing::warn!(ticket = ticket.number, remark, "provider fallback");
            (local, vec![remark])
        }
    }
}

/// Retrains the AI on every labelled ticket.
async fn retrain(p: Pipeline, _job: Job) -> anyhow::Result<()> {
    p.ai.retrain(&p.db).await?;
    let labelled = p.db.count_labelled().await?;
    if let Some(job) = p.ai.finetune_job(labelled, p.settings.finetune.every) {
        p.db.enqueue(&job).await?;
    }
    Ok(())
}

/// Fine-tunes the sentence model on the labelled tickets, swapping it in only if it proves better.
async fn finetune(p: Pipeline, _job: Job) -> anyhow::Result<()> {
    p.ai.finetune(&p.db, p.settings.finetune).await?;
    Ok(())
}

/// Step 2: choose the assignee (see [`routing::choose`]) and queue their notification.
async fn route(p: Pipeline, job: Job) -> anyhow::Result<()> {
    let TicketPayload { ticket_id, .. } = payload(&job)?;
    let routed = match p.db.route_ticket(ticket_id, routing::choose, |d| notify_job(ticket_id, d.assignee)).await {
        Err(crate::db::StoreError::NotFound) => return Ok(()),
        other => other?,
    };
    match routed {
        Routed::Assigned(d) => tracing::info!(%ticket_id, assignee = d.email, reason = d.reason, "routed"),
        Routed::AlreadyAssigned => tracing::info!(%ticket_id, "already assigned: routing left it alone"),
        Routed::NobodyAvailable => anyhow::bail!("no moderator or admin exists to route ticket {ticket_id} to"),
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
struct NotifyPayload {
    ticket_id: TicketId,
    assignee: UserId,
}

/// Step 3: tell the assignee what the ticket is and what to look at first.
async fn notify_assignee(p: Pipeline, job: Job) -> anyhow::Result<()> {
    let NotifyPayload { ticket_id, assignee } = payload(&job)?;
    let Some(t) = p.db.ticket(ticket_id).await? else { return Ok(()) };
    if t.assigned_to != Some(assignee) {
        return Ok(()); // Reassigned since: the new assignee has their own notification.
    }
    let Some(to) = t.assignee_email.clone() else { return Ok(()) };
    let subject = format!("[#{}] {} priority: {}", t.number, t.priority, t.title);
    let ctx = context! {
        number => t.number, title => t.title, priority => t.priority.as_str(), category => t.category,
        skills => t.skills, note => t.helpful_notes, reason => t.routing_reason.as_deref().unwrap_or("assigned by an admin"),
        deadline => t.deadline.map(|d| d.0.format("%Y-%m-%d %H:%M UTC").to_string()), link => p.link(t.id),
    };
    p.queue_ticket_email(render("assigned", format!("assigned:{ticket_id}:{assignee}"), &to, subject, ctx)?, ticket_id)
        .await
}

/// The requester learns their ticket was resolved, and how.
async fn notify_resolved(p: Pipeline, job: Job) -> anyhow::Result<()> {
    let TicketPayload { ticket_id, .. } = payload(&job)?;
    let Some(t) = p.db.ticket(ticket_id).await? else { return Ok(()) };
    let subject = format!("[#{}] Resolved: {}", t.number, t.title);
    let ctx = context! { number => t.number, title => t.title, resolution => t.resolution, link => p.link(t.id) };
    let key = format!("resolved:{}", job.idempotency_key);
    p.queue_ticket_email(render("resolved", key, &t.requester_email, subject, ctx)?, t.id).await
}

#[derive(Debug, Deserialize)]
struct CommentPayload {
    ticket_id: TicketId,
    comment_id: i64,
}

/// The requester learns of a public reply by someone else.
async fn notify_reply(p: Pipeline, job: Job) -> anyhow::Result<()> {
    let CommentPayload { ticket_id, comment_id } = payload(&job)?;
    let Some(t) = p.db.ticket(ticket_id).await? else { return Ok(()) };
    let comments = p.db.comments(ticket_id, false).await?;
    let Some(c) = comments.into_iter().find(|c| c.id == comment_id) else { return Ok(()) };
    // The conversation grew: the model's summary of it, when one is configured and it is long.
    crate::desk::summaries::queue_if_long(&p, &t).await?;
    if c.author_id == t.created_by {
        return Ok(()); // The requester's own message.
    }
    let subject = format!("[#{}] New reply: {}", t.number, t.title);
    let ctx = context! { number => t.number, title => t.title, author => c.author_email, body => c.body, link => p.link(t.id) };
    // A person's words relayed: not an automatic mail, so the customer's auto-responder may answer it.
    let email =
        Email { automatic: false, ..render("reply", format!("reply:{comment_id}"), &t.requester_email, subject, ctx)? };
    p.queue_ticket_email(email, t.id).await
}

#[derive(Debug, Deserialize)]
struct UserPayload {
    user_id: UserId,
    /// Made for someone who wrote in by e-mail: they have no password yet.
    #[serde(default)]
    by_mail: bool,
}

/// How long the link in the welcome of an account made by mail lets its owner set a first password.
const FIRST_PASSWORD_TTL: chrono::Duration = chrono::Duration::days(7);

/// Welcomes a new account; one made for someone who wrote in by e-mail gets a link to set its first password.
async fn welcome(p: Pipeline, job: Job) -> anyhow::Result<()> {
    let UserPayload { user_id, by_mail } = payload(&job)?;
    let Some(u) = p.db.user_by_id(user_id).await? else { return Ok(()) };
    let key = format!("welcome:{user_id}");
    if !by_mail {
        let ctx = context! { email => u.email, link => p.settings.app_url };
        return p.queue_email(render("welcome", key, &u.email, "Welcome to Smart Ticket".into(), ctx)?).await;
    }
    if p.db.email_sent(&key).await? {
        return Ok(());
    }
    let token = crate::secret::random_token();
    let until = Ts::now() + FIRST_PASSWORD_TTL;
    p.db.create_password_reset(&crate::auth::session_id_for_cookie(&token), u.id, until).await?;
    let link = format!("{}/reset?token={token}", p.settings.app_url);
    let ctx = context! { email => u.email, link, days => FIRST_PASSWORD_TTL.num_days(), tickets => format!("{}/tickets", p.settings.app_url) };
    let subject = "Your requests at Smart Ticket".to_owned();
    // Keyed like every welcome: sent once, even if this job runs again (a spare link then simply expires).
    p.queue_email(render("welcome_mail", key, &u.email, subject, ctx)?).await
}

/// Delivers one email unless its notification was sent before.
async fn send_email(p: Pipeline, job: Job) -> anyhow::Result<()> {
    let email: Email = payload(&job)?;
    if p.db.email_sent(&email.key).await? {
        return Ok(());
    }
    // Remembered before it leaves, so an answer to it always finds its ticket.
    if let Some(t) = &email.thread {
        p.db.remember_thread(&t.message_id, t.ticket_id).await?;
    }
    if let Err(e) = p.mailer.send(&email).await {
        crate::metrics::email(p.mailer.transport_name(), "failed");
        return Err(e);
    }
    crate::metrics::email(p.mailer.transport_name(), "sent");
    p.db.record_email(&email.key, &email.to, &email.subject, p.mailer.transport_name()).await?;
    tracing::info!(key = email.key, to = email.to, transport = p.mailer.transport_name(), "email sent");
    Ok(())
}

/// Step 1b, beside routing: the ticket's multilingual vector (for suggestions and search across languages).
async fn ticket_vectors(p: Pipeline, job: Job) -> anyhow::Result<()> {
    let TicketPayload { ticket_id, .. } = payload(&job)?;
    let Some(ticket) = p.db.ticket(ticket_id).await? else { return Ok(()) };
    store_search_vector(&p, ticket_id, &ticket.title, &ticket.description).await
}

/// Computes and stores one ticket's multilingual vector (nothing without the model, or if it has one).
async fn store_search_vector(p: &Pipeline, id: TicketId, title: &str, description: &str) -> anyhow::Result<()> {
    if let Some((v, language)) = p.ai.search_vector(&crate::model::ticket_text(title, description)).await? {
        p.db.fill_search_vector(id, &v, language).await?;
    }
    Ok(())
}

/// Proposes knowledge-base articles for repeated problems ([`crate::desk::proposals::refresh`]).
async fn propose_articles(p: Pipeline, _job: Job) -> anyhow::Result<()> {
    crate::desk::proposals::refresh(&p).await.map(|_| ())
}

/// The `mail.answer` job of a ticket filed by e-mail.
fn answer_job(ticket_id: TicketId) -> NewJob {
    NewJob {
        kind: JobKind::MailAnswer,
        payload: serde_json::json!({ "ticket_id": ticket_id }),
        idempotency_key: ticket_id.to_string(),
    }
}

/// A language model's summary of a long conversation ([`crate::desk::summaries::summarize`]).
async fn summarize(p: Pipeline, job: Job) -> anyhow::Result<()> {
    let TicketPayload { ticket_id, .. } = payload(&job)?;
    crate::desk::summaries::summarize(&p, ticket_id).await
}

/// Answers a ticket filed by e-mail with help-centre articles ([`crate::desk::mail_answers::answer`]).
async fn answer_by_mail(p: Pipeline, job: Job) -> anyhow::Result<()> {
    let TicketPayload { ticket_id, .. } = payload(&job)?;
    crate::desk::mail_answers::answer(&p, ticket_id).await
}

/// Tickets given their multilingual vector per `ai.vectors` job.
const VECTOR_BATCH: i64 = 32;

/// Turns a received message into a ticket or a reply ([`crate::mail::inbound::ingest`]).
async fn ingest_mail(p: Pipeline, job: Job) -> anyhow::Result<()> {
    let id = job.payload["inbound_id"].as_i64().context("the job names no inbound_id")?;
    crate::mail::inbound::ingest(&p.db, id, &crate::mail::inbound::Limits::of(&p.settings.mail)).await
}

/// A mailbox's poll job ([`crate::mail::imap::poll`]): recurring, one per mailbox.
struct MailPoll(Pipeline);

impl JobHandler for MailPoll {
    fn run<'a>(&'a self, job: &'a Job) -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + 'a>> {
        Box::pin(async move {
            let p = &self.0;
            let name = job.payload["mailbox"].as_str().context("the job names no mailbox")?;
            let mb = p.settings.mail.mailboxes.iter().find(|m| m.name == name);
            let mb = mb.with_context(|| format!("mailbox {name:?} is not configured in this process"))?;
            crate::mail::imap::poll(&p.db, mb, p.settings.mail.max_message_bytes, p.stop.subscribe()).await
        })
    }

    fn recurring(&self) -> Option<chrono::Duration> {
        let poll = self.0.settings.mail.mailboxes.first().map(|m| m.poll).unwrap_or_default();
        chrono::Duration::from_std(poll).ok()
    }
}

/// The poll job of mailbox `name`.
pub fn mailbox_job(name: &str) -> NewJob {
    NewJob {
        kind: JobKind::MailPoll,
        payload: serde_json::json!({ "mailbox": name }),
        idempotency_key: format!("imap:{name}"),
    }
}

/// Gives tickets filed before the multilingual model was installed their vector (a batch per job, then the next
/// job while any remain), so suggestions and search find them again.
async fn fill_search_vectors(p: Pipeline, _job: Job) -> anyhow::Result<()> {
    if !p.ai.multilingual() {
        return Ok(());
    }
    let missing = p.db.tickets_missing_search_vector(VECTOR_BATCH).await?;
    for t in &missing {
        store_search_vector(&p, t.id, &t.title, &t.description).await?;
    }
    if missing.len() as i64 == VECTOR_BATCH {
        let last = missing.last().map(|m| m.id.to_string()).unwrap_or_default();
        p.db.enqueue(&NewJob {
            kind: JobKind::AiVectors,
            payload: serde_json::json!({}),
            idempotency_key: format!("vectors-after-{last}"),
        })
        .await?;
    }
    tracing::info!(tickets = missing.len(), "gave tickets filed before the multilingual model their vectors");
    Ok(())
}

/// Escalates every open ticket past its response deadline, once per breach: history and an email to each admin.
/// Also sweeps succeeded jobs older than a week and expired sessions, and starts giving tickets filed before the
/// multilingual model their vectors when any lack one.
async fn sla_check(p: Pipeline, _job: Job) -> anyhow::Result<()> {
    let now = Ts::now();
    crate::desk::rules::scan(&p, p.clock.now()).await?;
    if p.ai.multilingual() && !p.db.tickets_missing_search_vector(1).await?.is_empty() {
        let minute = now.0.timestamp() / 60;
        let job = NewJob {
            kind: JobKind::AiVectors,
            payload: serde_json::json!({}),
            idempotency_key: format!("vectors-{minute}"),
        };
        p.db.enqueue(&job).await?;
    }
    let admins = p.db.admin_emails().await?;
    loop {
        let breaches = p.db.sla_breaches(now, 100).await?;
        if breaches.is_empty() {
            break;
        }
        for b in &breaches {
            let deadline = b.deadline.0.format("%Y-%m-%d %H:%M UTC").to_string();
            let mut jobs = Vec::new();
            for admin in &admins {
                let ctx = context! {
                    number => b.number, title => b.title, priority => b.priority, deadline => deadline,
                    assignee => b.assignee_email, link => p.link(b.id),
                };
                let key = format!("sla:{}:{}:{admin}", b.id, b.deadline.0.timestamp());
                let subject = format!("[#{}] SLA breached ({}): {}", b.number, b.priority, b.title);
                let email = render("sla", key.clone(), admin, subject, ctx)?;
                jobs.push(NewJob {
                    kind: JobKind::EmailSend,
                    idempotency_key: key,
                    payload: serde_json::to_value(&email)?,
                });
            }
            if p.db.escalate_breach(b, &jobs).await? {
                tracing::warn!(ticket = b.number, deadline, "SLA breached: escalated to the admins");
            }
        }
    }
    p.db.sweep(now + chrono::Duration::days(-7)).await?;
    Ok(())
}

/// How often the knowledge base's article proposals are refreshed.
const PROPOSE_EVERY_SECONDS: i64 = 6 * 3600;

/// Enqueues an `sla.check` once a minute (one per minute across all processes: the key is the minute) and a
/// `kb.propose` every six hours (keyed by the window), and makes sure each of `mailboxes` has its poll job
/// (queued again should it ever have died).
pub async fn schedule(
    db: Db,
    mailboxes: Vec<String>,
    wake: Arc<tokio::sync::Notify>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        for name in &mailboxes {
            let job = mailbox_job(name);
            match db.enqueue_or_revive(&job).await {
                Ok(true) => wake.notify_one(),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, mailbox = name, "could not schedule the mailbox's poll"),
            }
        }
        let minute = Ts::now().0.timestamp() / 60;
        let job = NewJob {
            kind: JobKind::SlaCheck,
            payload: serde_json::json!({}),
            idempotency_key: format!("minute-{minute}"),
        };
        let window = Ts::now().0.timestamp() / PROPOSE_EVERY_SECONDS;
        let propose = crate::desk::proposals::refresh_job(&format!("window-{window}"));
        for (job, what) in [(job, "the SLA check"), (propose, "the article proposals")] {
            match db.enqueue(&job).await {
                Ok(true) => wake.notify_one(),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "could not schedule {what}"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(60)) => {}
            _ = stop.changed() => return,
        }
    }
}
