//! Settings from flags, environment variables and `.env`, in one typed struct.

use anyhow::Context;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use crate::secret::Secret;

/// Where the database lives and where local state (secrets, outbox, models) is kept.
#[derive(Debug, Clone, clap::Args)]
pub struct StorageArgs {
    /// Folder for the SQLite file, generated secrets, the mail outbox and learned model state.
    #[arg(long, env = "DATA_DIR", default_value = "data", global = true)]
    pub data_dir: PathBuf,
    /// `sqlite://path/to/file.db` or `postgres://user:pass@host/db`; default: a SQLite file in DATA_DIR.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<Secret>,
    /// Largest number of pooled database connections.
    #[arg(long, env = "DB_MAX_CONNECTIONS", default_value_t = 16, global = true)]
    pub db_max_connections: u32,
    /// Folder holding all-MiniLM-L6-v2 (see `scripts/fetch-model`); without it the AI runs on words alone.
    #[arg(long, env = "MODEL_DIR", default_value = "models/all-minilm-l6-v2", global = true)]
    pub model_dir: PathBuf,
    /// Folder holding multilingual-e5-small (see `scripts/fetch-model`): cross-language similarity.
    #[arg(long, env = "E5_MODEL_DIR", default_value = "models/multilingual-e5-small", global = true)]
    pub e5_dir: PathBuf,
    /// OpenBLAS library for the encoder's matrix products (see `scripts/fetch-model`); missing or empty: the
    /// built-in kernels, about 3× slower.
    #[arg(long, env = "AI_BLAS_LIBRARY", default_value = "models/openblas/libscipy_openblas.so", global = true)]
    pub blas_library: PathBuf,
}

impl StorageArgs {
    pub fn database_url(&self) -> Secret {
        self.database_url
            .clone()
            .unwrap_or_else(|| Secret::new(format!("sqlite://{}", self.data_dir.join("smart-ticket.db").display())))
    }
}

/// Settings of the background workers.
#[derive(Debug, Clone, clap::Args)]
pub struct WorkerArgs {
    /// Jobs run at once by this process (`serve` with 0 runs no workers: use `smart-ticket worker`).
    #[arg(long, env = "WORKER_CONCURRENCY", default_value_t = 8)]
    pub worker_concurrency: usize,
    /// Retrain the AI's supervised models each time this many more tickets have been labelled (resolved, or
    /// their category, priority or skills corrected by a person).
    #[arg(long, env = "AI_RETRAIN_EVERY", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub ai_retrain_every: u32,
    /// How long a webhook's receiver has to answer a delivery, in seconds.
    #[arg(long, env = "WEBHOOK_TIMEOUT_SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=60))]
    pub webhook_timeout_seconds: u64,
    /// Fine-tune the sentence model's top layer on the labelled tickets at most once per this many labels
    /// (from 200 labelled tickets on); 0 never fine-tunes.
    #[arg(long, env = "AI_FINETUNE_EVERY", default_value_t = 1000)]
    pub ai_finetune_every: u32,
    /// Threads a fine-tune may use (the rest of the machine keeps triaging).
    #[arg(long, env = "AI_FINETUNE_THREADS", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub ai_finetune_threads: u16,
    /// How much better (mean held-back accuracy, 0 to 1) a fine-tuned encoder must be than the frozen one to
    /// be used; 0: any improvement.
    #[arg(long, env = "AI_FINETUNE_MIN_GAIN", default_value_t = 0.0)]
    pub ai_finetune_min_gain: f64,
    /// Public URL of this service, used in links (and, when https, for Secure cookies).
    #[arg(long, env = "APP_URL")]
    pub app_url: Option<String>,
    /// Response deadlines per priority, in hours (set at triage; a breach escalates to the admins).
    #[arg(long, env = "SLA_URGENT_HOURS", default_value_t = 1.0)]
    pub sla_urgent_hours: f64,
    #[arg(long, env = "SLA_HIGH_HOURS", default_value_t = 4.0)]
    pub sla_high_hours: f64,
    #[arg(long, env = "SLA_MEDIUM_HOURS", default_value_t = 24.0)]
    pub sla_medium_hours: f64,
    #[arg(long, env = "SLA_LOW_HOURS", default_value_t = 72.0)]
    pub sla_low_hours: f64,
    /// SMTP server for outgoing mail (alias MAILTRAP_SMTP_HOST). Unset: mail is written to DATA_DIR/outbox.
    #[arg(long, env = "SMTP_HOST")]
    pub smtp_host: Option<String>,
    /// Default 587 with STARTTLS, 465 with TLS, 25 without (alias MAILTRAP_SMTP_PORT).
    #[arg(long, env = "SMTP_PORT")]
    pub smtp_port: Option<u16>,
    /// Alias MAILTRAP_SMTP_USER.
    #[arg(long, env = "SMTP_USERNAME")]
    pub smtp_username: Option<String>,
    /// Alias MAILTRAP_SMTP_PASS.
    #[arg(long, env = "SMTP_PASSWORD", hide_env_values = true)]
    pub smtp_password: Option<Secret>,
    #[arg(long, env = "SMTP_FROM", default_value = "Smart Ticket <noreply@localhost>")]
    pub smtp_from: String,
    /// The address customers write to (mail piped to `smart-ticket mail-in`): the Reply-To of every mail about
    /// a ticket, so a customer's answer comes back to the desk.
    #[arg(long, env = "SUPPORT_ADDRESS")]
    pub support_address: Option<String>,
    /// `starttls` (default), `tls` (implicit TLS) or `none` (plain, for a local relay).
    #[arg(long, env = "SMTP_TLS", value_enum, default_value_t = SmtpTls::StartTls)]
    pub smtp_tls: SmtpTls,
    /// IMAP server of the support mailbox; unset: no mailbox is read (mail can still be piped to `mail-in`).
    #[arg(long, env = "IMAP_HOST")]
    pub imap_host: Option<String>,
    /// Default 993 with TLS, 143 with STARTTLS or none.
    #[arg(long, env = "IMAP_PORT")]
    pub imap_port: Option<u16>,
    #[arg(long, env = "IMAP_USERNAME")]
    pub imap_username: Option<String>,
    #[arg(long, env = "IMAP_PASSWORD", hide_env_values = true)]
    pub imap_password: Option<Secret>,
    /// The folder read for new mail.
    #[arg(long, env = "IMAP_FOLDER", default_value = "INBOX")]
    pub imap_folder: String,
    /// `tls` (implicit TLS, default), `starttls` or `none` (plain, for a server on this machine).
    #[arg(long, env = "IMAP_TLS", value_enum, default_value_t = SmtpTls::Tls)]
    pub imap_tls: SmtpTls,
    /// Seconds between polls of a mailbox whose server does not offer IDLE (and the longest IDLE wait).
    #[arg(long, env = "IMAP_POLL_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub imap_poll_seconds: u64,
    /// A JSON file listing more mailboxes: `[{"name": "sales", "host": …, "port": …, "username": …,
    /// "password": …, "folder": "INBOX", "tls": "tls"}]`.
    #[arg(long, env = "IMAP_MAILBOXES_FILE")]
    pub imap_mailboxes_file: Option<PathBuf>,
    /// Largest message taken in, in megabytes: a larger one is kept as its header and its sender is told.
    #[arg(long, env = "MAIL_MAX_MESSAGE_MB", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub mail_max_message_mb: u64,
    /// Largest attachment, in megabytes (uploads and mail): a larger file is refused (413, or a note to the sender).
    #[arg(long, env = "ATTACHMENT_MAX_MB", default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub attachment_max_mb: u64,
    /// Triage engine: `local` (embedded, default), `gemini` or `openai` (also any OpenAI-compatible server).
    /// A provider failure always falls back to the embedded engine for that ticket.
    #[arg(long, env = "AI_PROVIDER", value_enum, default_value_t = Engine::Local)]
    pub ai_provider: Engine,
    /// Overrides AI_PROVIDER for triage.
    #[arg(long, env = "AI_TRIAGE_PROVIDER", value_enum)]
    pub ai_triage_provider: Option<Engine>,
    /// Overrides AI_PROVIDER for drafting replies in suggestions.
    #[arg(long, env = "AI_SUGGEST_PROVIDER", value_enum)]
    pub ai_suggest_provider: Option<Engine>,
    #[arg(long, env = "GEMINI_API_KEY", hide_env_values = true)]
    pub gemini_api_key: Option<Secret>,
    #[arg(long, env = "GEMINI_MODEL", default_value = "gemini-2.0-flash")]
    pub gemini_model: String,
    /// Google's endpoint by default; a gateway or proxy may stand in.
    #[arg(long, env = "GEMINI_BASE_URL", default_value = "https://generativelanguage.googleapis.com")]
    pub gemini_base_url: String,
    /// Required for api.openai.com; optional for a self-hosted OpenAI-compatible server.
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true)]
    pub openai_api_key: Option<Secret>,
    /// E.g. http://localhost:11434/v1 for Ollama.
    #[arg(long, env = "OPENAI_BASE_URL", default_value = "https://api.openai.com/v1")]
    pub openai_base_url: String,
    #[arg(long, env = "OPENAI_MODEL", default_value = "gpt-4o-mini")]
    pub openai_model: String,
    /// Time budget of one provider call, retries included, in seconds.
    #[arg(long, env = "AI_TIMEOUT_SECONDS", default_value_t = 20.0)]
    pub ai_timeout_seconds: f64,
    #[arg(long, env = "AI_MAX_OUTPUT_TOKENS", default_value_t = 512)]
    pub ai_max_output_tokens: u32,
}

/// How the SMTP connection is secured: `starttls`, `tls` (implicit TLS) or `none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SmtpTls {
    #[value(name = "starttls")]
    StartTls,
    Tls,
    None,
}

/// One IMAP mailbox the desk reads.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ImapSettings {
    /// Names the mailbox in the queue, the health checks and the metrics (`default` for the IMAP_* one).
    pub name: String,
    pub host: String,
    #[serde(default)]
    pub port: Option<u16>,
    pub username: String,
    pub password: Secret,
    #[serde(default = "inbox")]
    pub folder: String,
    #[serde(default = "implicit_tls", deserialize_with = "tls_by_name")]
    pub tls: SmtpTls,
    /// Between polls without IDLE, and the longest IDLE wait.
    #[serde(skip, default = "default_poll")]
    pub poll: std::time::Duration,
}

impl ImapSettings {
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(if self.tls == SmtpTls::Tls { 993 } else { 143 })
    }

    /// What mail from this mailbox is recorded as coming from.
    pub fn source(&self) -> String {
        format!("imap:{}", self.name)
    }
}

fn inbox() -> String {
    "INBOX".into()
}

fn implicit_tls() -> SmtpTls {
    SmtpTls::Tls
}

fn default_poll() -> std::time::Duration {
    std::time::Duration::from_secs(30)
}

fn tls_by_name<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SmtpTls, D::Error> {
    let name = <String as serde::Deserialize>::deserialize(d)?;
    <SmtpTls as clap::ValueEnum>::from_str(&name, true)
        .map_err(|_| serde::de::Error::custom(format!("tls must be tls, starttls or none, not {name:?}")))
}

/// Who answers an AI task: the embedded engine (`local`), or a language-model provider (which falls back to it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Local,
    Provider(crate::providers::ProviderKind),
}

impl Engine {
    /// The provider this engine calls; `None` for the embedded one.
    pub fn provider(self) -> Option<crate::providers::ProviderKind> {
        match self {
            Engine::Local => None,
            Engine::Provider(kind) => Some(kind),
        }
    }
}

impl clap::ValueEnum for Engine {
    fn value_variants<'a>() -> &'a [Self] {
        use crate::providers::ProviderKind;
        &[Engine::Local, Engine::Provider(ProviderKind::Gemini), Engine::Provider(ProviderKind::OpenAi)]
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(match self {
            Engine::Local => "local",
            Engine::Provider(kind) => kind.as_str(),
        }))
    }
}

/// Outgoing mail.
#[derive(Debug, Clone)]
pub struct MailSettings {
    pub smtp_host: Option<String>,
    pub port: Option<u16>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub from: String,
    pub tls: SmtpTls,
    /// Where mail goes without SMTP.
    pub outbox: PathBuf,
    /// The address customers write to: the From and Reply-To of every mail about a ticket.
    pub support_address: Option<String>,
    /// The mailboxes read for new mail.
    pub mailboxes: Vec<ImapSettings>,
    /// Largest message taken in, in bytes.
    pub max_message_bytes: usize,
    /// Largest attachment, in bytes.
    pub max_attachment_bytes: usize,
}

impl MailSettings {
    /// No SMTP: `.eml` files in `outbox`.
    pub fn outbox(outbox: PathBuf) -> Self {
        Self {
            smtp_host: None,
            port: None,
            username: None,
            password: None,
            from: "Smart Ticket <noreply@localhost>".into(),
            tls: SmtpTls::StartTls,
            outbox,
            support_address: None,
            mailboxes: Vec::new(),
            max_message_bytes: 30 << 20,
            max_attachment_bytes: 20 << 20,
        }
    }
}

pub use smart_ticket_domain::sla::Sla;

/// When and how the sentence model is fine-tuned on a team's labels (see `Ai::finetune`).
#[derive(Debug, Clone, Copy)]
pub struct FinetuneSettings {
    /// Labels between two fine-tunes; 0: never.
    pub every: u32,
    pub threads: usize,
    pub min_gain: f64,
}

impl Default for FinetuneSettings {
    fn default() -> Self {
        Self { every: 1000, threads: 1, min_gain: 0.0 }
    }
}

/// What the background pipeline needs, shared by `serve` and `worker`.
#[derive(Debug, Clone)]
pub struct PipelineSettings {
    pub app_url: String,
    pub sla: Sla,
    pub model_dir: PathBuf,
    pub e5_dir: PathBuf,
    pub ai_retrain_every: u32,
    pub finetune: FinetuneSettings,
    pub data_dir: PathBuf,
    pub mail: MailSettings,
    /// A language model for triage; `None`: the embedded engine alone.
    pub triage_provider: Option<crate::providers::ProviderSettings>,
    /// A language model for drafting replies; `None`: composed from past resolutions.
    pub suggest_provider: Option<crate::providers::ProviderSettings>,
    /// How long a webhook's receiver has to answer (`WEBHOOK_TIMEOUT_SECONDS`, 1 to 60, default 10).
    pub webhook_timeout: std::time::Duration,
}

impl WorkerArgs {
    pub fn pipeline(&self, storage: &StorageArgs, port: u16) -> anyhow::Result<PipelineSettings> {
        let hours = |name: &str, h: f64| -> anyhow::Result<chrono::Duration> {
            if !(h.is_finite() && h > 0.0 && h <= 24.0 * 365.0) {
                anyhow::bail!("{name} must be a number of hours between 0 and 8760");
            }
            Ok(chrono::Duration::seconds((h * 3600.0).round() as i64))
        };
        Ok(PipelineSettings {
            app_url: self
                .app_url
                .clone()
                .unwrap_or_else(|| format!("http://localhost:{port}"))
                .trim_end_matches('/')
                .to_owned(),
            sla: Sla {
                urgent: hours("SLA_URGENT_HOURS", self.sla_urgent_hours)?,
                high: hours("SLA_HIGH_HOURS", self.sla_high_hours)?,
                medium: hours("SLA_MEDIUM_HOURS", self.sla_medium_hours)?,
                low: hours("SLA_LOW_HOURS", self.sla_low_hours)?,
            },
            model_dir: storage.model_dir.clone(),
            e5_dir: storage.e5_dir.clone(),
            ai_retrain_every: self.ai_retrain_every,
            finetune: FinetuneSettings {
                every: self.ai_finetune_every,
                threads: usize::from(self.ai_finetune_threads),
                min_gain: self.finetune_min_gain()?,
            },
            data_dir: storage.data_dir.clone(),
            mail: self.mail(storage)?,
            triage_provider: self.provider(self.ai_triage_provider.unwrap_or(self.ai_provider).provider())?,
            suggest_provider: self.provider(self.ai_suggest_provider.unwrap_or(self.ai_provider).provider())?,
            webhook_timeout: std::time::Duration::from_secs(self.webhook_timeout_seconds),
        })
    }

    /// `AI_FINETUNE_MIN_GAIN`, checked to lie between -1 and 1.
    fn finetune_min_gain(&self) -> anyhow::Result<f64> {
        let gain = self.ai_finetune_min_gain;
        anyhow::ensure!((-1.0..=1.0).contains(&gain), "AI_FINETUNE_MIN_GAIN must be between -1 and 1");
        Ok(gain)
    }

    /// The settings of provider `kind` (none for the embedded engine), checked.
    pub fn provider(
        &self,
        kind: Option<crate::providers::ProviderKind>,
    ) -> anyhow::Result<Option<crate::providers::ProviderSettings>> {
        use crate::providers::{ProviderKind, ProviderSettings};
        if !(self.ai_timeout_seconds.is_finite() && self.ai_timeout_seconds > 0.0 && self.ai_timeout_seconds <= 600.0) {
            anyhow::bail!("AI_TIMEOUT_SECONDS must be between 0 and 600");
        }
        let Some(kind) = kind else { return Ok(None) };
        let (base_url, api_key, model) = match kind {
            ProviderKind::Gemini => {
                if self.gemini_api_key.is_none() {
                    anyhow::bail!("AI_PROVIDER=gemini needs GEMINI_API_KEY");
                }
                (&self.gemini_base_url, self.gemini_api_key.clone(), &self.gemini_model)
            }
            ProviderKind::OpenAi => {
                if self.openai_api_key.is_none() && self.openai_base_url.contains("api.openai.com") {
                    anyhow::bail!("AI_PROVIDER=openai with OpenAI's endpoint needs OPENAI_API_KEY");
                }
                (&self.openai_base_url, self.openai_api_key.clone(), &self.openai_model)
            }
        };
        Ok(Some(ProviderSettings {
            kind,
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_key,
            model: model.clone(),
            timeout: std::time::Duration::from_secs_f64(self.ai_timeout_seconds),
            max_output_tokens: self.ai_max_output_tokens.clamp(64, 8192),
            max_attempts: 3,
            backoff: std::time::Duration::from_millis(500),
            breaker_threshold: 5,
            breaker_cooldown: std::time::Duration::from_secs(30),
        }))
    }

    /// SMTP settings, taking the original's MAILTRAP_SMTP_* variables as aliases.
    fn mail(&self, storage: &StorageArgs) -> anyhow::Result<MailSettings> {
        let alias = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let port = match (self.smtp_port, alias("MAILTRAP_SMTP_PORT")) {
            (Some(p), _) => Some(p),
            (None, Some(p)) => Some(p.trim().parse().context("MAILTRAP_SMTP_PORT must be a port number")?),
            (None, None) => None,
        };
        Ok(MailSettings {
            smtp_host: self.smtp_host.clone().or_else(|| alias("MAILTRAP_SMTP_HOST")),
            port,
            username: self.smtp_username.clone().or_else(|| alias("MAILTRAP_SMTP_USER")),
            password: self.smtp_password.clone().or_else(|| alias("MAILTRAP_SMTP_PASS").map(Secret::new)),
            from: self.smtp_from.clone(),
            tls: self.smtp_tls,
            outbox: storage.data_dir.join("outbox"),
            support_address: self.support_address.clone(),
            mailboxes: self.mailboxes()?,
            max_message_bytes: (self.mail_max_message_mb << 20) as usize,
            max_attachment_bytes: (self.attachment_max_mb << 20) as usize,
        })
    }

    /// The IMAP_* mailbox (named `default`) and those of IMAP_MAILBOXES_FILE.
    fn mailboxes(&self) -> anyhow::Result<Vec<ImapSettings>> {
        let poll = std::time::Duration::from_secs(self.imap_poll_seconds);
        let mut all = Vec::new();
        if let Some(host) = &self.imap_host {
            let (Some(username), Some(password)) = (&self.imap_username, &self.imap_password) else {
                anyhow::bail!("IMAP_HOST needs IMAP_USERNAME and IMAP_PASSWORD");
            };
            all.push(ImapSettings {
                name: "default".into(),
                host: host.clone(),
                port: self.imap_port,
                username: username.clone(),
                password: password.clone(),
                folder: self.imap_folder.clone(),
                tls: self.imap_tls,
                poll,
            });
        }
        if let Some(file) = &self.imap_mailboxes_file {
            let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
            let more: Vec<ImapSettings> = serde_json::from_str(&text)
                .with_context(|| format!("IMAP_MAILBOXES_FILE {} is not a list of mailboxes", file.display()))?;
            all.extend(more.into_iter().map(|m| ImapSettings { poll, ..m }));
        }
        let mut names: Vec<&str> = all.iter().map(|m| m.name.as_str()).collect();
        names.sort_unstable();
        if names.windows(2).any(|w| w[0] == w[1]) {
            anyhow::bail!("two mailboxes share a name (the IMAP_* mailbox is named \"default\")");
        }
        Ok(all)
    }
}

/// Settings of the HTTP server.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub workers: WorkerArgs,
    /// Address and port to listen on.
    #[arg(long, env = "BIND_ADDR", default_value = "127.0.0.1:3000")]
    pub bind_addr: SocketAddr,
    /// Key that signs API tokens; generated once into DATA_DIR when unset.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<Secret>,
    /// How long an API token or browser session lasts, in hours.
    #[arg(long, env = "JWT_TTL_HOURS", default_value_t = 24)]
    pub jwt_ttl_hours: u32,
    /// With ADMIN_PASSWORD: creates this admin at start when no account has this e-mail.
    #[arg(long, env = "ADMIN_EMAIL")]
    pub admin_email: Option<String>,
    #[arg(long, env = "ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<Secret>,
    /// Log-in attempts per client address per minute (then 429 with Retry-After).
    #[arg(long, env = "LOGIN_RATE_PER_MINUTE", default_value_t = 20)]
    pub login_rate_per_minute: u32,
    /// Failed log-ins on one account from one address within 15 minutes before that address is paused on it for
    /// the rest of the window; three times as many from one address on any accounts pause that address, and
    /// as many on one account from anywhere make each further attempt on it wait (1 s, doubling, at most 30 s)
    /// instead of locking its owner out.
    #[arg(long, env = "LOGIN_FAILURES_PER_ACCOUNT", default_value_t = 10)]
    pub login_failures_per_account: u32,
    /// Sign-ups per client address per hour.
    #[arg(long, env = "SIGNUP_RATE_PER_HOUR", default_value_t = 20)]
    pub signup_rate_per_hour: u32,
    /// Searches (`GET /api/tickets?q=`, the lists' search box) per account per minute.
    #[arg(long, env = "SEARCH_RATE_PER_MINUTE", default_value_t = 60)]
    pub search_rate_per_minute: u32,
    /// Suggestions and duplicate checks per account per minute.
    #[arg(long, env = "COSTLY_READS_PER_MINUTE", default_value_t = 120)]
    pub costly_reads_per_minute: u32,
    /// Origins (comma-separated, e.g. `https://support.example.com`) whose pages may call the API from the
    /// browser. Empty (the default): CORS is off.
    #[arg(long, env = "CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
}

/// Abuse protection: rate limits on log-in and sign-up, and the origins allowed cross-site.
#[derive(Debug, Clone)]
pub struct Protection {
    pub login_per_minute: u32,
    pub login_failures_per_account: u32,
    pub signups_per_hour: u32,
    pub searches_per_minute: u32,
    pub costly_reads_per_minute: u32,
    pub cors_origins: Vec<String>,
}

impl Default for Protection {
    fn default() -> Self {
        Self {
            login_per_minute: 20,
            login_failures_per_account: 10,
            signups_per_hour: 20,
            searches_per_minute: 60,
            costly_reads_per_minute: 120,
            cors_origins: Vec::new(),
        }
    }
}

/// Everything [`crate::Application::build`] needs, resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub database_url: Secret,
    pub db_max_connections: u32,
    pub bind_addr: SocketAddr,
    pub app_url: String,
    pub jwt_secret: Secret,
    pub token_ttl: chrono::Duration,
    pub admin: Option<(String, Secret)>,
    pub worker_concurrency: usize,
    pub pipeline: PipelineSettings,
    pub protection: Protection,
}

impl Settings {
    pub fn resolve(storage: &StorageArgs, serve: &ServeArgs) -> anyhow::Result<Self> {
        let jwt_secret = match &serve.jwt_secret {
            Some(s) if s.expose().len() >= 32 => s.clone(),
            Some(_) => anyhow::bail!("JWT_SECRET must be at least 32 characters"),
            None => generated_secret(&storage.data_dir)?,
        };
        let admin = match (&serve.admin_email, &serve.admin_password) {
            (Some(e), Some(p)) => Some((e.clone(), p.clone())),
            (None, None) => None,
            _ => anyhow::bail!("ADMIN_EMAIL and ADMIN_PASSWORD go together: set both or neither"),
        };
        let pipeline = serve.workers.pipeline(storage, serve.bind_addr.port())?;
        if serve.jwt_ttl_hours == 0 {
            anyhow::bail!("JWT_TTL_HOURS must be at least 1");
        }
        Ok(Self {
            data_dir: storage.data_dir.clone(),
            database_url: storage.database_url(),
            db_max_connections: storage.db_max_connections,
            bind_addr: serve.bind_addr,
            app_url: pipeline.app_url.clone(),
            jwt_secret,
            token_ttl: chrono::Duration::hours(i64::from(serve.jwt_ttl_hours)),
            admin,
            worker_concurrency: serve.workers.worker_concurrency,
            pipeline,
            protection: Protection {
                login_per_minute: serve.login_rate_per_minute.max(1),
                login_failures_per_account: serve.login_failures_per_account.max(1),
                signups_per_hour: serve.signup_rate_per_hour.max(1),
                searches_per_minute: serve.search_rate_per_minute.max(1),
                costly_reads_per_minute: serve.costly_reads_per_minute.max(1),
                cors_origins: cors_origins(&serve.cors_origins)?,
            },
        })
    }

    /// Cookies get `Secure` when the public URL is https.
    pub fn secure_cookies(&self) -> bool {
        self.app_url.starts_with("https://")
    }
}

/// Origins as browsers send them: scheme, host and optional port, no path.
fn cors_origins(raw: &[String]) -> anyhow::Result<Vec<String>> {
    raw.iter()
        .map(|o| o.trim().trim_end_matches('/').to_owned())
        .filter(|o| !o.is_empty())
        .map(|o| {
            let rest = o.strip_prefix("https://").or_else(|| o.strip_prefix("http://"));
            match rest {
                Some(host)
                    if !host.is_empty() && !host.contains('/') && o.parse::<axum::http::HeaderValue>().is_ok() =>
                {
                    Ok(o)
                }
                _ => anyhow::bail!("CORS_ORIGINS: {o:?} is not an origin like https://support.example.com"),
            }
        })
        .collect()
}

/// Reads the signing key kept in the data folder, creating it (mode 0600) on first use.
fn generated_secret(data_dir: &Path) -> anyhow::Result<Secret> {
    let path = data_dir.join("jwt_secret");
    if let Ok(s) = std::fs::read_to_string(&path) {
        let s = s.trim();
        if s.len() >= 32 {
            return Ok(Secret::new(s));
        }
    }
    std::fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let secret = crate::secret::random_token();
    write_private(&path, &secret).with_context(|| format!("writing {}", path.display()))?;
    tracing::warn!(path = %path.display(), "JWT_SECRET is not set: generated a signing key and stored it in the data folder");
    Ok(Secret::new(secret))
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    f.write_all(contents.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}
