-- The audit trail: who did what to which thread, when, and how it ended. Identifiers
-- and outcomes only, never content. Append-only: updates, deletes and truncation are
-- refused by triggers (an owner can still drop them; see docs/OPERATIONS.md).
CREATE TABLE chat_audit_events (
    id          BIGSERIAL PRIMARY KEY,
    at          TIMESTAMPTZ NOT NULL,
    actor_id    BIGINT NULL,
    role        TEXT NULL,
    action      TEXT NOT NULL,
    thread_id   BIGINT NULL,
    request_id  BIGINT NULL,
    message_id  BIGINT NULL,
    outcome     TEXT NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX chat_audit_events_thread ON chat_audit_events (thread_id, at);
CREATE INDEX chat_audit_events_actor ON chat_audit_events (actor_id, at);

CREATE FUNCTION chat_audit_events_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'chat_audit_events is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER chat_audit_events_append_only
    BEFORE UPDATE OR DELETE ON chat_audit_events
    FOR EACH ROW EXECUTE FUNCTION chat_audit_events_refuse_change();
CREATE TRIGGER chat_audit_events_no_truncate
    BEFORE TRUNCATE ON chat_audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION chat_audit_events_refuse_change();
