-- Persisted messages. `id` is the UUIDv7 the ingest API assigned and the primary key, so a
-- message can never become two rows: workers insert fresh batches plainly and, when a batch may
-- hold ids already persisted (a redelivery, a resumed batch), skip those ids.
CREATE TABLE messages (
    id          uuid        PRIMARY KEY,
    user_id     bigint      NOT NULL CHECK (user_id > 0),
    channel_id  bigint      NOT NULL CHECK (channel_id > 0),
    content     text        NOT NULL,
    created_at  timestamptz NOT NULL,
    inserted_at timestamptz NOT NULL DEFAULT now()
);

-- GET /messages?channel_id=… and ?user_id=…, newest first (UUIDv7 ids sort by creation time).
CREATE INDEX messages_channel_id_id_idx ON messages (channel_id, id DESC);
CREATE INDEX messages_user_id_id_idx ON messages (user_id, id DESC);
