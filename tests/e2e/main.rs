//! Black-box end-to-end tests: the real binaries against the real Redis and PostgreSQL.
