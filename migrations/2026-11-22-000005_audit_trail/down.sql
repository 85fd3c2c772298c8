DROP TABLE chat_audit_events;
DROP FUNCTION chat_audit_events_refuse_change();
