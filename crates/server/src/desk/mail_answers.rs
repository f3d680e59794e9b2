//! Answers by e-mail: when an admin turned them on (`email_answers`, [`super::settings`]), a ticket filed by
//! e-mail is answered at once with up to three published public articles whose meaning is near enough to it
//! ([`MIN_COSINE`], calibrated by `smart-ticket eval answers`). The ticket stays open and is routed as usual. The
//! customer's "solved" reply, or the mail's link (a page that needs no sign-in: the link's token is the
//! key), resolves it as deflected: counted as a deflection for the article, once per customer.

use minijinja::context;
use smart_ticket_domain::{Resolution, Status};

use super::Desk;
use super::error::{AppError, AppResult};
use crate::db::{Article, Db, MailAnswer, StoreResult, TicketPatch};
use crate::model::{Actor, Ticket, TicketId, Ts};
use crate::pipeline::Pipeline;

/// The cosine (multilingual vectors less the language means of the team's tickets) from which an article is
/// mailed as an answer: on the helpdesk-tickets dev side (`smart-ticket eval answers`), the lowest threshold at
/// which at least nine mails in ten carry the right article (93 %, answering 16 % of the questions an article
/// answers; docs/benchmarks.md).
pub const MIN_COSINE: f32 = 0.72;

/// Articles one answer offers at most.
const OFFERED: usize = 3;

/// How long the mail's "this solved it" link works.
const LINK_DAYS: i64 = 30;

/// The job's work: mails the answer to `ticket_id` when answers are on, the ticket is still active, and
/// articles match it (nothing without the multilingual model). Sent at most once per ticket.
pub(crate) async fn answer(p: &Pipeline, ticket_id: TicketId) -> anyhow::Result<()> {
    if !super::settings::email_answers(&p.db).await? {
        return Ok(());
    }
    let Some(t) = p.db.ticket(ticket_id).await?.filter(|t| t.status.is_active() && t.merged_into.is_none()) else {
        return Ok(());
    };
    if p.db.mail_answer(ticket_id).await?.is_some() {
        return Ok(());
    }
    if !p.ai.multilingual() {
        tracing::info!(ticket = t.number, "answers by e-mail need the multilingual model (scripts/fetch-model)");
        return Ok(());
    }
    let near = p.nearest_articles(&t.text(), true, (OFFERED, MIN_COSINE)).await?;
    let near: Vec<i64> = near.into_iter().map(|(id, _)| id).collect();
    let articles = super::articles::public_in_order(&p.db, &near).await?;
    if articles.is_empty() {
        return Ok(());
    }
    let token = crate::secret::random_token();
    let email = p.threaded(answer_mail(p, &t, &articles, &token)?, ticket_id).await?;
    let ids: Vec<i64> = articles.iter().map(|a| a.id).collect();
    if p.db.record_mail_answer(ticket_id, &ids, &token_hash(&token), &crate::mail::job(&email)?).await? {
        crate::metrics::mail_answer("mailed");
        tracing::info!(ticket = t.number, articles = ?ids, "answered by e-mail with help-centre articles");
    }
    Ok(())
}

fn answer_mail(p: &Pipeline, t: &Ticket, articles: &[Article], token: &str) -> anyhow::Result<crate::mail::Email> {
    let app = &p.settings.app_url;
    let listed: Vec<minijinja::Value> = articles
        .iter()
        .map(|a| {
            let url = format!("{app}{}", super::articles::article_path(a.id, &a.title));
            context! { title => a.title, url, excerpt => crate::markdown::excerpt(&a.body, 240) }
        })
        .collect();
    let ctx = context! {
        number => t.number, title => t.title, articles => listed,
        solved_link => format!("{app}/help/answered/{token}"), days => LINK_DAYS,
    };
    let subject = format!("[#{}] Answers that may help: {}", t.number, t.title);
    crate::mail::render("answer", format!("answer:{}", t.id), &t.requester_email, subject, ctx)
}

/// What the link's token is stored as.
fn token_hash(token: &str) -> String {
    crate::secret::sha256_hex(token)
}

/// Whether a reply's new text says the problem is solved: a short message (at most twelve words, no
/// question) with a word for solved in one of the five languages and none for "not" or "still".
pub fn says_solved(text: &str) -> bool {
    const SOLVED: &[&str] = &[
        "solved",
        "resolved",
        "fixed",
        "worked",
        "gelöst",
        "erledigt",
        "behoben",
        "résolu",
        "resolu",
        "réglé",
        "regle",
        "resuelto",
        "solucionado",
        "resolvido",
        "solucionou",
        "resolveu",
        "funcionou",
    ];
    const NOT: &[&str] = &[
        "not", "no", "dont", "don't", "doesn't", "didn't", "isn't", "wasn't", "still", "unsolved", "nicht", "kein",
        "keine", "noch", "nie", "pas", "ne", "n'est", "toujours", "jamais", "non", "todavía", "todavia", "sigue",
        "nada", "não", "nao", "ainda", "nunca",
    ];
    let text = text.trim().to_lowercase();
    let words: Vec<&str> = text.split(|c: char| !c.is_alphanumeric() && c != '\'').filter(|w| !w.is_empty()).collect();
    !text.contains('?')
        && words.len() <= 12
        && words.iter().any(|w| SOLVED.contains(w))
        && !words.iter().any(|w| NOT.contains(w))
}

/// On a reply by mail: the article that answered `ticket`, when its requester says "solved" to a mailed
/// answer no one on the team replied after (their help, not the article's, would have solved it) while the
/// ticket is still active (or was solved by it already: a retried message).
pub(crate) async fn solved_by_reply(
    db: &Db,
    ticket: &Ticket,
    author: &crate::model::User,
    text: &str,
) -> StoreResult<Option<i64>> {
    if author.id != ticket.created_by || !says_solved(text) {
        return Ok(None);
    }
    let Some(answer) = db.mail_answer(ticket.id).await? else { return Ok(None) };
    if !ticket.status.is_active() && answer.solved_at.is_none() {
        return Ok(None);
    }
    let staff_since = db
        .comments(ticket.id, false)
        .await?
        .iter()
        .any(|c| c.author_id != ticket.created_by && c.created_at > answer.sent_at);
    Ok((!staff_since).then(|| answer.solved_article.or(answer.articles.first().copied())).flatten())
}

/// Marks `ticket`'s answer solved by `article`, resolves the ticket as deflected (unless it is resolved
/// already) and counts the deflection (once per customer and article). Each step is safe to repeat, and the
/// mark comes first, so a repeat after a crash finishes the rest.
pub(crate) async fn solve(db: &Db, ticket: &Ticket, article: i64) -> StoreResult<()> {
    if db.solve_mail_answer(ticket.id, article).await? {
        crate::metrics::mail_answer("solved");
        tracing::info!(ticket = ticket.number, article, "ticket solved by a mailed help-centre article");
    }
    if ticket.status.is_active() {
        let title = db.article(article).await?.map_or_else(|| format!("#{article}"), |a| a.title);
        let text = format!("Answered by the help-centre article \"{title}\": the customer said it solved the problem.");
        let patch = TicketPatch {
            status: Some(Status::Resolved),
            resolution: Some(Resolution::parse(&text.chars().take(Resolution::MAX).collect::<String>())?),
            ..TicketPatch::default()
        };
        db.update_ticket(ticket.id, Actor::User(ticket.created_by), &patch).await?;
    }
    db.record_deflection(article, ticket.created_by).await?;
    Ok(())
}

/// What the mail's link shows: the ticket, the articles offered, and which solved it.
#[derive(Debug, Clone)]
pub struct AnswerView {
    pub number: i64,
    pub title: String,
    /// The ticket still waits on the team (an article can still close it).
    pub active: bool,
    pub articles: Vec<super::articles::SuggestedArticle>,
    pub solved_article: Option<i64>,
}

/// The answer of the link's token (404 for an unknown one; 409 once it has expired).
async fn by_token(desk: &Desk, token: &str) -> AppResult<(MailAnswer, Ticket)> {
    let answer = desk.db.mail_answer_by_token(&token_hash(token)).await?.ok_or(AppError::NotFound)?;
    if Ts::now().0 - answer.sent_at.0 > chrono::Duration::days(LINK_DAYS) {
        return Err(AppError::Conflict(format!(
            "this link worked for {LINK_DAYS} days and has expired: reply \"solved\" to the mail instead"
        )));
    }
    let ticket = desk.db.ticket(answer.ticket_id).await?.ok_or(AppError::NotFound)?;
    Ok((answer, ticket))
}

pub(crate) async fn answer_view(desk: &Desk, token: &str) -> AppResult<AnswerView> {
    let (answer, ticket) = by_token(desk, token).await?;
    let articles = super::articles::public_in_order(&desk.db, &answer.articles).await?;
    Ok(AnswerView {
        number: ticket.number,
        title: ticket.title,
        active: ticket.status.is_active(),
        articles: articles.into_iter().map(|a| super::articles::SuggestedArticle::of(None, a)).collect(),
        solved_article: answer.solved_article,
    })
}

/// "This solved it" from the mail's link: `article` (one the mail offered) answered the ticket.
pub(crate) async fn solved_by_link(desk: &Desk, token: &str, article: i64) -> AppResult<AnswerView> {
    let (answer, ticket) = by_token(desk, token).await?;
    if !answer.articles.contains(&article) {
        return Err(AppError::field("article", "this mail did not offer that article"));
    }
    if ticket.status.is_active() {
        solve(&desk.db, &ticket, article).await?;
    }
    answer_view(desk, token).await
}
