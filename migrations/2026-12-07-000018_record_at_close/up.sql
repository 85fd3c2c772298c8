-- The transcript of a thread for the medical record at close (SPEC §10): asked for by
-- the request (`record`), followed on the thread (`record_state`: NULL, 'pending',
-- 'failed', 'recorded'), and sent by a job of its own kind.
ALTER TABLE service_requests ADD COLUMN record BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE chat_threads ADD COLUMN record_state TEXT
    CHECK (record_state IN ('pending', 'failed', 'recorded'));
-- The sweep lists the threads that keep everything: held, or with a transcript on its
-- way.
DROP INDEX chat_threads_held;
CREATE INDEX chat_threads_held ON chat_threads (id)
    WHERE hold OR record_state IN ('pending', 'failed');
ALTER TABLE chat_jobs DROP CONSTRAINT chat_jobs_kind_check;
ALTER TABLE chat_jobs ADD CONSTRAINT chat_jobs_kind_check
    CHECK (kind IN ('purge_thread', 'webhook', 'record_thread')) NOT VALID;
ALTER TABLE chat_jobs VALIDATE CONSTRAINT chat_jobs_kind_check;
