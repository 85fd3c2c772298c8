DROP TABLE chat_reads;
DROP TABLE chat_inbox;
ALTER TABLE chat_threads DROP COLUMN activity_at;
ALTER TABLE chat_threads DROP COLUMN last_message_at;
ALTER TABLE chat_threads DROP COLUMN last_message_id;
ALTER TABLE chat_threads DROP COLUMN staff_ids;
ALTER TABLE service_requests DROP COLUMN staff_ids;
