ALTER TABLE chat_audit_events DROP COLUMN event_id;
