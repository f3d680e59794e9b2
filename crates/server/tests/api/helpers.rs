//! `spawn_app`: a fresh database and a real server per test, and a small client for it.

use reqwest::StatusCode;
use serde_json::{Value, json};
use smart_ticket::config::Secret;
use smart_ticket::config::{MailSettings, PipelineSettings, Protection, Sla};
use smart_ticket::db::Db;
use smart_ticket::jobs::{Outcome, Worker};
use smart_ticket::pipeline::Pipeline;
use smart_ticket::{Application, Settings};
use smart_ticket_domain::{Email, JobKind, Password, Role, Skills};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Declares, for each scenario `async fn name(backend: Backend)` in the calling module, one test per backend.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $name() { super::$name($crate::helpers::Backend::Sqlite).await })*
        }
        mod postgres {
            $(#[tokio::test] async fn $name() { super::$name($crate::helpers::Backend::Postgres).await })*
        }
    };
}
pub(crate) use on_both_backends;

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub db: Db,
    /// The same pipeline the app's workers run; [`TestApp::drain`] runs its jobs.
    pub pipeline: Pipeline,
    pub dir: PathBuf,
    /// The database's URL, for running the binary's commands against it.
    pub database_url: String,
}

/// The sentence-embedding model fetched by `scripts/fetch-model` (run by `make test`).
pub fn model_dir() -> PathBuf {
    PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()))
        .join("../../models/all-minilm-l6-v2")
}

/// Pipeline settings for tests: defaults, the fetched model (and OpenBLAS, fetched beside it, for the
/// process's matrix products, as `smart-ticket` loads it at start).
pub fn pipeline_settings(dir: &std::path::Path, model_dir: PathBuf) -> PipelineSettings {
    let models = model_dir.parent().unwrap_or(&model_dir).to_owned();
    smart_ticket::engine::load_kernels(&models.join("openblas/libscipy_openblas.so"));
    PipelineSettings {
        app_url: "http://localhost".into(),
        sla: Sla::default(),
        // The multilingual model beside the English one (absent when the English one is).
        e5_dir: model_dir.with_file_name("multilingual-e5-small"),
        model_dir,
        ai_retrain_every: 20,
        finetune: Default::default(),
        data_dir: dir.to_owned(),
        mail: MailSettings::outbox(dir.join("outbox")),
        triage_provider: None,
        suggest_provider: None,
        webhook_timeout: std::time::Duration::from_secs(10),
    }
}

/// A signed-in account.
#[derive(Debug, Clone)]
pub struct Session {
    pub token: String,
    pub id: String,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn postgres_database() -> String {
    let admin = std::env::var("TEST_DATABASE_URL").expect(
        "TEST_DATABASE_URL is not set: run `make test`, which starts PostgreSQL and sets it \
         (or export TEST_DATABASE_URL=postgres://user:pass@127.0.0.1:5432/postgres)",
    );
    let name = format!("st_test_{}", uuid::Uuid::new_v4().simple());
    let pool = sqlx::PgPool::connect(&admin).await.expect("connecting to TEST_DATABASE_URL");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&pool)
        .await
        .expect("creating the test database");
    pool.close().await;
    let (base, _) = admin.rsplit_once('/').expect("TEST_DATABASE_URL has a database name");
    format!("{base}/{name}")
}

/// A fresh data folder and an empty database for one test.
pub async fn fresh_database(backend: Backend) -> (PathBuf, String) {
    let dir = std::env::temp_dir().join(format!("smart-ticket-test-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let database_url = match backend {
        Backend::Sqlite => format!("sqlite://{}", dir.join("test.db").display()),
        Backend::Postgres => postgres_database().await,
    };
    (dir, database_url)
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        let (dir, database_url) = fresh_database(backend).await;
        Self::start(dir, database_url).await
    }

    /// A fresh database and the app with the given rate limits and CORS origins.
    pub async fn spawn_protected(backend: Backend, protection: Protection) -> TestApp {
        let (dir, url) = fresh_database(backend).await;
        let pipeline = pipeline_settings(&dir, model_dir());
        Self::start_protected(dir, url, pipeline, protection).await
    }

    /// Starts the app on a database prepared with [`fresh_database`].
    pub async fn start(dir: PathBuf, database_url: String) -> TestApp {
        let pipeline = pipeline_settings(&dir, model_dir());
        Self::start_with(dir, database_url, pipeline).await
    }

    /// Starts the app with the given pipeline settings (e.g. without the embedding model).
    pub async fn start_with(dir: PathBuf, database_url: String, pipeline: PipelineSettings) -> TestApp {
        // Tests sign many accounts up and in from one address; `protection.rs` tests the real limits.
        let relaxed = Protection {
            login_per_minute: 10_000,
            login_failures_per_account: 10_000,
            signups_per_hour: 10_000,
            searches_per_minute: 10_000,
            costly_reads_per_minute: 10_000,
            cors_origins: Vec::new(),
        };
        Self::start_protected(dir, database_url, pipeline, relaxed).await
    }

    /// Starts the app with the given rate limits and CORS origins.
    pub async fn start_protected(
        dir: PathBuf,
        database_url: String,
        pipeline: PipelineSettings,
        protection: Protection,
    ) -> TestApp {
        let settings = Settings {
            data_dir: dir.clone(),
            database_url: Secret::new(database_url.clone()),
            db_max_connections: 8,
            bind_addr: "127.0.0.1:0".parse().unwrap(),
            app_url: "http://localhost".into(),
            jwt_secret: Secret::new("test-secret-test-secret-test-secret-42"),
            token_ttl: chrono::Duration::hours(1),
            admin: Some(("root@example.com".into(), Secret::new("root-password"))),
            // Tests drain the queue themselves with `Worker::try_execute_one`.
            worker_concurrency: 0,
            pipeline: pipeline.clone(),
            protection,
        };
        smart_ticket::providers::install_crypto();
        let app = Application::build(settings).await.expect("building the app");
        let base = format!("http://127.0.0.1:{}", app.port());
        let db = app.db().clone();
        tokio::spawn(app.run_until_stopped());
        let pipeline = Pipeline::new(db.clone(), pipeline).expect("building the pipeline");
        TestApp { base, client: reqwest::Client::new(), db, pipeline, dir, database_url }
    }

    /// Runs every ready job of the pipeline until none is left (but mailbox polls, which never end); returns
    /// the kinds run, in order.
    pub async fn drain(&self) -> Vec<JobKind> {
        let registry = self.pipeline.registry().without(JobKind::MailPoll);
        let worker = Worker::new(self.db.clone(), registry).with_backoff(chrono::Duration::zero());
        let mut kinds = Vec::new();
        loop {
            match worker.try_execute_one().await.expect("the job queue failed") {
                Outcome::Empty => return kinds,
                Outcome::Succeeded { kind, .. } => kinds.push(kind),
                other => panic!("a pipeline job did not succeed: {other:?} (after {kinds:?})"),
            }
        }
    }

    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request failed");
        let status = res.status();
        let text = res.text().await.unwrap();
        let value =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        (status, value)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.request(reqwest::Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.request(reqwest::Method::POST, path, token, Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.request(reqwest::Method::PATCH, path, token, Some(body)).await
    }

    pub async fn login(&self, email: &str, password: &str) -> Session {
        let (status, body) = self.post("/api/auth/login", None, json!({ "email": email, "password": password })).await;
        assert_eq!(status, StatusCode::OK, "login of {email}: {body}");
        Session {
            token: body["token"].as_str().unwrap().to_owned(),
            id: body["user"]["id"].as_str().unwrap().to_owned(),
        }
    }

    pub async fn admin(&self) -> Session {
        self.login("root@example.com", "root-password").await
    }

    /// Signs up through the API (role `user`).
    pub async fn signup(&self, email: &str) -> Session {
        let (status, body) =
            self.post("/api/auth/signup", None, json!({ "email": email, "password": "password-123" })).await;
        assert_eq!(status, StatusCode::CREATED, "signup of {email}: {body}");
        Session {
            token: body["token"].as_str().unwrap().to_owned(),
            id: body["user"]["id"].as_str().unwrap().to_owned(),
        }
    }

    /// Creates an account with any role, as `smart-ticket user create` does, and signs it in.
    pub async fn account(&self, email: &str, role: Role, skills: &[&str]) -> Session {
        let hash = smart_ticket::auth::hash_password(Password::parse("password-123").unwrap()).await.unwrap();
        self.db.create_user(&Email::parse(email).unwrap(), &hash, role, &Skills::parse(skills).unwrap()).await.unwrap();
        self.login(email, "password-123").await
    }

    /// Files a ticket as `who` and returns its JSON.
    pub async fn file_ticket(&self, who: &Session, title: &str, description: &str) -> Value {
        let (status, body) =
            self.post("/api/tickets", Some(&who.token), json!({ "title": title, "description": description })).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["ticket"].clone()
    }
}

/// A model on a mocked OpenAI-compatible server at `base_url`: no key, one attempt, a five-second timeout.
pub fn mocked_openai(
    base_url: String,
    model: &str,
    max_output_tokens: u32,
) -> smart_ticket::providers::ProviderSettings {
    smart_ticket::providers::ProviderSettings {
        kind: smart_ticket::providers::ProviderKind::OpenAi,
        base_url,
        api_key: None,
        model: model.into(),
        timeout: std::time::Duration::from_secs(5),
        max_output_tokens,
        max_attempts: 1,
        backoff: std::time::Duration::from_millis(10),
        breaker_threshold: 5,
        breaker_cooldown: std::time::Duration::from_secs(30),
    }
}
