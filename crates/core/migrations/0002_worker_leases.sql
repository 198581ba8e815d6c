-- One row per registered worker. A worker's batch insert holds its lease row FOR SHARE and
-- inserts nothing unless its token still matches; a worker that reclaims a dead peer's batch
-- deletes the peer's lease first. So once a reclaim starts, the presumed-dead worker (say, one
-- that was only paused) can never commit rows the reclaimer would then count again or miss.
CREATE TABLE sluice_worker_leases (
    worker_id   text        PRIMARY KEY,
    token       uuid        NOT NULL,
    acquired_at timestamptz NOT NULL DEFAULT now()
);
