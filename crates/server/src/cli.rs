//! The `smart-ticket` command line.

use anyhow::Context;
use clap::{Parser, Subcommand};
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
            crate::startup::run_worker(db, crate::jobs::Registry::new(), args.worker_concurrency.max(1)).await;
            Ok(())
        }
        Command::Migrate => {
            let db = Db::connect(&cli.storage.database_url(), 1).await?;
            db.migrate().await?;
            println!("migrations applied ({})", db.backend());
            Ok(())
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
