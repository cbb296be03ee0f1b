-- 0006_keys: API keys managed through the admin API, role-based access control and the audit log
-- (admin/routes/keys.ts, admin/rbac.ts, admin/audit.ts, docs/rbac.md).
--
-- * api_keys.allowed_aliases: aliases a key may name (0001 had models and deployments only). NULL = no restriction.
-- * A change of a key reaches every instance within a poll: statement-level triggers bump control_plane_version
--   like deployments and providers do (0003). last_used_at (written in batches, in the background) is left out, so
--   recording use never reloads anybody's snapshot.
-- * audit_log gains `actor` (who, also for actors without a key row: 'bootstrap', 'system', 'anonymous') and
--   `team` (the team of the object, or of the actor for refused requests), so non-admin readers see their team's
--   rows only. The table stays append-only (0001's triggers).

ALTER TABLE api_keys ADD COLUMN allowed_aliases TEXT[];

CREATE INDEX api_keys_created_idx ON api_keys (created_at DESC, id DESC);

CREATE TRIGGER api_keys_bump_control_plane_version
  AFTER INSERT OR DELETE OR UPDATE OF prefix, key_hash, role, team, environments, allowed_models, allowed_aliases,
    allowed_deployments, limits, budgets, expires_at, revoked_at, rotation_overlap_until ON api_keys
  FOR EACH STATEMENT EXECUTE FUNCTION mcp_bump_control_plane_version();

ALTER TABLE audit_log
  ADD COLUMN actor VARCHAR(100),
  ADD COLUMN team VARCHAR(100);

CREATE INDEX audit_log_team_idx ON audit_log (team, id DESC);
CREATE INDEX audit_log_action_idx ON audit_log (action, id DESC);
CREATE INDEX audit_log_actor_label_idx ON audit_log (actor, id DESC);
