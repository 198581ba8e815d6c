//! In-process tests of the stats gateway against the real Redis. One test binary.

mod auth;
mod helpers;
mod http;
mod protocol;
mod websocket;
