DELETE FROM chat_jobs WHERE kind = 'webhook';
ALTER TABLE chat_jobs DROP CONSTRAINT chat_jobs_kind_check;
ALTER TABLE chat_jobs ADD CONSTRAINT chat_jobs_kind_check CHECK (kind IN ('purge_thread'));
ALTER TABLE chat_jobs DROP COLUMN payload;
ALTER TABLE chat_jobs DROP COLUMN delivery_id;
