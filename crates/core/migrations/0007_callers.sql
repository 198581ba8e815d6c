-- Every caller known (issue 31): a key's rate limit, who sent each message, and what every admin
-- did.
--
-- A key may carry a rate (messages a second, fleet-wide) and a burst (messages at once after a
-- quiet spell); NULL: not limited.
ALTER TABLE api_keys
    ADD COLUMN rate  integer CHECK (rate BETWEEN 1 AND 1000000),
    ADD COLUMN burst integer CHECK (burst BETWEEN 1 AND 1000000);

-- Which credential sent a message: an API key's public prefix (slk_…) or a token's jwt:<sub>;
-- never the credential. NULL: sent where callers are not checked. Adding a column with no
-- default rewrites nothing.
ALTER TABLE messages ADD COLUMN key_id text;

-- What the admins did: keys made and revoked, dead letters requeued, deleted and purged. Written
-- with the action, by the server that did it; kept until deleted by hand.
CREATE TABLE audit_log (
    id      bigserial   PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT now(),
    -- Who: `admin token`, or `key <name> (slk_…)`, or `jwt:<sub>`.
    actor   text        NOT NULL,
    -- The client's address, as the server saw it.
    address text,
    -- What: keys.create, keys.revoke, dead_letters.requeue, …
    action  text        NOT NULL,
    -- What it touched: a key's name, a dead letter's id, or how many.
    target  text        NOT NULL
);
CREATE INDEX audit_log_at_idx ON audit_log (at DESC);
