DROP INDEX CONCURRENTLY IF EXISTS chat_messages_thread_created_at;
