-- Each audit event carries the unique id its sink gave it, so that a batch sent again
-- (its commit went through but the answer was lost) inserts nothing twice: the writer
-- inserts with ON CONFLICT (event_id) DO NOTHING, over the unique index that the next
-- migration builds. Rows from before have none.
ALTER TABLE chat_audit_events ADD COLUMN event_id UUID NULL;
