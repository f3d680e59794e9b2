//! Smart Ticket as a library. Requests come in through `http/` (the JSON API) and `web/` (the pages), which
//! share `front/` (extractors, error answers, middleware) and call the use-cases in `desk/`; the workflow runs
//! in `pipeline` on the job queue (`jobs`); storage is the `smart-ticket-store` crate (`db`); the AI is `engine` (the embedded engine as the
//! service runs it), `providers` (optional language models) and `search`.

pub mod auth;
pub mod batcher;
pub mod cli;
pub mod config;
pub mod desk;
pub mod engine;
pub mod eval_answers;
pub mod eval_cluster;
pub mod front;
pub mod http;
pub mod import;
pub mod jobs;
pub mod logging;
pub mod mail;
pub mod markdown;
pub mod metrics;
pub mod pipeline;
pub mod providers;
pub mod search;
pub mod secret;
pub mod startup;
pub mod web;

/// Storage is its own crate (`smart-ticket-store`); these are its paths in here.
pub use smart_ticket_store as db;
pub use smart_ticket_store::model;

pub use config::Settings;
pub use startup::Application;
