ALTER TABLE chat_audit_events DROP COLUMN detail;
DROP INDEX chat_threads_held;
ALTER TABLE chat_threads DROP COLUMN hold;
