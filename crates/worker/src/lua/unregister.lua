-- Takes a worker that stops out of the registry (graceful shutdown). Its processing list is
-- empty by then, or stays for a peer to claim under its id until it returns.
-- KEYS: workers, workers_heartbeat_ms, workers_postgres, workers_postgres_down, workers_output
-- ARGV: worker id
forget_worker(KEYS, ARGV[1])
return 1
