DROP INDEX IF EXISTS chat_audit_events_event_id;
