-- 0001_init: the spec's tables (deployments, provider_configs) and what the features need: prompts, immutable
-- prompt versions, deployment traffic and history, API keys, audit log, usage rollups.
-- execution_logs (partitioned) is in 0002.
--
-- Conventions
-- * Timestamps are TIMESTAMPTZ (the spec writes TIMESTAMP): same columns, but an instant that does not depend on
--   the session time zone.
-- * Ids are UUID from gen_random_uuid() (core since PostgreSQL 13, present in PGlite), except append-only
--   tables keyed by an identity bigint.
-- * Money is BIGINT micro-USD (1 USD = 1 000 000).
-- * Actor columns (created_by, actor_key_id, ...) hold api_keys.id without a foreign key: keys are revoked, not
--   deleted, and records must outlive them.

-- Raises restrict_violation (23001) for any row-level UPDATE/DELETE or a TRUNCATE it is attached to.
CREATE FUNCTION mcp_reject_modification() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% on % is not allowed: rows are immutable', TG_OP, TG_TABLE_NAME
    USING ERRCODE = 'restrict_violation';
END
$$;

-- Prompts ------------------------------------------------------------------------------------------------------

CREATE TABLE prompts (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  name VARCHAR(200) NOT NULL,
  description TEXT,
  team VARCHAR(100),
  metadata JSONB NOT NULL DEFAULT '{}',
  -- Version counter: `UPDATE prompts SET latest_version = latest_version + 1 ... RETURNING latest_version`
  -- allocates the next prompt_versions.version without races.
  latest_version INTEGER NOT NULL DEFAULT 0 CHECK (latest_version >= 0),
  created_by UUID,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  archived_at TIMESTAMPTZ
);
CREATE UNIQUE INDEX prompts_name_key ON prompts (name);
CREATE INDEX prompts_team_idx ON prompts (team, name);

-- Immutable: a trigger rejects UPDATE. DELETE stays possible (a prompt's deletion cascades) but a version in use
-- by a deployment is protected by the foreign keys below.
CREATE TABLE prompt_versions (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  prompt_id UUID NOT NULL REFERENCES prompts (id) ON DELETE CASCADE,
  version INTEGER NOT NULL CHECK (version > 0),
  template JSONB NOT NULL,              -- text or chat messages with {{variables}}
  model VARCHAR(200),                   -- default model or alias
  params JSONB NOT NULL DEFAULT '{}',   -- temperature, max_tokens, ...
  variables JSONB,                      -- JSON Schema of the template variables
  content_hash CHAR(64),                -- sha256 hex of the canonical content (detects no-op versions)
  message TEXT,                         -- change description
  created_by UUID,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  CONSTRAINT prompt_versions_prompt_version_key UNIQUE (prompt_id, version),  -- latest: ORDER BY version DESC
  CONSTRAINT prompt_versions_prompt_id_id_key UNIQUE (prompt_id, id)          -- target of deployments' FK
);
CREATE TRIGGER prompt_versions_immutable BEFORE UPDATE ON prompt_versions
  FOR EACH ROW EXECUTE FUNCTION mcp_reject_modification();

-- Deployments --------------------------------------------------------------------------------------------------

CREATE TABLE deployments (
  -- spec columns
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  prompt_id UUID NOT NULL REFERENCES prompts (id),
  environment VARCHAR(50) NOT NULL,
  config JSONB NOT NULL,
  status VARCHAR(20) NOT NULL,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  -- additions
  prompt_version_id UUID,  -- the primary (stable) version; must belong to prompt_id (FK below)
  -- Optimistic concurrency and ETag: every change does
  -- `UPDATE deployments SET ..., version = version + 1 WHERE id = $1 AND version = $2` (0 rows = conflict).
  version INTEGER NOT NULL DEFAULT 1 CHECK (version > 0),
  created_by UUID,
  updated_by UUID,
  CONSTRAINT deployments_prompt_version_fkey FOREIGN KEY (prompt_id, prompt_version_id)
    REFERENCES prompt_versions (prompt_id, id)
);
CREATE INDEX deployments_prompt_env_idx ON deployments (prompt_id, environment);
CREATE INDEX deployments_status_idx ON deployments (status, updated_at DESC);
CREATE INDEX deployments_environment_idx ON deployments (environment, status);
CREATE INDEX deployments_prompt_version_idx ON deployments (prompt_version_id);

-- Traffic split between live versions of a deployment (canary, blue-green). A table rather than a JSONB column
-- so every routed version is a checked foreign key and "which deployments serve version X" is an index lookup.
-- No rows: all traffic goes to deployments.prompt_version_id. Rows: each version gets weight / sum(weights).
-- A change of the split happens in the same transaction as the deployments.version bump.
CREATE TABLE deployment_traffic (
  deployment_id UUID NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
  prompt_version_id UUID NOT NULL REFERENCES prompt_versions (id),
  weight INTEGER NOT NULL CHECK (weight >= 0),
  label VARCHAR(50),  -- 'stable', 'canary', 'blue', 'green', ...
  PRIMARY KEY (deployment_id, prompt_version_id)
);
CREATE INDEX deployment_traffic_version_idx ON deployment_traffic (prompt_version_id);

-- One row per change of a deployment. No foreign key: history outlives a deleted deployment. Rows never change.
CREATE TABLE deployment_history (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  deployment_id UUID NOT NULL,
  action VARCHAR(30) NOT NULL,          -- create, update, promote, rollback, traffic, pause, resume, delete
  deployment_version INTEGER NOT NULL,  -- deployments.version after the change
  from_prompt_version_id UUID,
  to_prompt_version_id UUID,
  traffic JSONB,                        -- the split after the change, when it changed
  actor_key_id UUID,
  request_id VARCHAR(100),
  at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX deployment_history_deployment_idx ON deployment_history (deployment_id, at DESC);
CREATE TRIGGER deployment_history_immutable BEFORE UPDATE ON deployment_history
  FOR EACH ROW EXECUTE FUNCTION mcp_reject_modification();

-- Providers ----------------------------------------------------------------------------------------------------

CREATE TABLE provider_configs (
  -- spec columns
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  provider VARCHAR(50) NOT NULL,        -- openai, anthropic, google, azure_openai, custom, local
  config JSONB NOT NULL,
  credentials JSONB NOT NULL,           -- encrypted by the application or a secret reference; never plaintext
  status VARCHAR(20) NOT NULL,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  -- additions
  name VARCHAR(100) NOT NULL,           -- unique handle used by routes ("No provider named ...")
  version INTEGER NOT NULL DEFAULT 1 CHECK (version > 0)  -- optimistic concurrency / ETag
);
CREATE UNIQUE INDEX provider_configs_name_key ON provider_configs (name);
CREATE INDEX provider_configs_provider_idx ON provider_configs (provider, status);

-- API keys -----------------------------------------------------------------------------------------------------

-- A key is `<prefix>.<secret>`-style: the public prefix finds the row (unique index), sha256 of the whole key is
-- compared with key_hash. NULL in an allow-list column means "no restriction".
CREATE TABLE api_keys (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  prefix VARCHAR(32) NOT NULL,          -- public key id, shown in lists and logs
  key_hash CHAR(64) NOT NULL CHECK (key_hash ~ '^[0-9a-f]{64}$'),  -- sha256 hex
  name VARCHAR(200),
  owner VARCHAR(200) NOT NULL,
  team VARCHAR(100),
  role VARCHAR(20) NOT NULL,
  environments TEXT[],                  -- environments the key may use
  allowed_models TEXT[],                -- model names or aliases
  allowed_deployments UUID[],
  limits JSONB NOT NULL DEFAULT '{}',   -- rate limits: rpm, tpm, concurrency, ...
  budgets JSONB NOT NULL DEFAULT '{}',  -- e.g. {"daily_micro_usd": 5000000, "monthly_micro_usd": 100000000}
  metadata JSONB NOT NULL DEFAULT '{}',
  expires_at TIMESTAMPTZ,
  revoked_at TIMESTAMPTZ,
  -- Rotation: the new key points at the old one; the old one keeps working until rotation_overlap_until.
  rotated_from_id UUID REFERENCES api_keys (id),
  rotation_overlap_until TIMESTAMPTZ,
  last_used_at TIMESTAMPTZ,             -- updated sparingly (e.g. at most once a minute per key)
  created_by UUID,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX api_keys_prefix_key ON api_keys (prefix);
CREATE INDEX api_keys_team_idx ON api_keys (team);
CREATE INDEX api_keys_owner_idx ON api_keys (owner);
CREATE INDEX api_keys_rotated_from_idx ON api_keys (rotated_from_id) WHERE rotated_from_id IS NOT NULL;

-- Audit log ----------------------------------------------------------------------------------------------------

-- Append-only: triggers reject UPDATE, DELETE and TRUNCATE. before/after are redacted (no secrets) by the writer.
CREATE TABLE audit_log (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  actor_key_id UUID,                    -- NULL: the system itself (startup, retention, ...)
  action VARCHAR(50) NOT NULL,          -- deployment.create, key.revoke, ...
  object_type VARCHAR(50) NOT NULL,
  object_id VARCHAR(100),
  before JSONB,
  after JSONB,
  request_id VARCHAR(100),
  source_ip INET
);
CREATE INDEX audit_log_created_at_idx ON audit_log (created_at DESC);
CREATE INDEX audit_log_actor_idx ON audit_log (actor_key_id, created_at DESC);
CREATE INDEX audit_log_object_idx ON audit_log (object_type, object_id, created_at DESC);
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
  FOR EACH ROW EXECUTE FUNCTION mcp_reject_modification();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION mcp_reject_modification();

-- Usage rollups ------------------------------------------------------------------------------------------------

-- Counters per (bucket, dimensions), written by upsert:
--   INSERT INTO usage_rollups (...) VALUES (...)
--   ON CONFLICT ON CONSTRAINT usage_rollups_bucket_key DO UPDATE SET requests = usage_rollups.requests + EXCLUDED.requests, ...
-- NULLS NOT DISTINCT: a NULL dimension (no key, no deployment) is one bucket, not one row per write.
CREATE TABLE usage_rollups (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  bucket_start TIMESTAMPTZ NOT NULL,
  granularity VARCHAR(5) NOT NULL CHECK (granularity IN ('hour', 'day')),
  key_id UUID,
  team VARCHAR(100),
  deployment_id UUID,
  provider VARCHAR(50),
  model VARCHAR(200),
  requests BIGINT NOT NULL DEFAULT 0,
  errors BIGINT NOT NULL DEFAULT 0,
  input_tokens BIGINT NOT NULL DEFAULT 0,
  cached_tokens BIGINT NOT NULL DEFAULT 0,
  output_tokens BIGINT NOT NULL DEFAULT 0,
  reasoning_tokens BIGINT NOT NULL DEFAULT 0,
  cost_micro_usd BIGINT NOT NULL DEFAULT 0,
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  -- buckets start on a UTC hour / day boundary
  CONSTRAINT usage_rollups_bucket_aligned
    CHECK (date_trunc(granularity, bucket_start AT TIME ZONE 'UTC') = bucket_start AT TIME ZONE 'UTC'),
  CONSTRAINT usage_rollups_bucket_key
    UNIQUE NULLS NOT DISTINCT (granularity, bucket_start, key_id, team, deployment_id, provider, model)
);
-- (granularity, bucket_start) range scans use the unique index above.
CREATE INDEX usage_rollups_key_idx ON usage_rollups (key_id, granularity, bucket_start) WHERE key_id IS NOT NULL;
CREATE INDEX usage_rollups_team_idx ON usage_rollups (team, granularity, bucket_start) WHERE team IS NOT NULL;
CREATE INDEX usage_rollups_deployment_idx ON usage_rollups (deployment_id, granularity, bucket_start)
  WHERE deployment_id IS NOT NULL;
