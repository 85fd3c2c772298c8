-- Escalation when unread (SPEC §10): when each thread's messages are next checked for
-- recipients who have not read them. One row per thread, armed by posts (`due_at`),
-- claimed by one worker at a time (`held_until`), and how far its messages were
-- judged (`checked_through`); `generation` counts the arms, so a worker that finishes
-- sees one that came while it ran. Ids and times only.
CREATE TABLE chat_unread_checks (
    thread_id BIGINT PRIMARY KEY,
    due_at TIMESTAMPTZ,
    held_until TIMESTAMPTZ,
    checked_through TIMESTAMPTZ,
    generation BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX chat_unread_checks_due ON chat_unread_checks (due_at)
    WHERE due_at IS NOT NULL AND held_until IS NULL;
CREATE INDEX chat_unread_checks_held ON chat_unread_checks (held_until)
    WHERE held_until IS NOT NULL;
