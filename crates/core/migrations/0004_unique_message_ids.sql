-- A message id is unique across the whole of `messages`, whatever its created_at says.
--
-- The primary key of the partitioned `messages` must hold its partition key, so it is
-- (id, created_at): two rows with one id and different created_at (a dead letter edited and
-- requeued, an envelope forged in Redis) could both be inserted, in one partition or two.
-- `message_ids` records every id once. It is partitioned by range of the id itself, so its
-- primary key is the id alone and PostgreSQL enforces it across every partition; UUIDv7 ids
-- begin with their creation time in milliseconds, so each range of ids matches one range of
-- `messages`, and the workers create and drop both together. Workers insert the batch's ids
-- here in the same statement as its rows, and insert only the rows whose id was new.
--
-- Cost: one more index entry and heap tuple per message (about 60 bytes on disk), written in
-- the same statement; the ids of the rows already stored are copied here once, now (a few
-- seconds per million rows, with `messages` readable meanwhile).

-- The smallest UUIDv7 of the millisecond `t`: its bounds for a range of created_at.
CREATE FUNCTION sluice_uuid_floor(t timestamptz) RETURNS uuid
    LANGUAGE sql IMMUTABLE STRICT
    AS $$ SELECT (lpad(to_hex(floor(extract(epoch FROM t) * 1000)::bigint), 12, '0')
                  || '00000000000000000000')::uuid $$;

CREATE TABLE message_ids (
    id uuid PRIMARY KEY
) PARTITION BY RANGE (id);

-- One partition of ids per partition of messages, over the same span of time.
DO $$
DECLARE
    part record;
BEGIN
    FOR part IN
        SELECT c.relname::text AS name,
               (regexp_match(b.bound, 'FROM \(''([^'']*)''\)'))[1]::timestamptz AS lower,
               (regexp_match(b.bound, 'TO \(''([^'']*)''\)'))[1]::timestamptz AS upper
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        CROSS JOIN LATERAL (SELECT pg_get_expr(c.relpartbound, c.oid) AS bound) b
        WHERE i.inhparent = 'messages'::regclass AND b.bound <> 'DEFAULT'
    LOOP
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF message_ids FOR VALUES FROM (%s) TO (%s)',
            'message_ids' || substr(part.name, length('messages') + 1),
            coalesce(quote_literal(sluice_uuid_floor(part.lower)), 'MINVALUE'),
            coalesce(quote_literal(sluice_uuid_floor(part.upper)), 'MAXVALUE'));
    END LOOP;
END $$;

CREATE TABLE message_ids_default PARTITION OF message_ids DEFAULT;

-- Rows stored before: each id once (should an id already be there twice, it stays so in
-- `messages`, and is recorded once here).
INSERT INTO message_ids (id) SELECT id FROM messages ON CONFLICT (id) DO NOTHING;
