DELETE FROM chat_jobs WHERE kind = 'record_thread';
ALTER TABLE chat_jobs DROP CONSTRAINT chat_jobs_kind_check;
ALTER TABLE chat_jobs ADD CONSTRAINT chat_jobs_kind_check CHECK (kind IN ('purge_thread', 'webhook'));
DROP INDEX chat_threads_held;
CREATE INDEX chat_threads_held ON chat_threads (id) WHERE hold;
ALTER TABLE chat_threads DROP COLUMN record_state;
ALTER TABLE service_requests DROP COLUMN record;
