-- 0007_instances: the gateway instances that share this database (admin/instances.ts, GET /api/v1/mcp/instances).
--
-- Every instance upserts its row on a heartbeat (15 s by default) and deletes it when it shuts down cleanly; a row
-- not seen for three heartbeats is an instance that is gone (crashed, killed), pruned after a day. Nothing on the
-- request path reads or writes it. Rows say what an operator needs to see of a fleet: which instances are up, which
-- configuration each one serves (config_hash: the same files and API providers give the same hash), and whether each
-- keeps rate limits and budgets in Redis (shared by every instance) or in its own process (per_instance: the plugins
-- whose counters it keeps alone, so that N instances together admit up to N times a limit).

CREATE TABLE gateway_instances (
  id VARCHAR(64) PRIMARY KEY,
  hostname VARCHAR(255) NOT NULL,
  pid INTEGER NOT NULL,
  version VARCHAR(50) NOT NULL,
  started_at TIMESTAMPTZ NOT NULL,
  seen_at TIMESTAMPTZ NOT NULL,
  config_hash VARCHAR(100),
  redis BOOLEAN NOT NULL,
  per_instance TEXT[] NOT NULL DEFAULT '{}'
);

CREATE INDEX gateway_instances_seen_idx ON gateway_instances (seen_at);
