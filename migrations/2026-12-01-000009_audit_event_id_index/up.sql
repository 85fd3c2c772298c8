-- CONCURRENTLY: no write lock on a trail that may be large (hence no transaction, see
-- metadata.toml).
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS chat_audit_events_event_id
    ON chat_audit_events (event_id);
