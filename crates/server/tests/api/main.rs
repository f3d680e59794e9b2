//! Black-box tests of the HTTP API: a real server on port 0, on SQLite and on PostgreSQL.

mod helpers;

mod accounts;
mod ai;
mod articles;
mod attachments;
mod authz;
mod browser;
mod crash;
mod duplicates;
mod eval;
mod finetune;
mod hardening;
mod imap;
mod import;
mod jobs;
mod mail;
mod mail_answers;
mod mail_in;
mod openapi;
mod ops;
mod pipeline;
mod privacy;
mod proposals;
mod protection;
mod providers;
mod rules;
mod search;
mod suggestions;
mod summaries;
mod taxonomy;
mod tickets;
mod web;
mod webhooks;
mod workflow;
