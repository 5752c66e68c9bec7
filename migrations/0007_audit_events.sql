-- The audit trail: one row per state change by or to an admin (docs/audit.md).
--
-- Every row is written by the statement (or in the transaction) that makes
-- the change it records, so a change that rolls back leaves no event, and
-- an event never describes a change that did not happen. Rows are only
-- inserted, with one exception: the event that stands for a window of
-- rate-limited failed logins (window_key set) counts the attempts it stands
-- for in detail.refused.
--
-- actor_id and target_id are plain numbers, not foreign keys: the trail
-- outlives the admins and users it names (a deleted admin's events stay).
-- Retention is the sweeper's (AUDIT_RETENTION_DAYS), not this table's.

CREATE TABLE audit_events (
    id          bigint GENERATED ALWAYS AS IDENTITY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor_id    bigint,
    action      text        NOT NULL,
    target_type text,
    target_id   bigint,
    request_id  text,
    client      text,
    detail      jsonb       NOT NULL DEFAULT '{}',
    -- Only on the event of a window of rate-limited failed logins: which
    -- window (scripts/lib/store.lua, login_hit), so that its attempts are
    -- counted on one row instead of one row each.
    window_key  text,
    CONSTRAINT audit_events_pkey PRIMARY KEY (id),
    CONSTRAINT audit_events_action_check CHECK (action IN (
        'admin.registered', 'admin.confirmed', 'admin.login', 'admin.login_failed',
        'admin.refreshed', 'admin.refresh_reuse', 'admin.logout', 'admin.logout_all',
        'admin.password_changed', 'admin.password_reset', 'admin.email_changed',
        'admin.updated', 'admin.deleted', 'user.created', 'user.updated', 'user.deleted',
        'admin.imported', 'user.imported')),
    CONSTRAINT audit_events_target_type_check CHECK (target_type IN ('admin', 'user')),
    CONSTRAINT audit_events_detail_object CHECK (jsonb_typeof(detail) = 'object')
);

-- GET /audit lists newest first (the primary key, read backwards) and
-- filters by actor, action, target and time; each filter has an index that
-- also gives the order, so a page is a short index scan.
CREATE INDEX audit_events_actor_idx ON audit_events (actor_id, id);
CREATE INDEX audit_events_action_idx ON audit_events (action, id);
CREATE INDEX audit_events_target_idx ON audit_events (target_type, target_id, id);
CREATE INDEX audit_events_at_idx ON audit_events (at);
-- One event per window of rate-limited failed logins.
CREATE UNIQUE INDEX audit_events_window_key ON audit_events (window_key) WHERE window_key IS NOT NULL;
-- `moonkeep import` finds the rows it imported before (a row whose id was
-- taken got a new one) by their source id.
CREATE INDEX audit_events_import_source_idx ON audit_events (action, ((detail ->> 'source_id')))
    WHERE action IN ('admin.imported', 'user.imported');
