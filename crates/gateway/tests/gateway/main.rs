//! In-process tests of the stats gateway against the real Redis. One test binary.

mod helpers;
mod http;
mod websocket;
