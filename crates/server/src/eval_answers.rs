//! `smart-ticket eval answers`: calibrates how near in meaning a public article must be to a new ticket before
//! it is offered as the answer (self-service while typing, the answer mailed to an e-mailed ticket).
//!
//! From a JSON Lines file with a group field (each group one problem): every other group gets an article,
//! written from its first ticket's problem and resolution as the one-click draft writes it; every ticket but
//! those first ones is a question. Questions of a group with an article should be answered by it; questions of
//! a group without one should get nothing (most new tickets have no article). Each question is scored as the
//! service scores it (multilingual vectors centred per language, cosine to every article, best first), and for
//! each threshold: how many questions get articles, how often the right article is among the (up to three)
//! offered (precision), and how many of the answerable questions get it (coverage).

use smart_ticket_ai::e5::E5;
use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

/// Articles an answer offers at most (as the mailed answer and the new-ticket page do).
const OFFERED: usize = 3;

/// The precision the mailed answer is held to: a wrong answer mailed unasked costs the customer's trust.
const MAIL_PRECISION: f64 = 0.9;
/// The precision of what is shown while a customer types (glanced at, easily passed over).
const SUGGEST_PRECISION: f64 = 0.5;

/// One threshold's figures.
#[derive(Debug, Clone, serde::Serialize)]
struct Row {
    threshold: f32,
    /// Questions offered at least one article.
    offered: usize,
    /// Of those, the ones whose right article is among the offered.
    right: usize,
    precision: f64,
    /// `right` over the questions whose group has an article.
    coverage: f64,
}

/// The last line.
#[derive(serde::Serialize)]
struct Report {
    n: usize,
    articles: usize,
    questions: usize,
    answerable: usize,
    /// The lowest threshold with precision ≥ 0.9, and its figures.
    mail: Option<Row>,
    /// The lowest threshold with precision ≥ 0.5, and its figures.
    suggest: Option<Row>,
    seconds: f64,
}

/// A question's scores: the cosine to each article, best first, and the article of its own group if any.
struct Scored {
    ranked: Vec<(usize, f32)>,
    own: Option<usize>,
}

/// Runs the command: a line per threshold, then the report.
pub fn run(e5: &E5, corpus: &Path, group: &str, seed_only: bool) -> anyhow::Result<()> {
    let started = Instant::now();
    let (rows, _) = smart_ticket_ai::eval::load_jsonl(corpus, group, None)?;
    let (articles, questions) = split(&rows);
    anyhow::ensure!(!articles.is_empty() && !questions.is_empty(), "{} has too few groups", corpus.display());
    let article_texts: Vec<String> = articles.iter().map(|(_, i)| article_text(&rows[*i])).collect();
    let question_texts: Vec<String> = questions.iter().map(|(_, i)| rows[*i].text.clone()).collect();
    let (article_vectors, question_vectors) = vectors(e5, &article_texts, &question_texts, seed_only);
    let own: HashMap<&str, usize> = articles.iter().enumerate().map(|(a, (g, _))| (*g, a)).collect();
    let scored: Vec<Scored> = questions
        .iter()
        .zip(&question_vectors)
        .map(|((g, _), q)| Scored { ranked: ranked(q, &article_vectors), own: own.get(g).copied() })
        .collect();
    let answerable = scored.iter().filter(|s| s.own.is_some()).count();
    let table: Vec<Row> = (15..=45).map(|t| row(&scored, answerable, t as f32 / 50.0)).collect();
    for r in &table {
        println!("{}", serde_json::to_string(r)?);
    }
    let lowest = |precision: f64| table.iter().find(|r| r.offered > 0 && r.precision >= precision).cloned();
    let report = Report {
        n: rows.len(),
        articles: articles.len(),
        questions: questions.len(),
        answerable,
        mail: lowest(MAIL_PRECISION),
        suggest: lowest(SUGGEST_PRECISION),
        seconds: started.elapsed().as_secs_f64(),
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// A ticket of the corpus: its group and its row.
type Member<'a> = (&'a str, usize);

/// The groups' first tickets of every other group (by first appearance) as articles, and every other ticket
/// as a question, each with its group.
fn split(rows: &[smart_ticket_ai::eval::Example]) -> (Vec<Member<'_>>, Vec<Member<'_>>) {
    let mut seen: HashMap<&str, bool> = HashMap::new();
    let (mut articles, mut questions) = (Vec::new(), Vec::new());
    for (i, r) in rows.iter().enumerate() {
        let g = r.labels.first().map_or("", String::as_str);
        let groups = seen.len();
        match seen.get(g) {
            Some(_) => questions.push((g, i)),
            None => {
                let with_article = groups.is_multiple_of(2);
                seen.insert(g, with_article);
                if with_article {
                    articles.push((g, i));
                } else {
                    questions.push((g, i));
                }
            }
        }
    }
    (articles, questions)
}

/// The text an article drafted from `row` is embedded as (its title, then its body as plain text).
fn article_text(row: &smart_ticket_ai::eval::Example) -> String {
    let (title, problem) = row.text.split_once('\n').unwrap_or((row.text.as_str(), ""));
    let (title, body) = crate::desk::articles::problem_and_solution(title, problem, &row.answer, &|t| t.to_owned());
    crate::desk::articles::vector_text(&title, &body)
}

/// The articles' and questions' multilingual vectors less their language's mean, as the service compares
/// them: the means of the questions (the team's tickets, from the model's seed means as the ticket index
/// fits them), or with `seed_only` the seed means alone.
fn vectors(e5: &E5, articles: &[String], questions: &[String], seed_only: bool) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let raw = |texts: &[String]| -> Vec<(Option<&'static str>, Vec<f32>)> {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        texts.iter().map(|t| smart_ticket_ai::lang::detect(t)).zip(e5.embed_batch(&refs)).collect()
    };
    let (articles, questions) = (raw(articles), raw(questions));
    let fit = (!seed_only).then(|| {
        let items = questions.iter().map(|(l, v)| (*l, v.as_slice()));
        smart_ticket_ai::retrieval::Centering::fit_towards(Some(e5.seed_centering()), items)
    });
    let centering = fit.as_ref().unwrap_or(e5.seed_centering());
    let centre = |set: Vec<(Option<&'static str>, Vec<f32>)>| -> Vec<Vec<f32>> {
        set.into_iter().map(|(l, v)| centering.apply(l, &v)).collect()
    };
    (centre(articles), centre(questions))
}

fn ranked(q: &[f32], articles: &[Vec<f32>]) -> Vec<(usize, f32)> {
    let mut out: Vec<(usize, f32)> =
        articles.iter().enumerate().map(|(a, v)| (a, smart_ticket_ai::embed::cosine(q, v))).collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1));
    out.truncate(OFFERED);
    out
}

fn row(scored: &[Scored], answerable: usize, threshold: f32) -> Row {
    let (mut offered, mut right) = (0, 0);
    for s in scored {
        let shown: Vec<usize> = s.ranked.iter().filter(|(_, c)| *c >= threshold).map(|(a, _)| *a).collect();
        if shown.is_empty() {
            continue;
        }
        offered += 1;
        if s.own.is_some_and(|own| shown.contains(&own)) {
            right += 1;
        }
    }
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    Row { threshold, offered, right, precision: ratio(right, offered), coverage: ratio(right, answerable) }
}
