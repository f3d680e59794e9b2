//! The API's OpenAPI 3.1 description, generated from the handlers and types (`/api/openapi.json`), and a
//! browsable page for it (`/api/docs`, Swagger UI served from the binary: no CDN).

use axum::Router;
use axum::http::{HeaderValue, header};
use utoipa::openapi::response::{ResponseBuilder, ResponsesBuilder};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as Document, RefOr};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use super::{
    accounts, admin, ai_admin as ai, articles, attachments, mail, ops, proposals, taxonomy, tickets, workflow,
};
use crate::desk::Desk;
use crate::front::error::ErrorBody;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Smart Ticket",
        description = "A self-hosted, AI-native helpdesk: tickets triage and route themselves. Errors answer \
                       `{\"error\": {\"code\", \"message\", \"fields\"}}`. Authenticate with `Authorization: \
                       Bearer <token>` from log-in or sign-up (browsers: the session cookie)."
    ),
    paths(
        accounts::signup, accounts::login, accounts::logout, accounts::me, accounts::list_users, accounts::forgot,
        accounts::reset,
        accounts::update_user_by_email, accounts::update_user,
        tickets::list_tickets, tickets::create_ticket, tickets::get_ticket, tickets::update_ticket,
        tickets::list_comments, tickets::create_comment, tickets::list_events, tickets::suggestions, tickets::summary,
        tickets::suggestion_feedback, tickets::similar, tickets::merge,
        taxonomy::get_taxonomy, taxonomy::put_category, taxonomy::delete_category, taxonomy::put_skill,
        admin::list_jobs, admin::retry_job, admin::settings, admin::change_settings, mail::list, mail::retry, mail::dismiss, mail::mailboxes, mail::of_ticket, mail::original,
        attachments::upload_files, attachments::list_files, attachments::download_file,
        ai::quality, ai::status, ai::retrain, ai::finetune,
        articles::list, articles::create, articles::read, articles::change, articles::remove, articles::revisions,
        articles::vote, articles::solved, articles::suggest, articles::report, articles::from_ticket,
        proposals::list, proposals::accept, proposals::dismiss, proposals::refresh,
        workflow::list_canned, workflow::create_canned, workflow::read_canned, workflow::change_canned,
        workflow::delete_canned, workflow::fill_canned, workflow::list_macros, workflow::create_macro,
        workflow::read_macro, workflow::replace_macro, workflow::delete_macro, workflow::preview_macro,
        workflow::apply_macro, workflow::list_rules, workflow::create_rule, workflow::read_rule, workflow::replace_rule,
        workflow::toggle_rule, workflow::delete_rule, workflow::dry_run_rule, workflow::list_webhooks,
        workflow::create_webhook, workflow::read_webhook, workflow::change_webhook, workflow::delete_webhook,
        workflow::webhook_deliveries, workflow::redeliver, workflow::deliver_pending_now,
        ops::healthz, ops::readyz, ops::metrics,
    ),
    components(schemas(ErrorBody, crate::desk::webhooks::WebhookBody)),
    modifiers(&Conventions),
    security(("bearer" = []), ("session_cookie" = [])),
    tags(
        (name = "accounts", description = "Sign-up, log-in, accounts"),
        (name = "tickets", description = "Filing, reading and working tickets; suggestions and duplicates"),
        (name = "taxonomy", description = "Categories, priorities, skills"),
        (name = "admin", description = "The job queue; received mail that was refused or ignored; run-time settings"),
        (name = "knowledge base", description = "Articles, the help centre's search, votes, self-service"),
        (name = "ai", description = "The AI engine: quality, status, retraining, fine-tuning"),
        (name = "workflow", description = "The team's own workflow: canned responses, macros, rules and webhooks"),
        (name = "operations", description = "Health, readiness, metrics"),
    )
)]
pub struct ApiDoc;

/// What every operation shares, added once instead of on each handler: the two ways to authenticate, and
/// the error answer for every status an operation does not describe itself.
struct Conventions;

impl Modify for Conventions {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::builder().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
        components.add_security_scheme(
            "session_cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(crate::front::cookies::SESSION_COOKIE))),
        );
        let error = ResponseBuilder::new()
            .description(
                "An error: 400 bad query or path, 401 not signed in, 403 not allowed, 404 not found (or not \
                 visible to the caller), 409 conflict, 413 body too large, 415 not JSON, 422 invalid input, \
                 429 rate-limited (with Retry-After)",
            )
            .content("application/json", ContentBuilder::new().schema(Some(RefOr::Ref(ref_to("ErrorBody")))).build())
            .build();
        for item in doc.paths.paths.values_mut() {
            for op in operations(item) {
                let responses = std::mem::take(&mut op.responses);
                let mut builder = ResponsesBuilder::new();
                for (status, response) in responses.responses {
                    builder = builder.response(status, response);
                }
                op.responses = builder.response("default", error.clone()).build();
            }
        }
    }
}

fn ref_to(schema: &str) -> utoipa::openapi::Ref {
    utoipa::openapi::Ref::from_schema_name(schema)
}

fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch].into_iter().flatten()
}

/// The description as served (built once).
pub fn document() -> Document {
    ApiDoc::openapi()
}

/// `/api/openapi.json` and the docs page at `/api/docs`, which needs a looser content policy than the API:
/// Swagger UI's own script and styles, from this server only.
pub fn router() -> Router<Desk> {
    Router::<Desk>::from(SwaggerUi::new("/api/docs").url("/api/openapi.json", document())).layer(
        axum::middleware::map_response(|mut res: axum::response::Response| async move {
            res.headers_mut().insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
                     script-src 'self'; frame-ancestors 'none'; base-uri 'none'",
                ),
            );
            res
        }),
    )
}
