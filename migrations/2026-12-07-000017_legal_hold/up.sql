-- A legal hold per thread (SPEC §10): while set, nothing of the thread expires, is
-- capped, purged or retracted. Few threads are held; the sweep lists them from the
-- partial index.
ALTER TABLE chat_threads ADD COLUMN hold BOOLEAN NOT NULL DEFAULT false;
CREATE INDEX chat_threads_held ON chat_threads (id) WHERE hold;
-- What an admin gave as a hold's reason, kept with the audit event (their words,
-- never message content).
ALTER TABLE chat_audit_events ADD COLUMN detail TEXT;
