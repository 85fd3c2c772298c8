-- Webhooks for the host (SPEC §9.1) are jobs too: `kind = 'webhook'`, the delivery's
-- id in `delivery_id` and its body (ids and times, never content) in `payload`. Deploy this release on
-- every instance before setting CHAT_WEBHOOK_URL: the previous one does not know the
-- kind and would count such a job as failed.
SET lock_timeout = '2s';
ALTER TABLE chat_jobs ADD COLUMN delivery_id TEXT NULL;
ALTER TABLE chat_jobs ADD COLUMN payload TEXT NULL;
ALTER TABLE chat_jobs DROP CONSTRAINT chat_jobs_kind_check;
ALTER TABLE chat_jobs ADD CONSTRAINT chat_jobs_kind_check
    CHECK (kind IN ('purge_thread', 'webhook')) NOT VALID;
ALTER TABLE chat_jobs VALIDATE CONSTRAINT chat_jobs_kind_check;
