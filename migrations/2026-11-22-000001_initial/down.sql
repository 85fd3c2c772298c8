DROP TABLE chat_jobs;
DROP TABLE chat_messages;
DROP SEQUENCE chat_message_ids;
DROP TABLE chat_thread_keys;
DROP TABLE chat_threads;
DROP TABLE service_requests;
