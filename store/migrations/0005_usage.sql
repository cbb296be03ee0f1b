-- 0005_usage: what cost metering and the usage API need on top of 0001's usage_rollups.
--
-- * Cost in pico-USD (1 USD = 10^12), exact: the cost meter computes integer pico-USD per request, and rollups add
--   them up without rounding. NUMERIC(30,0): a BIGINT of pico-USD would overflow at about 9.2 million USD per row.
--   cost_micro_usd stays, kept equal to floor(cost_pico_usd / 10^6) by the writer (store/usage-rollups.ts), for
--   readers of 0001's column.
-- * cache_write_tokens (Anthropic cache creation), estimated_requests (no usage from the provider: tokens estimated
--   with a tokenizer) and unpriced_requests (model not in the price catalogue: tokens counted, cost unknown).
-- * prompt_version_id joins the rollup dimensions: the unique key is rebuilt with it (same constraint name, so
--   `ON CONFLICT ON CONSTRAINT usage_rollups_bucket_key` keeps working).
-- * usage_exports: the usage webhook's watermark (last exported bucket end) and its lease, so that one instance at a
--   time exports and an export survives restarts (at-least-once, idempotency key per bucket).

ALTER TABLE usage_rollups
  ADD COLUMN prompt_version_id UUID,
  ADD COLUMN cache_write_tokens BIGINT NOT NULL DEFAULT 0,
  ADD COLUMN cost_pico_usd NUMERIC(30, 0) NOT NULL DEFAULT 0,
  ADD COLUMN estimated_requests BIGINT NOT NULL DEFAULT 0,
  ADD COLUMN unpriced_requests BIGINT NOT NULL DEFAULT 0;

-- Rows written before this migration carried micro-USD only.
UPDATE usage_rollups SET cost_pico_usd = cost_micro_usd::numeric * 1000000 WHERE cost_micro_usd <> 0;

ALTER TABLE usage_rollups DROP CONSTRAINT usage_rollups_bucket_key;
ALTER TABLE usage_rollups ADD CONSTRAINT usage_rollups_bucket_key
  UNIQUE NULLS NOT DISTINCT (granularity, bucket_start, key_id, team, deployment_id, prompt_version_id, provider, model);

CREATE TABLE usage_exports (
  name VARCHAR(100) PRIMARY KEY,        -- one row per export target ('webhook')
  last_bucket_end TIMESTAMPTZ,          -- every hour bucket before this instant was delivered
  lease_owner VARCHAR(100),             -- the instance exporting now
  lease_until TIMESTAMPTZ,
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
