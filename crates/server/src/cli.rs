//! The `smart-ticket` command line.

use anyhow::Context;
use clap::{Parser, Subcommand};
use smart_ticket_ai::MiniLm;
use smart_ticket_ai::eval::Example;
use smart_ticket_ai::triage::{ENGINE_LEXICAL, ENGINE_MINILM};
use smart_ticket_domain::{Email, Password, Role, Skills};
use std::io::Read;
use std::process::ExitCode;

use crate::auth::hash_password;
use crate::config::{ServeArgs, Settings, StorageArgs, WorkerArgs};
use crate::db::{Db, StoreError};
use crate::startup::Application;
use crate::telemetry::{self, LogFormat};

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
    /// Manage accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Measure the embedded AI on labelled JSON Lines files (`subject`, `body` and a label field).
    #[command(subcommand)]
    Eval(EvalCommand),
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
    },
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create an account; the password is read from standard input.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long, value_parser = ["user", "moderator", "admin"])]
        role: String,
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
    telemetry::init(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(serve) => {
            let settings = Settings::resolve(&cli.storage, &serve)?;
            Application::build(settings).await?.run_until_stopped().await
        }
        Command::Worker(args) => {
            let db = Db::connect(&cli.storage.database_url(), args.worker_concurrency as u32 + 2).await?;
            db.migrate().await?;
            let settings = args.pipeline(&cli.storage, 3000)?;
            crate::startup::run_worker(db, settings, args.worker_concurrency.max(1)).await
        }
        Command::Migrate => {
            let db = Db::connect(&cli.storage.database_url(), 1).await?;
            db.migrate().await?;
            println!("migrations applied ({})", db.backend());
            Ok(())
        }
        Command::Eval(EvalCommand::Classify { train, test, label, cv, group }) => {
            tokio::task::spawn_blocking(move || {
                let model = smart_ticket_ai::embed::load_shared(&cli.storage.model_dir);
                eval_classify(model.as_deref(), &train, test.as_deref(), &label, cv, group.as_deref())
            })
            .await?
        }
        Command::User(UserCommand::Create { email, role, skills, password_stdin: _ }) => {
            let email = Email::parse(&email).context("--email")?;
            let role: Role = role.parse()?;
            let skills = Skills::parse(&skills).context("--skills")?;
            let mut raw = String::new();
            std::io::stdin().read_to_string(&mut raw).context("reading the password from standard input")?;
            let password = Password::parse(raw.trim_end_matches(['\r', '\n'])).context("password")?;
            let db = Db::connect(&cli.storage.database_url(), 1).await?;
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
    }
}

/// Embeds every example (timing each, as triage would) when the model is loaded.
fn embed_examples(model: Option<&MiniLm>, examples: &mut [Example]) -> anyhow::Result<()> {
    let Some(model) = model else { return Ok(()) };
    let bar = progress(examples.len(), "embedding");
    for e in examples.iter_mut() {
        let t = std::time::Instant::now();
        e.vector = model.embed(&[e.text.as_str()])?.pop();
        e.embed_ms = t.elapsed().as_secs_f64() * 1e3;
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(())
}

fn eval_classify(
    model: Option<&MiniLm>,
    train: &std::path::Path,
    test: Option<&std::path::Path>,
    label: &str,
    cv: Option<u16>,
    group: Option<&str>,
) -> anyhow::Result<()> {
    use smart_ticket_ai::eval::{folds, load_jsonl, report, train_and_predict};
    let engine = if model.is_some() { ENGINE_MINILM } else { ENGINE_LEXICAL };
    let (mut examples, multi) = load_jsonl(train, label, group)?;
    embed_examples(model, &mut examples)?;
    let (runs, k) = match (test, cv) {
        (Some(test), _) => {
            let (mut test_examples, _) = load_jsonl(test, label, None)?;
            embed_examples(model, &mut test_examples)?;
            let bar = progress(test_examples.len(), "predicting");
            let run = train_and_predict(&examples, &test_examples, multi, engine, &mut || bar.inc(1))?;
            bar.finish_and_clear();
            (vec![run], None)
        }
        (None, Some(k)) => {
            let parts = folds(&examples, usize::from(k));
            let bar = progress(examples.len(), "cross-validating");
            let mut runs = Vec::new();
            for (f, held_out) in parts.iter().enumerate() {
                bar.set_message(format!("fold {}/{k}", f + 1));
                let held: std::collections::HashSet<usize> = held_out.iter().copied().collect();
                let train_part: Vec<_> =
                    (0..examples.len()).filter(|i| !held.contains(i)).map(|i| examples[i].clone()).collect();
                let test_part: Vec<_> = held_out.iter().map(|&i| examples[i].clone()).collect();
                runs.push(train_and_predict(&train_part, &test_part, multi, engine, &mut || bar.inc(1))?);
            }
            bar.finish_and_clear();
            (runs, Some(usize::from(k)))
        }
        (None, None) => anyhow::bail!("give --test FILE or --cv K"),
    };
    println!("{}", serde_json::to_string(&report(label, &runs, k, engine))?);
    Ok(())
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
