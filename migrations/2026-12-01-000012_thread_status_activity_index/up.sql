-- An admin's inbox with scope=all and a status.
CREATE INDEX CONCURRENTLY IF NOT EXISTS chat_threads_status_activity
    ON chat_threads (status, activity_at DESC, id DESC);
