DROP INDEX CONCURRENTLY IF EXISTS chat_threads_status_activity;
