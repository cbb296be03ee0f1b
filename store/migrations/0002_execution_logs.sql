-- 0002_execution_logs: the spec's execution_logs, partitioned by day on created_at so retention drops whole
-- partitions instead of deleting rows. PostgreSQL 15 and PGlite (PostgreSQL 17+) both support declarative
-- partitioning, so the same SQL runs on both engines.
--
-- * Daily partitions execution_logs_pYYYYMMDD cover [day 00:00 UTC, next day 00:00 UTC). They are created ahead
--   by mcp_execution_logs_ensure_partitions() (store/retention.ts ensurePartitions) and dropped by
--   mcp_execution_logs_drop_partitions() (store/retention.ts purgeExecutionLogs).
-- * execution_logs_default catches rows for days without a partition (a writer never fails); creating the
--   missing partition later moves those rows into it.
-- * No foreign keys: inserts stay cheap and purges never cascade. deployment_id, key_id and prompt_version_id are
--   plain references.

CREATE TABLE execution_logs (
  -- spec columns
  id UUID NOT NULL DEFAULT gen_random_uuid(),
  deployment_id UUID,  -- spec says NOT NULL; NULLable because gateway /v1/* requests have no deployment
  provider VARCHAR(50) NOT NULL,
  request JSONB NOT NULL,
  response JSONB,
  metrics JSONB,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  completed_at TIMESTAMPTZ,
  -- additions
  request_id VARCHAR(100) NOT NULL,  -- unique per day partition: replays use INSERT ... ON CONFLICT DO NOTHING
  status VARCHAR(20) NOT NULL,       -- ok, error, timeout, cancelled, ...
  key_id UUID,
  prompt_version_id UUID,
  model VARCHAR(200),
  -- A partitioned table's unique keys must contain the partition key: (id, created_at) instead of (id).
  PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);

-- Declared on the parent, created on every partition.
CREATE INDEX execution_logs_created_at_idx ON execution_logs (created_at DESC);
CREATE INDEX execution_logs_deployment_idx ON execution_logs (deployment_id, created_at DESC)
  WHERE deployment_id IS NOT NULL;
CREATE INDEX execution_logs_key_idx ON execution_logs (key_id, created_at DESC) WHERE key_id IS NOT NULL;

CREATE TABLE execution_logs_default PARTITION OF execution_logs DEFAULT;
-- request_id uniqueness is per partition (a parent-level unique index would have to include created_at, which
-- would not catch a replay with another timestamp). Write with `ON CONFLICT DO NOTHING` and no conflict target.
-- The default partition spans many days: the same per-day uniqueness through the UTC day of created_at.
CREATE UNIQUE INDEX execution_logs_default_request_id_key
  ON execution_logs_default (request_id, ((created_at AT TIME ZONE 'UTC')::date));

-- Creates the daily partitions of first_day..last_day (inclusive, UTC days) that do not exist yet, moving rows
-- already in the default partition for those days. Returns how many partitions it created. Serialized by an
-- advisory transaction lock, so concurrent instances may call it at once.
CREATE FUNCTION mcp_execution_logs_ensure_partitions(first_day DATE, last_day DATE) RETURNS INTEGER
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
  schema_name TEXT := current_schema();
  d DATE := first_day;
  part TEXT;
  lo TIMESTAMPTZ;
  hi TIMESTAMPTZ;
  created INTEGER := 0;
BEGIN
  PERFORM pg_advisory_xact_lock(77678002);
  WHILE d <= last_day LOOP
    part := 'execution_logs_p' || to_char(d, 'YYYYMMDD');
    lo := d::timestamp AT TIME ZONE 'UTC';
    hi := (d + 1)::timestamp AT TIME ZONE 'UTC';
    IF NOT EXISTS (
      SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
      WHERE i.inhparent = 'execution_logs'::regclass AND c.relname = part
    ) THEN
      IF EXISTS (SELECT 1 FROM execution_logs_default WHERE created_at >= lo AND created_at < hi) THEN
        EXECUTE format('CREATE TABLE %I.%I (LIKE execution_logs INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
          schema_name, part);
        EXECUTE format('WITH moved AS (DELETE FROM execution_logs_default WHERE created_at >= $1 AND created_at < $2 '
          'RETURNING *) INSERT INTO %I.%I SELECT * FROM moved', schema_name, part) USING lo, hi;
        EXECUTE format('ALTER TABLE execution_logs ATTACH PARTITION %I.%I FOR VALUES FROM (%L) TO (%L)',
          schema_name, part, lo, hi);
      ELSE
        EXECUTE format('CREATE TABLE %I.%I PARTITION OF execution_logs FOR VALUES FROM (%L) TO (%L)',
          schema_name, part, lo, hi);
      END IF;
      EXECUTE format('CREATE UNIQUE INDEX IF NOT EXISTS %I ON %I.%I (request_id)',
        part || '_request_id_key', schema_name, part);
      created := created + 1;
    END IF;
    d := d + 1;
  END LOOP;
  RETURN created;
END
$$;

-- Drops the daily partitions that lie entirely before older_than. Returns how many it dropped. Rows older than
-- older_than in the remaining partitions (the day that straddles it, the default partition) are left to a
-- batched DELETE (store/retention.ts).
CREATE FUNCTION mcp_execution_logs_drop_partitions(older_than TIMESTAMPTZ) RETURNS INTEGER
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
  r RECORD;
  dropped INTEGER := 0;
BEGIN
  PERFORM pg_advisory_xact_lock(77678002);
  FOR r IN
    SELECT i.inhrelid::regclass AS part,
           to_date(substring(c.relname FROM '^execution_logs_p([0-9]{8})$'), 'YYYYMMDD') AS day
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = 'execution_logs'::regclass AND c.relname ~ '^execution_logs_p[0-9]{8}$'
    ORDER BY 2
  LOOP
    EXIT WHEN ((r.day + 1)::timestamp AT TIME ZONE 'UTC') > older_than;
    EXECUTE format('DROP TABLE %s', r.part);
    dropped := dropped + 1;
  END LOOP;
  RETURN dropped;
END
$$;
