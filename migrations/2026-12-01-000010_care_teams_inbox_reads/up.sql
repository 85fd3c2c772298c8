-- Care teams, the inbox and read markers (SPEC §1, §3.8, §3.9). Only new columns
-- with defaults and new tables, so the previous release keeps working beside this
-- one; the two indexes on chat_threads come in the next migration, built concurrently.
SET lock_timeout = '2s';

-- A request's care team; its thread keeps a copy, so that one read of the thread
-- decides who may act on it.
ALTER TABLE service_requests ADD COLUMN staff_ids BIGINT[] NOT NULL DEFAULT '{}';
ALTER TABLE chat_threads ADD COLUMN staff_ids BIGINT[] NOT NULL DEFAULT '{}';

-- The newest message posted to the thread: orders the inbox. Activity is the newest
-- message's time, else the opening.
ALTER TABLE chat_threads ADD COLUMN last_message_id BIGINT NULL;
ALTER TABLE chat_threads ADD COLUMN last_message_at TIMESTAMPTZ NULL;
-- A thread the previous release opens during a rolling deploy gets the time of its
-- insert, which is its opening. Threads are one per request and short-lived (closed
-- and purged within days), so the backfill is one small UPDATE.
ALTER TABLE chat_threads ADD COLUMN activity_at TIMESTAMPTZ NOT NULL DEFAULT now();
UPDATE chat_threads SET activity_at = COALESCE(last_message_at, opened_at);

-- One row per participant and thread (the client, the admin, each staff member), with
-- the thread's status and activity copied, so that a participant's inbox page is one
-- range of one index, however many threads they have.
CREATE TABLE chat_inbox (
    user_id     BIGINT NOT NULL,
    thread_id   BIGINT NOT NULL REFERENCES chat_threads (id) ON DELETE CASCADE,
    status      TEXT NOT NULL CHECK (status IN ('open', 'closed')),
    activity_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (thread_id, user_id)
);
CREATE INDEX chat_inbox_by_status ON chat_inbox (user_id, status, activity_at DESC, thread_id DESC);
CREATE INDEX chat_inbox_all ON chat_inbox (user_id, activity_at DESC, thread_id DESC);
INSERT INTO chat_inbox (user_id, thread_id, status, activity_at)
    SELECT client_id, id, status, activity_at FROM chat_threads
    UNION
    SELECT admin_id, id, status, activity_at FROM chat_threads WHERE admin_id IS NOT NULL;

-- Read markers: the highest message id each user has read, per thread.
CREATE TABLE chat_reads (
    thread_id BIGINT NOT NULL,
    user_id   BIGINT NOT NULL,
    up_to     BIGINT NOT NULL,
    PRIMARY KEY (thread_id, user_id)
);
