//! The embedded AI's tests on real weights and data, in one binary (one link step instead of three).

mod classify;
mod cluster;
mod e5;
mod embed;
mod reference;
