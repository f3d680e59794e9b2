//! The `ticket.created` workflow, as durable jobs: triage with the AI, then route to the best moderator,
//! then notify the assignee. Each step is its own job, idempotent, and enqueues the next in the transaction
//! that records its result, so a crash at any point resumes where it stopped and never repeats a step.

use anyhow::Context;
use serde::Deserialize;
use smart_ticket_domain::Priority;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::ai::Ai;
use crate::config::PipelineSettings;
use crate::db::{Db, Job, NewJob, TriageWrite};
use crate::jobs::{JobHandler, Registry};
use crate::model::TicketId;

/// What every step shares.
#[derive(Clone)]
pub struct Pipeline {
    pub db: Db,
    pub ai: Arc<Ai>,
    pub settings: Arc<PipelineSettings>,
}

#[derive(Debug, Deserialize)]
struct TicketPayload {
    ticket_id: TicketId,
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
    pub fn new(db: Db, settings: PipelineSettings) -> Self {
        let ai = Ai::load(&settings.model_dir, settings.ai_retrain_every);
        Self { db, ai, settings: Arc::new(settings) }
    }

    /// Every job kind of the pipeline with its handler.
    pub fn registry(&self) -> Registry {
        Registry::new()
            .with("ticket.created", Step(self.clone(), triage))
            .with("ai.retrain", Step(self.clone(), retrain))
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
    let TicketPayload { ticket_id } = payload(&job)?;
    let next = NewJob {
        kind: "ticket.route",
        payload: serde_json::json!({ "ticket_id": ticket_id }),
        idempotency_key: ticket_id.to_string(),
    };
    let Some(ticket) = p.db.ticket(ticket_id).await? else {
        tracing::warn!(%ticket_id, "ticket.created for a ticket that no longer exists");
        return Ok(());
    };
    if ticket.triaged_at.is_some() {
        // Triaged by an earlier attempt that then failed to finish: make sure routing is queued.
        p.db.enqueue(&next).await?;
        return Ok(());
    }
    let started = std::time::Instant::now();
    let answer = p.ai.triage(&p.db, &ticket, None).await?;
    let priority: Priority = answer.triage.priority.value.parse().unwrap_or(Priority::Medium);
    let write = TriageWrite {
        deadline: Some(ticket.created_at + p.settings.sla.for_priority(priority)),
        triage: answer.triage,
        note: answer.note,
        embedding: answer.embedding,
    };
    let applied = p.db.apply_triage(ticket_id, &write, &next).await?;
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

/// Retrains the AI on every labelled ticket.
async fn retrain(p: Pipeline, _job: Job) -> anyhow::Result<()> {
    p.ai.retrain(&p.db).await?;
    Ok(())
}
