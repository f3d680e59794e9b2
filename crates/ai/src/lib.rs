//! Smart Ticket's embedded AI: runs on the machine itself, with no network and no API key.

pub mod classifier;
pub mod cluster;
pub mod e5;
pub mod embed;
pub mod encoder;
pub mod eval;
pub mod finetune;
pub mod gemm;
pub mod lang;
pub mod linear;
pub mod note;
pub mod pii;
pub mod retrieval;
pub mod summary;
pub mod text;
pub mod triage;
pub mod tune;
pub mod urgency;

pub use embed::{DIMENSIONS, MiniLm, cosine};
