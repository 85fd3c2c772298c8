-- The TTL delete of chat_append_message() filters on (thread_id, created_at); without
-- this index it walks every index entry of the thread, dead ones included.
-- CONCURRENTLY: no write lock on a live table (hence no transaction, see metadata.toml).
CREATE INDEX CONCURRENTLY IF NOT EXISTS chat_messages_thread_created_at
    ON chat_messages (thread_id, created_at);
