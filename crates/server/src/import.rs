//! `smart-ticket import FILE.jsonl`: a team's past tickets brought in as resolved, labelled history, so triage
//! and suggestions are useful from day one.
//!
//! Each line is one JSON object: `subject` (or `title`), `body` (or `description`), `answer` (or `resolution`),
//! and optionally `category` (or `type`), `priority`, `skills` (or `tags`: a list, or a string like
//! `"['VPN', 'Network']"`), `created_at` (RFC 3339) and `requester` (an e-mail address). A line that cannot be
//! read is reported with its number and skipped; the rest are imported. Importing a file twice adds nothing.

use anyhow::Context;
use serde::Serialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use smart_ticket_ai::MiniLm;
use smart_ticket_domain::{CategoryName, Email, JobKind, Priority, Resolution, Skills, TicketDescription, TicketTitle};
use std::collections::{HashMap, HashSet};
use std::io::BufRead;
use std::path::Path;
use std::sync::Arc;

use crate::db::{Db, ImportedTicket, NewJob};
use crate::model::{Ts, UserId};

/// Tickets stored per transaction (and embedded per batch).
const BATCH: usize = 128;

#[derive(Debug, Clone)]
pub struct Options {
    /// Who filed tickets whose line names no `requester`.
    pub requester: Email,
    /// Add categories the taxonomy lacks instead of skipping their tickets.
    pub create_categories: bool,
}

/// What an import did.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// Lines holding something (blank lines are not counted).
    pub lines: usize,
    pub imported: usize,
    /// Lines whose ticket an earlier import already brought in.
    pub already_imported: usize,
    pub skipped: usize,
    /// The first skipped lines, each with its number and why (printed one per line, not in the summary).
    #[serde(skip)]
    pub errors: Vec<LineError>,
    pub categories_created: Vec<String>,
    pub requesters_created: usize,
    /// Whether sentence embeddings were stored with the tickets (the model was found).
    pub embedded: bool,
    pub retrain_queued: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LineError {
    pub line: usize,
    pub reason: String,
}

/// At most this many errors are kept in the report (all are counted).
const MAX_ERRORS: usize = 1000;

/// One line, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub title: String,
    pub description: String,
    pub resolution: String,
    pub category: Option<CategoryName>,
    pub priority: Priority,
    pub skills: Vec<String>,
    pub created_at: Option<Ts>,
    pub requester: Option<Email>,
}

impl Row {
    /// Same text, same key: what makes a second import of one file a no-op.
    fn key(&self) -> String {
        let digest = Sha256::digest([self.title.as_str(), &self.description, &self.resolution].join("\u{0}"));
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

fn text<'a>(obj: &'a Map<String, Value>, names: &[&str]) -> Option<&'a str> {
    names.iter().find_map(|n| obj.get(*n).and_then(Value::as_str)).map(str::trim).filter(|s| !s.is_empty())
}

/// A title from the subject (shortened to fit), or from the description's first line when there is none.
fn title_from(subject: Option<&str>, description: &str) -> String {
    let raw = subject.unwrap_or_else(|| description.lines().find(|l| !l.trim().is_empty()).unwrap_or(description));
    let raw = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    if raw.chars().count() <= TicketTitle::MAX {
        raw
    } else {
        let mut t: String = raw.chars().take(TicketTitle::MAX - 1).collect();
        t.push('…');
        t
    }
}

/// Skills from a list, or from a string holding a list (`"['VPN', 'Network']"` or `"vpn, network"`).
fn skills_from(v: Option<&Value>) -> Result<Vec<String>, String> {
    let items: Vec<String> = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        Some(Value::String(s)) => s
            .trim()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .split(',')
            .map(|p| p.trim().trim_matches(|c| c == '\'' || c == '"').to_owned())
            .filter(|p| !p.is_empty())
            .collect(),
        Some(other) => return Err(format!("skills must be a list of names, not {other}")),
    };
    let items: Vec<&String> = items.iter().take(Skills::MAX).collect();
    Skills::parse(&items).map(|s| s.to_strings()).map_err(|e| format!("{}: {}", e.field, e.message))
}

fn priority_from(raw: Option<&str>) -> Result<Priority, String> {
    match raw.map(str::to_lowercase).as_deref() {
        None => Ok(Priority::Medium),
        Some("critical" | "highest" | "blocker") => Ok(Priority::Urgent),
        Some("lowest" | "trivial") => Ok(Priority::Low),
        Some(p) => p.parse().map_err(|_| format!("priority {p:?} is not one of low, medium, high, urgent")),
    }
}

/// Parses one line; `Err` says why it cannot be imported.
pub fn parse_line(line: &str) -> Result<Row, String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("not valid JSON: {e}"))?;
    let obj = value.as_object().ok_or("not a JSON object")?;
    let description = text(obj, &["body", "description"]).ok_or("no body (or description)")?;
    let description = TicketDescription::parse(description).map_err(|e| format!("body: {}", e.message))?.into_inner();
    let title = TicketTitle::parse(&title_from(text(obj, &["subject", "title"]), &description))
        .map_err(|e| format!("subject: {}", e.message))?
        .into_inner();
    let resolution = text(obj, &["answer", "resolution"]).ok_or("no answer (or resolution): history is resolved")?;
    let resolution = Resolution::parse(resolution).map_err(|e| format!("answer: {}", e.message))?.into_inner();
    let category = text(obj, &["category", "type"])
        .map(CategoryName::parse)
        .transpose()
        .map_err(|e| format!("category: {}", e.message))?;
    let priority = priority_from(text(obj, &["priority"]))?;
    let skills = skills_from(obj.get("skills").or_else(|| obj.get("tags")))?;
    let created_at = text(obj, &["created_at"])
        .map(|s| chrono::DateTime::parse_from_rfc3339(s).map(|t| Ts(t.with_timezone(&chrono::Utc))))
        .transpose()
        .map_err(|e| format!("created_at is not an RFC 3339 time: {e}"))?;
    let requester =
        text(obj, &["requester"]).map(Email::parse).transpose().map_err(|e| format!("requester: {}", e.message))?;
    Ok(Row { title, description, resolution, category, priority, skills, created_at, requester })
}

/// Imports `path` into `db`; `progress` is told after each batch how many bytes have been read and how many
/// lines are done.
pub async fn run(
    db: &Db,
    model: Option<Arc<MiniLm>>,
    e5: Option<Arc<smart_ticket_ai::e5::E5>>,
    path: &Path,
    opts: &Options,
    mut progress: impl FnMut(u64, usize),
) -> anyhow::Result<Report> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut reader = std::io::BufReader::new(file);
    // Accounts made for requesters share one unusable password hash: they cannot log in.
    let locked_hash = crate::auth::unusable_password_hash().await?;
    let mut import = Import {
        db,
        opts,
        report: Report { embedded: model.is_some(), ..Report::default() },
        model,
        e5,
        locked_hash,
        started: Ts::now(),
        known: db.categories().await?.into_iter().map(|c| c.name).collect(),
        people: HashMap::new(),
        pending: Vec::new(),
    };
    import.read_all(&mut reader, path, &mut progress).await?;
    let mut report = import.report;
    if report.imported > 0 {
        // Learn from the new history now rather than after the next few resolutions.
        let job = NewJob {
            kind: JobKind::AiRetrain,
            payload: json!({ "imported": report.imported }),
            idempotency_key: format!("import-{}", uuid::Uuid::new_v4()),
        };
        report.retrain_queued = db.enqueue(&job).await?;
    }
    Ok(report)
}

/// One import in progress.
struct Import<'a> {
    db: &'a Db,
    opts: &'a Options,
    model: Option<Arc<MiniLm>>,
    e5: Option<Arc<smart_ticket_ai::e5::E5>>,
    locked_hash: String,
    started: Ts,
    /// Category names in the taxonomy.
    known: HashSet<String>,
    /// Requester accounts by e-mail, looked up or made once each.
    people: HashMap<String, UserId>,
    /// Parsed rows waiting for the next batch.
    pending: Vec<Row>,
    report: Report,
}

impl Import<'_> {
    fn skip(&mut self, line: usize, reason: String) {
        self.report.skipped += 1;
        if self.report.errors.len() < MAX_ERRORS {
            self.report.errors.push(LineError { line, reason });
        }
    }

    /// `Ok(Err(reason))` when the row's category is unknown and may not be created.
    async fn check_category(&mut self, row: &Row) -> anyhow::Result<Result<(), String>> {
        let Some(c) = &row.category else { return Ok(Ok(())) };
        if self.known.contains(c.as_str()) {
            return Ok(Ok(()));
        }
        if !self.opts.create_categories {
            return Ok(Err(format!(
                "category {:?} is not in the taxonomy (add it first, or import with --create-categories)",
                c.as_str()
            )));
        }
        self.db.upsert_category(c, "", &[]).await?;
        self.known.insert(c.as_str().to_owned());
        self.report.categories_created.push(c.as_str().to_owned());
        Ok(Ok(()))
    }

    /// The account of `email`, created (role user, locked) when missing.
    async fn requester(&mut self, email: &Email) -> anyhow::Result<UserId> {
        if let Some(id) = self.people.get(email.as_str()) {
            return Ok(*id);
        }
        let (user, created) = self.db.user_or_new_requester(email, &self.locked_hash, false).await?;
        self.report.requesters_created += usize::from(created);
        self.people.insert(email.as_str().to_owned(), user.id);
        Ok(user.id)
    }

    /// Reads every line of `reader`, storing good rows a batch at a time and skipping bad ones with their
    /// line numbers; `progress` gets the bytes read after each batch.
    async fn read_all(
        &mut self,
        reader: &mut impl BufRead,
        path: &Path,
        progress: &mut impl FnMut(u64, usize),
    ) -> anyhow::Result<()> {
        let mut line = String::new();
        let mut read: u64 = 0;
        let mut number = 0;
        loop {
            line.clear();
            let n = reader.read_line(&mut line).with_context(|| format!("reading {}", path.display()))?;
            if n == 0 {
                break;
            }
            read += n as u64;
            number += 1;
            if line.trim().is_empty() {
                continue;
            }
            self.report.lines += 1;
            match parse_line(&line) {
                Ok(row) => match self.check_category(&row).await? {
                    Ok(()) => self.pending.push(row),
                    Err(reason) => self.skip(number, reason),
                },
                Err(reason) => self.skip(number, reason),
            }
            if self.pending.len() >= BATCH {
                self.store().await?;
                progress(read, self.report.lines);
            }
        }
        self.store().await?;
        progress(read, self.report.lines);
        Ok(())
    }

    /// Embeds and stores the pending rows in one transaction.
    async fn store(&mut self) -> anyhow::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let rows = std::mem::take(&mut self.pending);
        let texts: Vec<String> = rows.iter().map(|r| crate::model::ticket_text(&r.title, &r.description)).collect();
        let embeddings = english_vectors(self.model.clone(), texts.clone()).await?;
        let search = search_vectors(self.e5.clone(), texts).await?;
        let mut batch = Vec::with_capacity(rows.len());
        for ((row, embedding), search_vector) in rows.iter().zip(embeddings).zip(search) {
            let who = self.requester(row.requester.as_ref().unwrap_or(&self.opts.requester)).await?;
            // Distinct, increasing label times: the engine pages through labelled tickets by this time.
            let seq = (self.report.imported + self.report.already_imported + batch.len()) as i64;
            batch.push(ImportedTicket {
                key: row.key(),
                title: row.title.clone(),
                description: row.description.clone(),
                resolution: row.resolution.clone(),
                category: row.category.as_ref().map(|c| c.as_str().to_owned()),
                priority: row.priority.as_str().to_owned(),
                skills: row.skills.clone(),
                requester: who,
                created_at: row.created_at.unwrap_or(self.started),
                labelled_at: self.started + chrono::Duration::microseconds(seq),
                embedding,
                search_vector,
            });
        }
        for added in self.db.import_tickets(&batch).await? {
            if added {
                self.report.imported += 1;
            } else {
                self.report.already_imported += 1;
            }
        }
        Ok(())
    }
}

/// The English embedding of each text (none without the model), in batches on the blocking pool.
async fn english_vectors(model: Option<Arc<MiniLm>>, texts: Vec<String>) -> anyhow::Result<Vec<Option<Vec<f32>>>> {
    let Some(m) = model else { return Ok(vec![None; texts.len()]) };
    let vectors = tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        m.embed_all(&refs, 32)
    })
    .await
    .context("the embedding task failed")??;
    Ok(vectors.into_iter().map(Some).collect())
}

/// A text's multilingual vector and language, so imported history is found across languages too.
type SearchVector = Option<(Vec<f32>, Option<&'static str>)>;

/// The multilingual vector of each text (none without the model), in packed batches on the blocking pool.
async fn search_vectors(
    e5: Option<Arc<smart_ticket_ai::e5::E5>>,
    texts: Vec<String>,
) -> anyhow::Result<Vec<SearchVector>> {
    let Some(e5) = e5 else { return Ok(vec![None; texts.len()]) };
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let vectors = e5.embed_batch(&refs);
        Ok(texts.iter().zip(vectors).map(|(t, v)| Some((v, smart_ticket_ai::lang::detect(t)))).collect())
    })
    .await
    .context("the embedding task failed")?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse_with_their_aliases_and_defaults() {
        let r = parse_line(
            r#"{"subject": "VPN drops", "body": "The VPN drops every hour.", "answer": "Updated the client.",
                "type": "Incident", "priority": "High", "tags": "['VPN', 'Network']", "created_at": "2025-01-02T03:04:05Z"}"#,
        )
        .unwrap();
        assert_eq!(r.title, "VPN drops");
        assert_eq!(r.category.unwrap().as_str(), "incident");
        assert_eq!(r.priority, Priority::High);
        assert_eq!(r.skills, vec!["vpn", "network"]);
        assert_eq!(r.created_at.unwrap().0.to_rfc3339(), "2025-01-02T03:04:05+00:00");
        let r =
            parse_line(r#"{"description": "First line\nsecond", "resolution": "done", "skills": ["SQL"]}"#).unwrap();
        assert_eq!((r.title.as_str(), r.priority, r.category), ("First line", Priority::Medium, None));
        assert_eq!(r.skills, vec!["sql"]);
        let long = "x".repeat(300);
        let r = parse_line(&json!({ "subject": long, "body": "b b b", "answer": "a" }).to_string()).unwrap();
        assert_eq!(r.title.chars().count(), TicketTitle::MAX);
        assert!(r.title.ends_with('…'));
    }

    #[test]
    fn bad_lines_say_why() {
        let cases = [
            ("{not json", "not valid JSON"),
            ("[1, 2]", "not a JSON object"),
            (r#"{"subject": "s s s", "answer": "a"}"#, "no body"),
            (r#"{"subject": "s s s", "body": "b"}"#, "no answer"),
            (r#"{"subject": "s s s", "body": "b", "answer": "a", "priority": "someday"}"#, "priority \"someday\""),
            (r#"{"subject": "s s s", "body": "b", "answer": "a", "created_at": "yesterday"}"#, "created_at"),
            (r#"{"subject": "s s s", "body": "b", "answer": "a", "requester": "nobody"}"#, "requester"),
            (r#"{"subject": "s s s", "body": "b", "answer": "a", "category": "<b>"}"#, "category"),
            (r#"{"subject": "s s s", "body": "b", "answer": "a", "skills": 3}"#, "skills"),
        ];
        for (line, why) in cases {
            let e = parse_line(line).unwrap_err();
            assert!(e.contains(why), "{line}: {e}");
        }
    }

    #[test]
    fn the_key_depends_on_the_text_only() {
        let a = parse_line(r#"{"subject": "s s s", "body": "b", "answer": "a", "priority": "low"}"#).unwrap();
        let b = parse_line(r#"{"title": "s s s", "description": "b", "resolution": "a", "priority": "high"}"#).unwrap();
        let c = parse_line(r#"{"subject": "s s s", "body": "b", "answer": "another"}"#).unwrap();
        assert_eq!(a.key(), b.key());
        assert_ne!(a.key(), c.key());
    }
}
