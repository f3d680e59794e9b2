//! Articles proposed from repeated problems. The `kb.propose` job ([`refresh`]) clusters the tickets resolved in
//! the last [`WINDOW_DAYS`] whose problems and resolutions agree (`smart_ticket_ai::cluster`, as
//! `smart-ticket eval cluster` measures it), leaves out problems an article already answers (drafted from their
//! tickets, or near in meaning) and those a person already accepted or dismissed, ranks the rest by how often
//! and how recently they recur, and writes each a draft from its resolutions: extractive and cited by the
//! embedded engine, by the configured language model when there is one (still cited), personal data removed
//! either way. Nothing is published: a person turns a proposal into a draft article ([`accept`]) or sets it
//! aside ([`dismiss`]).

use smart_ticket_ai::cluster::{self, Item, Params};
use smart_ticket_domain::article::{ArticleAudience, ArticleBody, ArticleTitle, ProposalState};
use smart_ticket_domain::{JobKind, Role};
use std::collections::HashSet;

use super::articles::{language_of, must_write, problem_and_solution, store_draft, vector_bytes};
use super::{AppError, AppResult, AuthUser, Desk};
use crate::db::{Article, NewArticle, NewJob, NewProposal, Proposal, ResolvedRow};
use crate::model::Ts;
use crate::pipeline::Pipeline;
use crate::providers::Grounding;

/// How far back resolved tickets are clustered.
pub const WINDOW_DAYS: i64 = 90;
/// The "N resolved tickets in 30 days" of a proposal, and the half-life of a ticket's weight in its score.
pub const RECENT_DAYS: i64 = 30;
/// The fewest tickets a problem needs to be proposed.
pub const MIN_TICKETS: usize = 3;
/// The most resolved tickets one run clusters (the newest), and the most proposals it keeps.
const MAX_TICKETS: i64 = 3_000;
const MAX_PROPOSALS: usize = 50;
/// From this cosine (centred multilingual vectors) an article already answers a problem's typical ticket: the
/// threshold at which a mailed answer is right nine times in ten (`eval answers`; at 0.5 nearly every ticket
/// would count as answered once a few articles exist).
const ANSWERED_MIN_COSINE: f32 = super::mail_answers::MIN_COSINE;
/// How many of a problem's tickets a language model is given to write from.
const MODEL_TICKETS: usize = 8;

/// One repeated problem: its tickets (indexes into the rows read), the most typical first.
struct Found {
    members: Vec<usize>,
}

/// Runs the proposal job: replaces the open proposals; returns how many there are now.
pub(crate) async fn refresh(p: &Pipeline) -> anyhow::Result<usize> {
    let Some(e5) = p.ai.e5() else {
        tracing::warn!("article proposals need the multilingual model (scripts/fetch-model); none proposed");
        return Ok(0);
    };
    let now = Ts::now();
    let rows = p.db.resolved_since(Ts(now.0 - chrono::Duration::days(WINDOW_DAYS)), MAX_TICKETS).await?;
    let texts: Vec<(String, String)> = rows.iter().map(|r| (problem_text(r), r.resolution.clone())).collect();
    let found = tokio::task::spawn_blocking(move || repeated_problems(&e5, &texts)).await?;
    let mut covered: HashSet<i64> = p.db.article_source_tickets().await?.into_iter().collect();
    covered.extend(p.db.decided_proposal_tickets().await?.into_iter().flatten());
    let mut proposals = Vec::new();
    for f in found {
        let members: Vec<&ResolvedRow> = f.members.iter().map(|&i| &rows[i]).collect();
        if 2 * members.iter().filter(|r| covered.contains(&r.number)).count() >= members.len()
            || answered(p, members[0]).await?
        {
            continue;
        }
        proposals.push(propose(p, &members, now).await);
    }
    proposals.sort_by(|a, b| b.score.total_cmp(&a.score));
    proposals.truncate(MAX_PROPOSALS);
    p.db.replace_open_proposals(&proposals).await?;
    tracing::info!(tickets = rows.len(), proposals = proposals.len(), "proposed articles for repeated problems");
    Ok(proposals.len())
}

fn problem_text(r: &ResolvedRow) -> String {
    format!("{}\n{}", r.title, r.description)
}

/// The clusters of at least [`MIN_TICKETS`] tickets, each's members the most typical first.
fn repeated_problems(e5: &smart_ticket_ai::e5::E5, texts: &[(String, String)]) -> Vec<Found> {
    let problems: Vec<&str> = texts.iter().map(|t| t.0.as_str()).collect();
    let answers: Vec<&str> = texts.iter().map(|t| t.1.as_str()).collect();
    let items: Vec<Item> = cluster::embed_items(e5, &problems, &answers);
    let params = Params::default();
    cluster::clusters(&items, &params)
        .into_iter()
        .filter(|c| c.len() >= MIN_TICKETS)
        .map(|c| Found { members: cluster::typical_order(&items, &c, &params) })
        .collect()
}

/// Whether an article (any state) is already near the problem's typical ticket in meaning.
async fn answered(p: &Pipeline, typical: &ResolvedRow) -> anyhow::Result<bool> {
    Ok(!p.nearest_articles(&problem_text(typical), false, (1, ANSWERED_MIN_COSINE)).await?.is_empty())
}

/// The proposal for one problem's tickets (the most typical first): scored, and drafted by the language model
/// when one is configured and answers, extractively otherwise.
async fn propose(p: &Pipeline, members: &[&ResolvedRow], now: Ts) -> NewProposal {
    let age_days = |r: &ResolvedRow| (now.0 - r.resolved_at.0).num_seconds().max(0) as f64 / 86_400.0;
    let score = members.iter().map(|r| 0.5f64.powf(age_days(r) / RECENT_DAYS as f64)).sum();
    let recent = members.iter().filter(|r| age_days(r) <= RECENT_DAYS as f64).count() as i32;
    let names = requester_names(members);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let scrub = |text: &str| smart_ticket_ai::pii::scrub(text, &names);
    let mut draft = extractive(members, &scrub);
    if let Some(provider) = &p.suggest_provider {
        match written(provider, members, &scrub).await {
            Ok(d) => draft = d,
            Err(why) => {
                tracing::warn!(error = %why, "the language model did not write the proposed article; kept the extractive draft")
            }
        }
    }
    NewProposal {
        title: draft.title,
        body: draft.body,
        language: draft.language,
        category: most_common(members.iter().filter_map(|r| r.category.clone())),
        tickets: members.iter().map(|r| r.number).collect(),
        cited: draft.cited,
        recent_count: recent,
        score,
        last_resolved: members.iter().map(|r| r.resolved_at).max().unwrap_or(now),
        engine: draft.engine,
    }
}

/// Every requester's names (from their addresses), removed from whatever is drafted from any of the tickets.
fn requester_names(members: &[&ResolvedRow]) -> Vec<String> {
    let mut names: Vec<String> =
        members.iter().flat_map(|r| smart_ticket_ai::pii::names_in_email(&r.requester_email)).collect();
    names.sort();
    names.dedup();
    names
}

fn most_common<T: std::hash::Hash + Eq + Clone>(values: impl Iterator<Item = T>) -> Option<T> {
    let mut counts: Vec<(T, usize)> = Vec::new();
    for v in values {
        match counts.iter_mut().find(|(c, _)| *c == v) {
            Some((_, n)) => *n += 1,
            None => counts.push((v, 1)),
        }
    }
    // The first to reach the highest count wins ties (the members come most typical first).
    let best = counts.iter().map(|(_, n)| *n).max()?;
    counts.into_iter().find(|(_, n)| *n == best).map(|(v, _)| v)
}

/// A drafted article and where its text came from.
struct Draft {
    title: String,
    body: String,
    language: String,
    cited: Vec<i64>,
    engine: String,
}

/// The embedded engine's draft: in the language most of the tickets are written in, the problem of the most
/// typical such ticket and the resolution of the most typical such ticket that has one, both scrubbed.
fn extractive(members: &[&ResolvedRow], scrub: &(dyn Fn(&str) -> String + Sync)) -> Draft {
    let lang = |r: &ResolvedRow| smart_ticket_ai::lang::detect(&problem_text(r)).unwrap_or("en");
    let language = most_common(members.iter().map(|r| lang(r))).unwrap_or("en");
    let same: Vec<&ResolvedRow> = members.iter().copied().filter(|r| lang(r) == language).collect();
    let problem = same.first().copied().unwrap_or(members[0]);
    let solution = same.iter().copied().find(|r| !r.resolution.trim().is_empty()).unwrap_or(problem);
    let (title, body) = problem_and_solution(&problem.title, &problem.description, &solution.resolution, scrub);
    let mut cited = vec![problem.number, solution.number];
    cited.dedup();
    Draft { title, body, language: language.to_owned(), cited, engine: "local".into() }
}

/// The language model's draft from the most typical tickets, scrubbed before it is sent and after it is written.
async fn written(
    provider: &crate::providers::Provider,
    members: &[&ResolvedRow],
    scrub: &(dyn Fn(&str) -> String + Sync),
) -> anyhow::Result<Draft> {
    let given = &members[..members.len().min(MODEL_TICKETS)];
    let grounding: Vec<Grounding> = given
        .iter()
        .map(|r| Grounding {
            number: r.number,
            title: scrub(&r.title),
            category: r.category.clone(),
            priority: None,
            resolution: Some(scrub(&crate::markdown::excerpt(&r.resolution, 1_500))),
        })
        .collect();
    let problems: Vec<String> = given.iter().map(|r| scrub(&crate::markdown::excerpt(&r.description, 1_500))).collect();
    let w = provider.draft_article(&grounding, &problems).await.map_err(|f| anyhow::anyhow!("{f:?}"))?;
    let body = scrub(&w.body);
    let cited = if w.cited.is_empty() { vec![given[0].number] } else { w.cited };
    let language = smart_ticket_ai::lang::detect(&body).unwrap_or("en").to_owned();
    Ok(Draft { title: scrub(&w.title), body, language, cited, engine: w.engine })
}

/// The open proposals, the highest score first (staff).
pub(crate) async fn open_proposals(desk: &Desk, auth: &AuthUser, limit: i64) -> AppResult<Vec<Proposal>> {
    must_write(auth)?;
    Ok(desk.db.proposals(ProposalState::Open, limit).await?)
}

/// Turns an open proposal into a draft article citing its tickets (staff); an admin still publishes it.
pub(crate) async fn accept(desk: &Desk, auth: &AuthUser, id: i64) -> AppResult<Article> {
    must_write(auth)?;
    let proposal = open_proposal(desk, id).await?;
    let (title, body) =
        super::error::parse_both(ArticleTitle::parse(&proposal.title), ArticleBody::parse(&proposal.body))?;
    let new = NewArticle {
        language: language_of(Some(&proposal.language), body.as_str()).unwrap_or_else(|_| "en".into()),
        category: proposal.category.clone(),
        tags: Vec::new(),
        audience: ArticleAudience::Public,
        source_tickets: proposal.tickets.clone(),
        embedding: vector_bytes(desk, title.as_str(), body.as_str()).await?,
        title: title.as_str().to_owned(),
        body: body.as_str().to_owned(),
    };
    let article = store_draft(desk, auth, &new).await?;
    if !desk.db.decide_proposal(id, ProposalState::Accepted, Some(article.id), auth.user.id).await? {
        // Someone settled it meanwhile: take back the draft just written.
        desk.db.delete_article(article.id).await?;
        desk.pipeline.articles.remove(article.id);
        return Err(AppError::Conflict("this proposal was already accepted or dismissed".into()));
    }
    Ok(article)
}

/// Sets an open proposal aside (staff): the same problem is not proposed again.
pub(crate) async fn dismiss(desk: &Desk, auth: &AuthUser, id: i64) -> AppResult<()> {
    must_write(auth)?;
    open_proposal(desk, id).await?;
    if !desk.db.decide_proposal(id, ProposalState::Dismissed, None, auth.user.id).await? {
        return Err(AppError::Conflict("this proposal was already accepted or dismissed".into()));
    }
    Ok(())
}

async fn open_proposal(desk: &Desk, id: i64) -> AppResult<Proposal> {
    match desk.db.proposal(id).await? {
        Some(p) if p.state == ProposalState::Open => Ok(p),
        Some(_) => Err(AppError::Conflict("this proposal was already accepted or dismissed".into())),
        None => Err(AppError::NotFound),
    }
}

/// Queues a run of the proposal job now (admins); `false` when one is already waiting.
pub(crate) async fn request_refresh(desk: &Desk, auth: &AuthUser) -> AppResult<bool> {
    if auth.user.role != Role::Admin {
        return Err(AppError::Forbidden);
    }
    let queued = desk.db.enqueue(&refresh_job(&format!("asked-{}", Ts::now().0.timestamp_millis()))).await?;
    desk.wake_workers();
    Ok(queued)
}

/// The `kb.propose` job under `key` (the scheduler's key is the six-hour window, so one run per window).
pub fn refresh_job(key: &str) -> NewJob {
    NewJob { kind: JobKind::KbPropose, payload: serde_json::json!({}), idempotency_key: key.to_owned() }
}

/// The top open proposals as the dashboard's "unanswered topics": problems no article answers yet.
pub(crate) async fn unanswered_topics(desk: &Desk, limit: i64) -> AppResult<Vec<Topic>> {
    let rows = desk.db.proposals(ProposalState::Open, limit).await?;
    Ok(rows
        .into_iter()
        .map(|p| Topic { proposal: p.id, title: p.title, tickets: p.ticket_count, recent: p.recent_count })
        .collect())
}

/// A repeated problem without an article.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Topic {
    /// The proposal that would answer it.
    pub proposal: i64,
    pub title: String,
    /// Resolved tickets in the last 90 days.
    pub tickets: i32,
    /// Of which in the last 30 days.
    pub recent: i32,
}
