//! The JSON API: one router per resource, merged here. Handlers read the request, call the desk and shape
//! the answer; the rules are in `desk`.

pub(crate) mod accounts;
pub(crate) mod admin;
pub(crate) mod ai_admin;
pub(crate) mod articles;
pub(crate) mod attachments;
pub(crate) mod mail;
pub mod openapi;
mod ops;
pub(crate) mod proposals;
pub(crate) mod taxonomy;
pub(crate) mod tickets;
mod workflow;

use axum::Router;

use crate::desk::Desk;

/// Every API route (and `/healthz`, `/readyz`, `/metrics`, the OpenAPI document); uploads take files of
/// up to `max_file` bytes.
pub fn router(max_file: usize) -> Router<Desk> {
    Router::new()
        .merge(attachments::router(max_file))
        .merge(accounts::router())
        .merge(tickets::router())
        .merge(articles::router())
        .merge(proposals::router())
        .merge(admin::router())
        .merge(taxonomy::router())
        .merge(ai_admin::router())
        .merge(mail::router())
        .merge(ops::router())
        .merge(workflow::router())
        .merge(openapi::router())
}
