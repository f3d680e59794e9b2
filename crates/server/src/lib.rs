//! Smart Ticket as a library: configuration, storage, HTTP API and the command line.

pub mod ai;
pub mod auth;
pub mod cli;
pub mod config;
pub mod db;
pub mod desk;
pub mod http;
pub mod import;
pub mod index;
pub mod jobs;
pub mod mail;
pub mod model;
pub mod observe;
pub mod pipeline;
pub mod providers;
pub mod routing;
pub mod secret;
pub mod startup;
pub mod telemetry;
pub mod web;

pub use config::Settings;
pub use startup::Application;
