-- An admin's inbox with scope=all: built without blocking writes to chat_threads (one
-- index per migration: several statements would run in one implicit transaction).
CREATE INDEX CONCURRENTLY IF NOT EXISTS chat_threads_activity
    ON chat_threads (activity_at DESC, id DESC);
