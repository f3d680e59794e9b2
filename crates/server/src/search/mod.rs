//! Search and similarity in one place: the in-memory vector index ([`index`]), the hybrid ticket search
//! (full-text matches and nearest vectors fused by reciprocal rank), how alike a draft is to open tickets,
//! and the hybrid reordering of a ticket's nearest resolved ones. The SQL side (full-text queries on both
//! backends) is in `db::tickets`.

pub mod articles;
pub mod index;

use anyhow::Context as _;
use smart_ticket_ai::retrieval;
use std::collections::HashMap;

use crate::db::{AssigneeFilter, TicketFilter};
use crate::db::{Db, vector_from_bytes};
use crate::model::{Ticket, User};

/// How alike `text` (with its embedding, when the model runs) is to each candidate (its text and stored
/// embedding): the cosine of the sentence embeddings, or of hashed word vectors without them. The flag says
/// which measure it was: their scales differ, so thresholds do too.
pub fn likeness<'a>(
    text: &str,
    dense: Option<Vec<f32>>,
    candidates: impl Iterator<Item = (&'a str, Option<&'a [u8]>)>,
) -> (Vec<f32>, bool) {
    use smart_ticket_ai::retrieval::{Doc, Mode, score};
    let semantic = dense.is_some();
    let mode = if semantic { Mode::Semantic } else { Mode::Lexical };
    let query = Doc::new(text, String::new(), dense);
    let scores = candidates
        .map(|(text, emb)| match emb.and_then(vector_from_bytes).filter(|_| semantic) {
            // Both embedded: the cosine alone (building the word vector would be wasted work).
            Some(dense) => score(mode, &query, &Doc { dense: Some(dense), ..Doc::default() }),
            None => score(mode, &query, &Doc::new(text, String::new(), None)),
        })
        .collect();
    (scores, semantic)
}

/// The first `k` of `near` (the vector index's nearest to a ticket reading `text`, best first, each with its
/// cosine) in hybrid order ([`retrieval::rerank`]), with their rows: the candidates in the ticket's language
/// `lang` reordered by their words and, when `english` (the ticket's English embedding, given beside the
/// multilingual index) is, the English model. A candidate's language is the stored one, else told from its words.
pub async fn hybrid_order(
    db: &Db,
    text: String,
    lang: Option<&'static str>,
    english: Option<Vec<f32>>,
    mut near: Vec<(i64, f32)>,
    k: usize,
) -> anyhow::Result<(Vec<(i64, f32)>, HashMap<i64, Ticket>)> {
    let numbers: Vec<i64> = near.iter().map(|(n, _)| *n).collect();
    let mut found = HashMap::new();
    let mut candidates = Vec::new();
    for row in db.rerank_rows(&numbers).await? {
        candidates.push((row.ticket.number, row.ticket.text(), row.embedding, row.language));
        found.insert(row.ticket.number, row.ticket);
    }
    let near = tokio::task::spawn_blocking(move || {
        let query = retrieval::Doc::new(&text, String::new(), None).hybrid(lang, english);
        let docs: HashMap<i64, retrieval::Doc> = candidates
            .into_iter()
            .map(|(n, text, embedding, language)| {
                let v = embedding.as_deref().and_then(vector_from_bytes).filter(|_| query.english.is_some());
                let lang = smart_ticket_ai::lang::of(language.as_deref(), &text);
                (n, retrieval::Doc::new(&text, String::new(), None).hybrid(lang, v))
            })
            .collect();
        retrieval::rerank(&query, &mut near, |n| docs.get(n));
        near.truncate(k);
        near
    })
    .await
    .context("the suggestion task failed")?;
    Ok((near, found))
}

/// How many matches each side of a search ranks before fusing.
const SEARCH_DEPTH: usize = 100;
/// Reciprocal-rank fusion's damping constant (the usual 60).
const RRF_K: f32 = 60.0;

/// The best `limit` tickets `viewer` may see matching `filter` and the search text `q`: full-text matches
/// and, when the model runs, tickets whose embedding is near the query's, fused by reciprocal rank.
/// Visibility (`access::may_see`) and the filters apply inside both sides.
pub async fn hybrid(
    db: &Db,
    engine: &crate::engine::Ai,
    viewer: &User,
    filter: &TicketFilter,
    q: &str,
    limit: i64,
) -> anyhow::Result<Vec<Ticket>> {
    let lexical = db.list_tickets(viewer, filter, SEARCH_DEPTH as i64).await?;
    let semantic = semantic_side(db, engine, viewer, filter, q).await?;
    let lexical_numbers: Vec<i64> = lexical.iter().map(|t| t.number).collect();
    let semantic_numbers: Vec<i64> = semantic.iter().map(|(n, _)| *n).collect();
    let order = fuse(&lexical_numbers, &semantic_numbers, usize::try_from(limit).unwrap_or(0));
    let mut by_number: HashMap<i64, Ticket> = lexical.into_iter().map(|t| (t.number, t)).collect();
    let missing: Vec<i64> = order.iter().copied().filter(|n| !by_number.contains_key(n)).collect();
    for t in db.tickets_by_numbers(&missing).await? {
        // The index may lag a change by a moment: the stored ticket decides visibility.
        if t.visible_to(viewer) {
            by_number.insert(t.number, t);
        }
    }
    Ok(order.into_iter().filter_map(|n| by_number.remove(&n)).collect())
}

/// The visible tickets nearest in meaning to `q` that pass `filter`, best first, with their cosines; none
/// when `q` excludes words (`-word`: meaning cannot honour it) or has nothing to mean (only punctuation).
async fn semantic_side(
    db: &Db,
    engine: &crate::engine::Ai,
    viewer: &User,
    filter: &TicketFilter,
    q: &str,
) -> anyhow::Result<Vec<(i64, f32)>> {
    let meaningless = !q.chars().any(char::is_alphanumeric);
    if crate::db::search_excludes(q) || meaningless {
        return Ok(Vec::new());
    }
    let Some((query, language)) = engine.index_query(q).await? else { return Ok(Vec::new()) };
    let index = &engine.index;
    index.sync(db).await?;
    let (viewer, filter) = (viewer.clone(), filter.clone());
    let keep = move |m: &index::Meta| m.visible_to(&viewer) && passes(&filter, m, &viewer);
    let mut semantic = index.nearest(&query, language, SEARCH_DEPTH, keep).await;
    let min = index.space().search_min_cosine();
    semantic.retain(|(_, cosine)| *cosine >= min);
    Ok(semantic)
}

/// Whether an indexed ticket passes the list filters (status, priority, open only, assignee).
fn passes(filter: &TicketFilter, m: &index::Meta, viewer: &User) -> bool {
    filter.status.is_none_or(|s| m.status == s)
        && filter.priority.is_none_or(|p| m.priority == p)
        && (!filter.open_only || m.status.is_active())
        && match filter.assignee {
            None => true,
            Some(AssigneeFilter::Nobody) => m.assigned_to.is_none(),
            Some(AssigneeFilter::Me) => m.assigned_to == Some(viewer.id),
            Some(AssigneeFilter::User(u)) => m.assigned_to == Some(u),
        }
}

/// The first `limit` ids (ticket numbers, article ids) of two rankings, best first each, fused by reciprocal
/// rank (ties: the higher id, i.e. the newer, first).
pub(crate) fn fuse(lexical: &[i64], semantic: &[i64], limit: usize) -> Vec<i64> {
    let mut fused: HashMap<i64, f32> = HashMap::new();
    let ranked = lexical.iter().chain(semantic).copied();
    let ranks = (0..lexical.len()).chain(0..semantic.len());
    for (number, rank) in ranked.zip(ranks) {
        *fused.entry(number).or_default() += 1.0 / (RRF_K + rank as f32 + 1.0);
    }
    let mut order: Vec<(i64, f32)> = fused.into_iter().collect();
    order.sort_by(|a, b| b.1.total_cmp(&a.1).then(b.0.cmp(&a.0)));
    order.into_iter().take(limit).map(|(n, _)| n).collect()
}
