//! Building and running the service: `Application::build` binds the listener, so tests can use port 0.

use anyhow::Context;
use smart_ticket_domain::{Email, Password, Role, Skills};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::auth::{TokenKeys, hash_password};
use crate::config::{PipelineSettings, Settings};
use crate::db::{Db, StoreError};
use crate::desk::Desk;
use crate::jobs::Worker;
use crate::pipeline::Pipeline;

pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    desk: Desk,
}

impl Application {
    /// Opens and migrates the database, bootstraps the first admin if asked, and binds the listener.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let db = Db::connect(settings.database_url.expose(), settings.db_max_connections).await?;
        db.migrate().await?;
        if let Some((email, password)) = &settings.admin {
            bootstrap_admin(&db, email, password.expose()).await?;
        }
        let listener =
            TcpListener::bind(settings.bind_addr).await.with_context(|| format!("binding {}", settings.bind_addr))?;
        let addr = listener.local_addr()?;
        let pipeline = Pipeline::new(db.clone(), settings.pipeline.clone())?;
        let limits = Arc::new(crate::desk::limits::Limits::new(&settings.protection));
        let desk = Desk {
            pipeline,
            db,
            keys: TokenKeys::new(&settings.jwt_secret),
            settings: Arc::new(settings),
            wake: Arc::new(Notify::new()),
            heartbeat: Arc::default(),
            limits,
            views: Arc::default(),
        };
        crate::metrics::prometheus();
        Ok(Self { listener, addr, desk })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn db(&self) -> &Db {
        &self.desk.db
    }

    /// Serves (and runs the workers) until SIGTERM or Ctrl-C, then lets requests and jobs in flight finish.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        tracing::info!(addr = %self.addr, backend = self.desk.db.backend(), url = %self.desk.settings.app_url, "Smart Ticket is listening");
        let db = self.desk.db.clone();
        let stop = self.desk.pipeline.stop.clone();
        let stopped = stop.subscribe();
        // The in-memory vector index, built from the database now rather than at the first search.
        let (ai, index_db) = (self.desk.pipeline.ai.clone(), db.clone());
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            match ai.index.sync(&index_db).await {
                Ok(()) => tracing::info!(
                    tickets = ai.index.len(),
                    ms = started.elapsed().as_millis() as u64,
                    "vector index built"
                ),
                Err(e) => tracing::warn!(error = %e, "could not build the vector index (searches will retry)"),
            }
        });
        let views = tokio::spawn(self.desk.views.clone().run(db.clone(), stopped.clone()));
        let concurrency = self.desk.settings.worker_concurrency;
        let workers = (concurrency > 0).then(|| {
            let worker =
                Worker::new(db.clone(), self.desk.pipeline.registry()).with_heartbeat(self.desk.heartbeat.clone());
            let mailboxes = self.desk.pipeline.mailbox_names();
            tokio::spawn(crate::pipeline::schedule(db.clone(), mailboxes, self.desk.wake.clone(), stopped.clone()));
            tokio::spawn(worker.run(concurrency, self.desk.wake.clone(), stopped))
        });
        axum::serve(self.listener, app(self.desk).into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(async move {
                shutdown_signal().await;
                let _ = stop.send(true);
            })
            .await?;
        if let Some(w) = workers {
            let _ = w.await;
        }
        let _ = views.await;
        db.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Runs workers only (`smart-ticket worker`) until SIGTERM or Ctrl-C. They handle the same job kinds as the
/// workers inside `serve` ([`Pipeline::registry`]).
pub async fn run_worker(db: Db, settings: PipelineSettings, concurrency: usize) -> anyhow::Result<()> {
    let pipeline = Pipeline::new(db.clone(), settings)?;
    let (stop, stopped) = (pipeline.stop.clone(), pipeline.stop.subscribe());
    let registry = pipeline.registry();
    let wake = Arc::new(Notify::new());
    tokio::spawn(crate::pipeline::schedule(db.clone(), pipeline.mailbox_names(), wake.clone(), stopped.clone()));
    let worker = tokio::spawn(Worker::new(db.clone(), registry).run(concurrency, wake, stopped));
    shutdown_signal().await;
    let _ = stop.send(true);
    let _ = worker.await;
    db.close().await;
    Ok(())
}

/// Creates the admin named by ADMIN_EMAIL/ADMIN_PASSWORD unless an account with that e-mail exists.
async fn bootstrap_admin(db: &Db, email: &str, password: &str) -> anyhow::Result<()> {
    let email = Email::parse(email).context("ADMIN_EMAIL")?;
    if db.user_by_email(&email).await?.is_some() {
        return Ok(());
    }
    let hash = hash_password(Password::parse_for(password, &email).context("ADMIN_PASSWORD")?).await?;
    match db.create_user(&email, &hash, Role::Admin, &Skills::default()).await {
        Ok(_) => tracing::info!(email = %email, "created the first admin from ADMIN_EMAIL"),
        // Another process bootstrapped it at the same moment.
        Err(StoreError::Duplicate(_)) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutting down");
}

/// The whole service: the JSON API and the pages behind the shared middleware.
pub fn app(desk: Desk) -> axum::Router {
    let max_file = desk.pipeline.settings.mail.max_attachment_bytes;
    let routes = crate::http::router(max_file).merge(crate::web::router(desk.clone()));
    crate::front::app(desk, routes)
}
