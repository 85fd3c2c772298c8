-- Lease locks (the sweep's "one instance at a time" when there is no Redis): a row per
-- held lock, with the random token of its owner and when the lease runs out. Times are
-- the database's own clock, so instances with skewed clocks still agree.
CREATE TABLE IF NOT EXISTS chat_locks (
    name        TEXT PRIMARY KEY,
    token       TEXT NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL
);
