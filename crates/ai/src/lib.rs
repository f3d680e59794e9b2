//! Smart Ticket's embedded AI: runs on the machine itself, with no network and no API key.

pub mod bert;
pub mod classifier;
pub mod e5;
pub mod embed;
pub mod eval;
pub mod lang;
pub mod linear;
pub mod note;
pub mod pii;
pub mod retrieval;
pub mod text;
pub mod triage;
pub mod urgency;

pub use embed::{DIMENSIONS, MiniLm, cosine};
