//! The `smart-ticket` command line.

use anyhow::Context;
use clap::{Parser, Subcommand};
use smart_ticket_ai::MiniLm;
use smart_ticket_ai::eval::Example;
use smart_ticket_ai::retrieval::Mode;
use smart_ticket_ai::triage::{ENGINE_LEXICAL, ENGINE_MINILM};
use smart_ticket_domain::{Email, Password, Role, Skills};
use std::io::Read;
use std::process::ExitCode;

use crate::auth::hash_password;
use crate::config::{ServeArgs, Settings, StorageArgs, WorkerArgs};
use crate::db::{Db, StoreError};
use crate::logging::{self, LogFormat};
use crate::startup::Application;

#[derive(Debug, Parser)]
#[command(name = "smart-ticket", version, about = "Smart Ticket: a self-hosted, AI-native helpdesk")]
pub struct Cli {
    #[command(flatten)]
    storage: StorageArgs,
    /// Log as human-readable text or as JSON lines.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP API and web pages.
    Serve(ServeArgs),
    /// Run background workers only; any number may share one PostgreSQL database.
    Worker(WorkerArgs),
    /// Apply database migrations and exit.
    Migrate,
    /// Print the API's OpenAPI 3.1 description (as served at /api/openapi.json).
    Openapi,
    /// Manage accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Measure the embedded AI on labelled JSON Lines files (`subject`, `body` and a label field).
    #[command(subcommand)]
    Eval(EvalCommand),
    /// Bring past tickets in as resolved history (JSON Lines: subject, body, answer, and optionally category
    /// or type, priority, skills or tags, created_at, requester). Bad lines are reported by number and skipped;
    /// importing the same file again adds nothing. Prints a JSON summary as its last line.
    /// Read one e-mail message (RFC 5322) on standard input and store it for the support desk, as an MTA's
    /// pipe delivers it (Postfix `mailbox_command`, an alias, procmail). Exits 0 once stored (or when it was
    /// stored before), 75 (EX_TEMPFAIL) when storage is unavailable so the MTA retries, 65 (EX_DATAERR) for
    /// input that is not a message at all. A message over the size limit is kept as its header, refused, and
    /// its sender told.
    MailIn {
        /// Largest message taken in, in megabytes.
        #[arg(long, env = "MAIL_MAX_MESSAGE_MB", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=1024))]
        mail_max_message_mb: u64,
    },
    Import {
        file: std::path::PathBuf,
        /// Who filed the tickets whose line names no `requester` (an account is made if missing).
        #[arg(long, default_value = "history@example.com")]
        requester: String,
        /// Add categories missing from the taxonomy instead of skipping their tickets.
        #[arg(long)]
        create_categories: bool,
    },
}

#[derive(Debug, Subcommand)]
enum EvalCommand {
    /// Train on one file as from history and predict another (or cross-validate one); the last line printed
    /// is one JSON object with accuracy, macro_f1, train_seconds and per-ticket latency.
    Classify {
        #[arg(long)]
        train: std::path::PathBuf,
        /// Held-out file to predict; or use --cv.
        #[arg(long, conflicts_with = "cv")]
        test: Option<std::path::PathBuf>,
        /// The field to predict; a list-valued field is multi-label.
        #[arg(long)]
        label: String,
        /// K-fold cross-validation on --train instead of a test file.
        #[arg(long, value_parser = clap::value_parser!(u16).range(2..=50))]
        cv: Option<u16>,
        /// Keep rows sharing this field in one fold (paraphrases of one scenario never straddle folds).
        #[arg(long, requires = "cv")]
        group: Option<String>,
        /// Ask a language model instead of the embedded engine (configured by GEMINI_* / OPENAI_* as for
        /// `serve`); the training rows serve as the label set and as grounding, as history does.
        #[arg(long, value_enum)]
        provider: Option<crate::providers::ProviderKind>,
        /// Fine-tune the sentence model's top layer on the training side and use it when it beats the frozen
        /// model on a held-back slice (`auto`, what the product does), or keep the frozen model (`off`).
        #[arg(long, value_enum, default_value_t = Tune::Auto)]
        tune: Tune,
        #[command(flatten)]
        workers: Box<WorkerArgs>,
    },
    /// Rank similar tickets: each query's relevant tickets are those sharing its group; prints as the last line
    /// one JSON object with mrr, success_at_1, success_at_5, ndcg_at_10, n_queries, latency and mode.
    Retrieve {
        #[arg(long)]
        corpus: std::path::PathBuf,
        /// Queries to rank the corpus for; without it, every corpus ticket is a query (itself excluded).
        #[arg(long)]
        queries: Option<std::path::PathBuf>,
        #[arg(long)]
        group: String,
        /// lexical: words alone; semantic: the sentence model; hybrid: the semantic order with the tickets in the
        /// query's language reordered by their words and, between English ones, the English model (as the
        /// service's suggestions are ordered).
        #[arg(long, default_value = "hybrid", value_parser = |s: &str| s.parse::<Mode>())]
        mode: Mode,
        /// Sentence model of the semantic side: all-MiniLM-L6-v2 (English) or multilingual-e5-small (vectors
        /// centred per language, so translations meet); by default the one the service uses (e5 when fetched).
        #[arg(long, value_enum, default_value_t = RetrieveModel::Auto)]
        model: RetrieveModel,
    },
    /// Cluster resolved tickets into repeated problems (what the knowledge base proposes articles for) with
    /// the multilingual model, and score the clusters against a group field; prints as the last line one JSON
    /// object with n, clusters, ari, purity and seconds.
    Cluster {
        /// JSON Lines with `subject`, `body`, `answer` and the group field.
        #[arg(long)]
        corpus: std::path::PathBuf,
        #[arg(long)]
        group: String,
        /// Average similarity below which clusters stay apart (default: the calibrated one).
        #[arg(long)]
        threshold: Option<f32>,
        /// Weight of the resolutions' cosine in a pair's similarity, 0 to 1 (default: the calibrated one).
        #[arg(long)]
        answer_weight: Option<f32>,
        /// How far below the threshold a repeated problem that stands apart from every other still holds
        /// together, 0 (off) to 0.3 (default: the calibrated one).
        #[arg(long)]
        isolation: Option<f32>,
        /// Also print, as a line before the summary, a plain k-means on the same vectors (k = the groups).
        #[arg(long)]
        kmeans: bool,
        /// Also print the scores over a grid of thresholds and weights, a line each, before the summary.
        #[arg(long)]
        sweep: bool,
    },
    /// Calibrate when a public article is near enough to a new ticket to be offered as its answer: every other
    /// group gets an article drafted from its first ticket, the rest are questions; prints a line per
    /// threshold, then one JSON object with the lowest thresholds reaching the mailed answer's and the
    /// self-service list's precision.
    Answers {
        /// JSON Lines with `subject`, `body`, `answer` and the group field.
        #[arg(long)]
        corpus: std::path::PathBuf,
        #[arg(long)]
        group: String,
        /// Take the model's seed means out of the vectors instead of the questions' own means (which the
        /// service takes out: the means of the team's tickets).
        #[arg(long)]
        seed_centering: bool,
    },
}

/// The sentence model `eval retrieve` ranks with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum RetrieveModel {
    /// The one the service uses (e5 when fetched).
    Auto,
    Minilm,
    E5,
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create an account; the password is read from standard input.
    Create {
        #[arg(long)]
        email: String,
        /// user, moderator or admin.
        #[arg(long, value_parser = |s: &str| s.parse::<Role>())]
        role: Role,
        /// Comma-separated skills, e.g. `rust,postgres`.
        #[arg(long, value_delimiter = ',')]
        skills: Vec<String>,
        /// Read the password from standard input (the only way: never on the command line).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
}

pub fn main() -> ExitCode {
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    logging::init(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<Exit>().is_some() => {
            eprintln!("error: {e:#}");
            e.downcast_ref::<Exit>().map_or(ExitCode::FAILURE, |x| ExitCode::from(x.code))
        }
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    crate::engine::load_kernels(&cli.storage.blas_library);
    match cli.command {
        Command::Serve(serve) => {
            let settings = Settings::resolve(&cli.storage, &serve)?;
            Application::build(settings).await?.run_until_stopped().await
        }
        Command::Worker(args) => {
            let db = Db::connect(cli.storage.database_url().expose(), args.worker_concurrency as u32 + 2).await?;
            db.migrate().await?;
            let settings = args.pipeline(&cli.storage, 3000)?;
            crate::startup::run_worker(db, settings, args.worker_concurrency.max(1)).await
        }
        Command::Openapi => {
            println!("{}", crate::http::openapi::document().to_pretty_json()?);
            Ok(())
        }
        Command::MailIn { mail_max_message_mb } => mail_in(&cli.storage, mail_max_message_mb).await,
        Command::Migrate => {
            let db = Db::connect(cli.storage.database_url().expose(), 1).await?;
            db.migrate().await?;
            println!("migrations applied ({})", db.backend());
            Ok(())
        }
        Command::Eval(EvalCommand::Classify {
            train, test, label, cv, group, provider: Some(kind), workers, ..
        }) => {
            let settings = workers.provider(Some(kind))?.context("no provider configured")?;
            eval_provider(settings, &train, test.as_deref(), &label, cv, group.as_deref()).await
        }
        Command::Eval(EvalCommand::Retrieve { corpus, queries, group, mode, model }) => {
            tokio::task::spawn_blocking(move || {
                let embedder = retrieval_embedder(&cli.storage, model, mode)?;
                eval_retrieve(&embedder, &corpus, queries.as_deref(), &group, mode)
            })
            .await?
        }
        Command::Eval(EvalCommand::Cluster { corpus, group, threshold, answer_weight, isolation, kmeans, sweep }) => {
            let defaults = smart_ticket_ai::cluster::Params::default();
            let params = smart_ticket_ai::cluster::Params {
                threshold: threshold.unwrap_or(defaults.threshold),
                answer_weight: answer_weight.unwrap_or(defaults.answer_weight).clamp(0.0, 1.0),
                isolation: isolation.unwrap_or(defaults.isolation).clamp(0.0, 0.3),
            };
            tokio::task::spawn_blocking(move || {
                let e5 = load_e5(&cli.storage.e5_dir)?;
                let req = crate::eval_cluster::Request { corpus: &corpus, group: &group, params, kmeans, sweep };
                crate::eval_cluster::run(&e5, &req)
            })
            .await?
        }
        Command::Eval(EvalCommand::Answers { corpus, group, seed_centering }) => {
            tokio::task::spawn_blocking(move || {
                let e5 = load_e5(&cli.storage.e5_dir)?;
                crate::eval_answers::run(&e5, &corpus, &group, seed_centering)
            })
            .await?
        }
        Command::Eval(EvalCommand::Classify { train, test, label, cv, group, provider: None, tune, .. }) => {
            tokio::task::spawn_blocking(move || {
                let model = smart_ticket_ai::embed::load_shared(&cli.storage.model_dir);
                let split = Split { train: &train, test: test.as_deref(), cv, group: group.as_deref() };
                eval_classify(model.as_deref(), split, &label, tune)
            })
            .await?
        }
        Command::Import { file, requester, create_categories } => {
            import(&cli.storage, &file, &requester, create_categories).await
        }
        Command::User(UserCommand::Create { email, role, skills, password_stdin: _ }) => {
            create_user(&cli.storage, &email, role, &skills).await
        }
    }
}

/// The sentence model(s) `eval retrieve` ranks with: e5 (with MiniLM beside it in hybrid mode) when asked or,
/// for `auto`, when fetched; else MiniLM (or words alone without its weights).
fn retrieval_embedder(storage: &StorageArgs, model: RetrieveModel, mode: Mode) -> anyhow::Result<Embedder> {
    let e5_present = storage.e5_dir.join(smart_ticket_ai::e5::FILE).is_file();
    if model == RetrieveModel::Minilm || (model == RetrieveModel::Auto && !e5_present) {
        return Ok(Embedder::MiniLm(smart_ticket_ai::embed::load_shared(&storage.model_dir)));
    }
    let e5 = smart_ticket_ai::e5::E5::load(&storage.e5_dir).with_context(|| {
        format!("loading multilingual-e5-small from {} (run scripts/fetch-model)", storage.e5_dir.display())
    })?;
    // The English model joins in hybrid mode (English tickets among themselves).
    let english = (mode == Mode::Hybrid).then(|| smart_ticket_ai::embed::load_shared(&storage.model_dir)).flatten();
    Ok(Embedder::E5(Box::new(e5), english))
}

/// A failure that exits with its own code (`mail-in`'s, which an MTA reads).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
struct Exit {
    code: u8,
    message: String,
}

/// sysexits.h: the input data was incorrect.
const EX_DATAERR: u8 = 65;
/// sysexits.h: a temporary failure; the sender should try again later.
const EX_TEMPFAIL: u8 = 75;

/// `mail-in`: one message from standard input, stored with the job that turns it into a ticket or a reply.
async fn mail_in(storage: &StorageArgs, mail_max_message_mb: u64) -> anyhow::Result<()> {
    use crate::mail::inbound::{ReceiveError, receive};
    let exit = |code, message: String| anyhow::Error::new(Exit { code, message });
    let max = (mail_max_message_mb << 20) as usize;
    let (raw, size) = read_bounded(std::io::stdin().lock(), max)
        .map_err(|e| exit(EX_TEMPFAIL, format!("reading standard input: {e}")))?;
    let db = Db::connect(storage.database_url().expose(), 1).await.map_err(|e| exit(EX_TEMPFAIL, format!("{e:#}")))?;
    db.migrate().await.map_err(|e| exit(EX_TEMPFAIL, format!("{e:#}")))?;
    let stored = receive(&db, &raw, size, max).await.map_err(|e| match e {
        ReceiveError::NotAMessage => exit(EX_DATAERR, e.to_string()),
        ReceiveError::Storage(_) => exit(EX_TEMPFAIL, e.to_string()),
    });
    db.close().await;
    tracing::info!(new = stored?, bytes = size, "message received");
    Ok(())
}

/// Up to `max + 1` bytes of `input` (what is kept of a larger message is its start, for its header), and
/// the input's whole size.
fn read_bounded(mut input: impl Read, max: usize) -> std::io::Result<(Vec<u8>, usize)> {
    let mut raw = Vec::new();
    (&mut input).take(max as u64 + 1).read_to_end(&mut raw)?;
    let rest = std::io::copy(&mut input, &mut std::io::sink())? as usize;
    let size = raw.len() + rest;
    Ok((raw, size))
}

/// `import`: past tickets from a JSON Lines file, with a progress bar; prints the report as JSON.
async fn import(
    storage: &StorageArgs,
    file: &std::path::Path,
    requester: &str,
    create_categories: bool,
) -> anyhow::Result<()> {
    let opts = crate::import::Options { requester: Email::parse(requester).context("--requester")?, create_categories };
    let db = Db::connect(storage.database_url().expose(), 2).await?;
    db.migrate().await?;
    let (dir, e5_dir) = (storage.model_dir.clone(), storage.e5_dir.clone());
    let (model, e5) = tokio::task::spawn_blocking(move || {
        (smart_ticket_ai::embed::load_shared(&dir), smart_ticket_ai::e5::load_shared(&e5_dir))
    })
    .await?;
    let size = std::fs::metadata(file).with_context(|| format!("reading {}", file.display()))?.len();
    let bar = progress(size as usize, "importing");
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{prefix} [{bar:30}] {binary_bytes}/{binary_total_bytes} {msg}, {elapsed} so far, about {eta} to go",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    let started = std::time::Instant::now();
    let tick = |read: u64, tickets: usize| {
        bar.set_position(read);
        let rate = tickets as f64 / started.elapsed().as_secs_f64().max(1e-3);
        bar.set_message(format!("{tickets} tickets, {rate:.0} tickets/s"));
    };
    let report = crate::import::run(&db, model, e5, file, &opts, tick).await?;
    bar.finish_and_clear();
    for e in &report.errors {
        eprintln!("line {}: {}", e.line, e.reason);
    }
    if report.skipped > report.errors.len() {
        eprintln!("… and {} more skipped lines", report.skipped - report.errors.len());
    }
    db.close().await;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// `user create`: an account with the password read from standard input.
async fn create_user(storage: &StorageArgs, email: &str, role: Role, skills: &[String]) -> anyhow::Result<()> {
    let email = Email::parse(email).context("--email")?;
    let skills = Skills::parse(skills).context("--skills")?;
    let mut raw = String::new();
    std::io::stdin().read_to_string(&mut raw).context("reading the password from standard input")?;
    let password = Password::parse_for(raw.trim_end_matches(['\r', '\n']), &email).context("password")?;
    let db = Db::connect(storage.database_url().expose(), 1).await?;
    db.migrate().await?;
    let hash = hash_password(password).await?;
    match db.create_user(&email, &hash, role, &skills).await {
        Ok(user) => {
            println!("created {} {} ({})", user.role, user.email, user.id);
            Ok(())
        }
        Err(StoreError::Duplicate(_)) => anyhow::bail!("an account with the email {email} already exists"),
        Err(e) => Err(e.into()),
    }
}

/// Embeds every example (timing each, as triage would) when the model is loaded.
fn embed_examples(model: Option<&MiniLm>, examples: &mut [Example]) -> anyhow::Result<()> {
    let Some(model) = model else { return Ok(()) };
    embed_each(examples, |text| Ok(model.embed(&[text])?.pop()))
}

/// Embeds every example in packed batches when the model is loaded (a progress bar per batch).
fn embed_batched(model: Option<&MiniLm>, examples: &mut [Example]) -> anyhow::Result<()> {
    let Some(model) = model else { return Ok(()) };
    let bar = progress(examples.len(), "embedding");
    for chunk in examples.chunks_mut(1024) {
        let texts: Vec<&str> = chunk.iter().map(|e| e.text.as_str()).collect();
        let vectors = model.embed(&texts)?;
        chunk.iter_mut().zip(vectors).for_each(|(e, v)| e.vector = Some(v));
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Ok(())
}

/// Sets every example's vector with `embed`, timing each, with a progress bar.
fn embed_each(
    examples: &mut [Example],
    embed: impl Fn(&str) -> anyhow::Result<Option<Vec<f32>>>,
) -> anyhow::Result<()> {
    let bar = progress(examples.len(), "embedding");
    for e in examples.iter_mut() {
        let t = std::time::Instant::now();
        e.vector = embed(&e.text)?;
        e.embed_ms = t.elapsed().as_secs_f64() * 1e3;
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(())
}

/// Whether `eval classify` fine-tunes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Tune {
    Auto,
    Off,
}

/// The files and folds of an evaluation.
struct Split<'a> {
    train: &'a std::path::Path,
    test: Option<&'a std::path::Path>,
    cv: Option<u16>,
    group: Option<&'a str>,
}

fn eval_classify(model: Option<&MiniLm>, split: Split<'_>, label: &str, tune: Tune) -> anyhow::Result<()> {
    use smart_ticket_ai::eval::{load_jsonl, report, train_and_predict};
    let engine = if model.is_some() { ENGINE_MINILM } else { ENGINE_LEXICAL };
    let (mut examples, multi) = load_jsonl(split.train, label, split.group)?;
    // With a test file the training side is embedded in packed batches (its time is not triage latency);
    // tickets that are predicted are embedded one at a time and timed, as triage embeds them.
    match split.test {
        Some(_) => embed_batched(model, &mut examples)?,
        None => embed_examples(model, &mut examples)?,
    }
    let mut test_file = split.test.map(|t| load_jsonl(t, label, None).map(|x| x.0)).transpose()?;
    if let Some(held) = &mut test_file {
        embed_examples(model, held)?;
    }
    let mut splits = splits(examples, test_file, split.cv)?;
    let mut tuned = Vec::new();
    if let Some(model) = model.filter(|_| tune == Tune::Auto) {
        for (train, test) in splits.iter_mut().filter(|(t, _)| t.len() >= smart_ticket_ai::tune::MIN_EXAMPLES) {
            tuned.push(finetune(model, train, test, multi)?);
        }
    }
    let bar = progress(splits.iter().map(|s| s.1.len()).sum(), "predicting");
    let mut runs = Vec::new();
    for (f, (train, test)) in splits.iter().enumerate() {
        if let Some(k) = split.cv {
            bar.set_message(format!("fold {}/{k}", f + 1));
        }
        runs.push(train_and_predict(train, test, multi, engine, &mut || bar.inc(1))?);
    }
    bar.finish_and_clear();
    let k = split.cv.map(usize::from);
    let mut summary = report(label, &runs, k, engine);
    summary.finetune = (!tuned.is_empty()).then_some(tuned);
    println!("{}", serde_json::to_string(&summary)?);
    Ok(())
}

/// Fine-tunes on one split's training side (see [`smart_ticket_ai::tune::tune_examples`]), with a progress
/// bar over the passes.
fn finetune(
    model: &MiniLm,
    train: &mut [Example],
    test: &mut [Example],
    multi: bool,
) -> anyhow::Result<smart_ticket_ai::tune::Outcome> {
    let cfg = smart_ticket_ai::tune::TuneConfig::default();
    let bar = progress(cfg.max_epochs, "fine-tuning");
    let mut tick = |pass: usize, _: usize| bar.set_position(pass as u64);
    let outcome = smart_ticket_ai::tune::tune_examples(model, train, test, multi, &cfg, &mut tick)?;
    bar.finish_and_clear();
    Ok(outcome)
}

/// The sentence model `eval retrieve` ranks with.
enum Embedder {
    MiniLm(Option<std::sync::Arc<MiniLm>>),
    /// The multilingual model, with the English one for hybrid mode.
    E5(Box<smart_ticket_ai::e5::E5>, Option<std::sync::Arc<MiniLm>>),
}

fn eval_retrieve(
    embedder: &Embedder,
    corpus: &std::path::Path,
    queries: Option<&std::path::Path>,
    group: &str,
    mode: Mode,
) -> anyhow::Result<()> {
    use smart_ticket_ai::retrieval::{Centering, Doc, evaluate};
    // Each ticket with its semantic vector and, in hybrid mode beside the multilingual model, its English one.
    let load = |path: &std::path::Path| -> anyhow::Result<Vec<(Example, Option<Vec<f32>>)>> {
        let (mut rows, _) = smart_ticket_ai::eval::load_jsonl(path, group, None)?;
        let mut english = vec![None; rows.len()];
        match embedder {
            _ if mode == Mode::Lexical => {}
            Embedder::MiniLm(model) => embed_examples(model.as_deref(), &mut rows)?,
            Embedder::E5(e5, minilm) => {
                if let Some(minilm) = minilm {
                    embed_examples(Some(minilm.as_ref()), &mut rows)?;
                    english = rows.iter_mut().map(|e| e.vector.take()).collect();
                }
                embed_each(&mut rows, |text| e5.embed(text).map(Some))?
            }
        }
        Ok(rows.into_iter().zip(english).collect())
    };
    let corpus = load(corpus)?;
    let queries = queries.map(load).transpose()?;
    // The multilingual model's vectors are compared with each language's mean taken out.
    let languages = |rows: &[(Example, Option<Vec<f32>>)]| {
        rows.iter().map(|(e, _)| smart_ticket_ai::lang::detect(&e.text)).collect::<Vec<_>>()
    };
    let corpus_languages = languages(&corpus);
    let centering = match embedder {
        Embedder::E5(e5, _) => Centering::fit_towards(
            Some(e5.seed_centering()),
            corpus_languages.iter().zip(&corpus).filter_map(|(l, (e, _))| e.vector.as_deref().map(|v| (*l, v))),
        ),
        Embedder::MiniLm(_) => Centering::default(),
    };
    let docs = |rows: Vec<(Example, Option<Vec<f32>>)>, langs: &[Option<&'static str>]| -> Vec<Doc> {
        rows.into_iter()
            .zip(langs)
            .map(|((e, english), l)| {
                let dense = e.vector.as_deref().map(|v| centering.apply(*l, v));
                Doc::new(&e.text, e.labels.join("|"), dense).hybrid(*l, english)
            })
            .collect()
    };
    let query_docs = queries.map(|q| {
        let langs = languages(&q);
        docs(q, &langs)
    });
    let corpus_docs = docs(corpus, &corpus_languages);
    let report = evaluate(&corpus_docs, query_docs.as_deref(), mode);
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// (train, test) pairs: the given test file, or the K folds of cross-validation (each held out in turn).
fn splits(
    examples: Vec<Example>,
    test: Option<Vec<Example>>,
    cv: Option<u16>,
) -> anyhow::Result<Vec<(Vec<Example>, Vec<Example>)>> {
    match (test, cv) {
        (Some(test), _) => Ok(vec![(examples, test)]),
        (None, Some(k)) => Ok(smart_ticket_ai::eval::folds(&examples, usize::from(k))
            .into_iter()
            .map(|held| {
                let held_set: std::collections::HashSet<usize> = held.iter().copied().collect();
                let rest = (0..examples.len()).filter(|i| !held_set.contains(i)).map(|i| examples[i].clone()).collect();
                (rest, held.iter().map(|&i| examples[i].clone()).collect())
            })
            .collect()),
        (None, None) => anyhow::bail!("give --test FILE or --cv K"),
    }
}

/// `eval classify --provider`: the same splits and report, answers from a language model.
async fn eval_provider(
    settings: crate::providers::ProviderSettings,
    train: &std::path::Path,
    test: Option<&std::path::Path>,
    label: &str,
    cv: Option<u16>,
    group: Option<&str>,
) -> anyhow::Result<()> {
    use smart_ticket_ai::eval::{Field, Run, field_of, load_jsonl, report};
    use smart_ticket_ai::triage::{Past, Repr};
    let provider = crate::providers::Provider::new(settings)?;
    let engine = format!("{}:{}", provider.name(), provider.settings.model);
    let (examples, multi) = load_jsonl(train, label, group)?;
    let splits = splits(examples, test.map(|t| load_jsonl(t, label, None).map(|x| x.0)).transpose()?, cv)?;
    let bar = progress(splits.iter().map(|s| s.1.len()).sum(), "asking");
    let mut runs = Vec::new();
    for (train, test) in &splits {
        let field = field_of(train, multi);
        let taxonomy = label_set(train, field);
        let past: Vec<Past> = train
            .iter()
            .enumerate()
            .map(|(i, e)| Past { number: i as i64, repr: Repr::new(&e.text, None), ..Default::default() })
            .collect();
        let mut run = Run { n_train: train.len(), ..Default::default() };
        for e in test {
            let started = std::time::Instant::now();
            let grounding = grounding(&e.text, &past, train, field);
            let predicted = match provider.triage("", &e.text, &taxonomy, &grounding).await {
                Ok(t) => match field {
                    Field::Category => t.triage.category.map(|g| vec![g.value]).unwrap_or_default(),
                    Field::Priority => vec![t.triage.priority.value],
                    Field::Skills => t.triage.skills.into_iter().map(|g| g.value).collect(),
                },
                Err((f, _)) => {
                    tracing::warn!(error = f.detail, "the provider failed on one example (counted wrong)");
                    Vec::new()
                }
            };
            run.ms_per_ticket.push(started.elapsed().as_secs_f64() * 1e3);
            run.predicted.push(predicted);
            run.actual.push(e.labels.clone());
            bar.inc(1);
        }
        runs.push(run);
    }
    bar.finish_and_clear();
    println!("{}", serde_json::to_string(&report(label, &runs, cv.map(usize::from), &engine))?);
    Ok(())
}

/// The labels of the training rows as the taxonomy a provider chooses from (skills for a multi-label field).
fn label_set(train: &[Example], field: smart_ticket_ai::eval::Field) -> smart_ticket_ai::triage::Taxonomy {
    use smart_ticket_ai::triage::{Label, Taxonomy};
    let mut names: Vec<String> = train.iter().flat_map(|e| e.labels.iter().cloned()).collect();
    names.sort();
    names.dedup();
    let labels: Vec<Label> = names.iter().map(|n| Label { name: n.clone(), ..Default::default() }).collect();
    match field {
        smart_ticket_ai::eval::Field::Skills => Taxonomy { categories: Vec::new(), skills: labels },
        _ => Taxonomy { categories: labels, skills: Vec::new() },
    }
}

/// The three training rows nearest `text` by words, as a provider's grounding (their labels as history's).
fn grounding(
    text: &str,
    past: &[smart_ticket_ai::triage::Past],
    train: &[Example],
    field: smart_ticket_ai::eval::Field,
) -> Vec<crate::providers::Grounding> {
    use smart_ticket_ai::eval::Field;
    use smart_ticket_ai::triage::{Repr, neighbours};
    neighbours(&Repr::new(text, None), past, 3, None)
        .iter()
        .map(|n| {
            let ex = &train[n.past.number as usize];
            let first = ex.labels.first().cloned();
            crate::providers::Grounding {
                number: n.past.number,
                title: ex.text.chars().take(200).collect(),
                category: (field != Field::Priority).then(|| ex.labels.join(", ")),
                priority: (field == Field::Priority).then_some(first).flatten(),
                resolution: None,
            }
        })
        .collect()
}

/// A progress bar on standard error, drawn only when it is a terminal.
fn progress(len: usize, what: &'static str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len as u64);
    if let Ok(style) = indicatif::ProgressStyle::with_template("{prefix} {msg} [{bar:30}] {pos}/{len} {elapsed}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(what);
    bar
}

/// The multilingual model, for the evaluations that need it.
fn load_e5(dir: &std::path::Path) -> anyhow::Result<smart_ticket_ai::e5::E5> {
    smart_ticket_ai::e5::E5::load(dir)
        .with_context(|| format!("loading multilingual-e5-small from {} (run scripts/fetch-model)", dir.display()))
}
