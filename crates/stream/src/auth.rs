//! Who may read the stream: the server's `sluice_core::auth::Verifier`, when it has one, checks
//! the credential of every request for `stats:read` (an API key, or a token: the older
//! `stream.auth.jwt_secret` or `auth.jwt`). The credential comes from `?token=` (browsers
//! cannot set headers on a WebSocket) or `Authorization: Bearer`. A session whose credential
//! expires while connected is closed with [`TOKEN_EXPIRED_CLOSE_CODE`].

/// Close code of a session whose credential expired (application range 4000–4999).
pub const TOKEN_EXPIRED_CLOSE_CODE: u16 = 4401;
