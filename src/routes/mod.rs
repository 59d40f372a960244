//! HTTP handlers: orchestration only; the work is in `pipeline`.

pub mod admin;
pub mod fallback;
pub mod health;
pub mod hooks;
pub mod ops;
