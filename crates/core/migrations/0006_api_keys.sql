-- API keys: what a caller may do. Only a key's SHA-256 is kept; its public prefix tells keys
-- apart in logs and lists. `updated_at` moves on every change (made, revoked), so that each
-- server's key cache fetches only what changed since its last look; `last_used_at` is written
-- a few seconds late, in batches, and moves nothing.
CREATE TABLE api_keys (
    name          text        PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9._-]{1,64}$'),
    prefix        text        NOT NULL UNIQUE,
    hash          text        NOT NULL UNIQUE,
    scopes        text[]      NOT NULL CHECK (cardinality(scopes) > 0),
    -- A key bound to one user posts only as that user_id; bound to channels, it posts into and
    -- reads only those channel_ids. NULL: any.
    user_id       bigint      CHECK (user_id > 0),
    channels      bigint[]    CHECK (cardinality(channels) BETWEEN 1 AND 1000),
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz,
    revoked_at    timestamptz,
    last_used_at  timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX api_keys_updated_at_idx ON api_keys (updated_at);
