-- The chat schema. Message content is stored sealed (nonce + AES-256-GCM ciphertext
-- with its tag); thread keys only wrapped by a master key. No plaintext column exists.
--
-- No foreign keys between these tables: messages and keys are ephemeral and deleted on
-- their own schedule, and the service checks that threads exist before writing.

CREATE TABLE service_requests (
    id          BIGINT PRIMARY KEY,
    client_id   BIGINT NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE chat_threads (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id  BIGINT NOT NULL UNIQUE,
    admin_id    BIGINT NULL,
    client_id   BIGINT NOT NULL,
    status      TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    opened_at   TIMESTAMPTZ NOT NULL,
    closed_at   TIMESTAMPTZ NULL,
    CHECK ((status = 'closed') = (closed_at IS NOT NULL))
);
CREATE INDEX chat_threads_admin_status ON chat_threads (admin_id, status);
CREATE INDEX chat_threads_closed ON chat_threads (id) WHERE status = 'closed';

CREATE TABLE chat_thread_keys (
    thread_id           BIGINT PRIMARY KEY,
    master_key_version  TEXT NOT NULL,
    wrapped_key         BYTEA NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX chat_thread_keys_version ON chat_thread_keys (master_key_version);

-- Message ids come from one sequence, drawn before sealing: the id is part of the
-- ciphertext's associated data.
CREATE SEQUENCE chat_message_ids AS BIGINT;

CREATE TABLE chat_messages (
    id          BIGINT PRIMARY KEY,
    thread_id   BIGINT NOT NULL,
    sender_id   BIGINT NOT NULL,
    type        TEXT NOT NULL CHECK (type IN ('text', 'image', 'location')),
    -- 96-bit nonce and ciphertext || tag; both NULL once the thread is redacted.
    nonce       BYTEA NULL CHECK (octet_length(nonce) = 12),
    ciphertext  BYTEA NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    CHECK ((nonce IS NULL) = (ciphertext IS NULL))
);
CREATE INDEX chat_messages_thread_id ON chat_messages (thread_id, id);
CREATE INDEX chat_messages_sender ON chat_messages (sender_id);
CREATE INDEX chat_messages_type ON chat_messages (type);
CREATE INDEX chat_messages_created_at ON chat_messages (created_at);

CREATE TABLE chat_jobs (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind          TEXT NOT NULL CHECK (kind IN ('purge_thread')),
    thread_id     BIGINT NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    run_at        TIMESTAMPTZ NOT NULL,
    leased_until  TIMESTAMPTZ NULL,
    failed_at     TIMESTAMPTZ NULL,
    last_error    TEXT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX chat_jobs_due ON chat_jobs (run_at, id) WHERE failed_at IS NULL;
