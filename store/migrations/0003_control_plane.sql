-- 0003_control_plane: what the management API (admin/) needs on top of 0001.
--
-- * prompt_versions gain tools, response_format and metadata (a version is the whole request shape).
-- * One deployment per (prompt, environment): execute by {prompt, environment} and promotion find it by that pair;
--   several live versions in one environment are traffic rows of that deployment (deployment_traffic).
-- * control_plane_version: one counter that every change of deployments, deployment_traffic and provider_configs
--   bumps (statement-level triggers), so each instance polls one cheap row to know whether its in-memory snapshot
--   is stale.

ALTER TABLE prompt_versions
  ADD COLUMN tools JSONB,
  ADD COLUMN response_format JSONB,
  ADD COLUMN metadata JSONB NOT NULL DEFAULT '{}';

CREATE UNIQUE INDEX deployments_prompt_env_key ON deployments (prompt_id, environment);
-- Superseded by the unique index above (same columns).
DROP INDEX deployments_prompt_env_idx;

CREATE TABLE control_plane_version (
  singleton BOOLEAN PRIMARY KEY DEFAULT true CHECK (singleton),
  version BIGINT NOT NULL DEFAULT 0,
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO control_plane_version DEFAULT VALUES;

CREATE FUNCTION mcp_bump_control_plane_version() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
  UPDATE control_plane_version SET version = version + 1, updated_at = now();
  RETURN NULL;
END
$$;

CREATE TRIGGER deployments_bump_control_plane_version
  AFTER INSERT OR UPDATE OR DELETE ON deployments
  FOR EACH STATEMENT EXECUTE FUNCTION mcp_bump_control_plane_version();
CREATE TRIGGER deployment_traffic_bump_control_plane_version
  AFTER INSERT OR UPDATE OR DELETE ON deployment_traffic
  FOR EACH STATEMENT EXECUTE FUNCTION mcp_bump_control_plane_version();
CREATE TRIGGER provider_configs_bump_control_plane_version
  AFTER INSERT OR UPDATE OR DELETE ON provider_configs
  FOR EACH STATEMENT EXECUTE FUNCTION mcp_bump_control_plane_version();
