-- Idempotency keys of posts (SPEC §3.4): a client that repeats a post with the same
-- `Idempotency-Key` (after a lost answer or a 503) gets the first post's id and
-- nothing more is stored. A key row holds ids and the time only, never content, and
-- goes when its message's TTL runs out (with the thread's expired messages, and in the
-- sweep).
CREATE TABLE chat_post_keys (
    thread_id   BIGINT NOT NULL,
    sender_id   BIGINT NOT NULL,
    key         TEXT NOT NULL CHECK (octet_length(key) BETWEEN 1 AND 64),
    message_id  BIGINT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (thread_id, sender_id, key)
);
CREATE INDEX chat_post_keys_created_at ON chat_post_keys (created_at);

-- The append of migration 6 with the key: checked and stored in the same step as the
-- message, under the thread's advisory lock, so two repeats racing each other store
-- one message. Returns NULL when it stored the message, or the id of the message the
-- key already names (not expired by p_expired_before). An overload, not a
-- replacement: instances of the previous release keep calling the nine-argument one.
-- The service calls it inside a transaction that it commits only when the answer
-- arrived within its deadline (chat-postgres, messages.rs).
CREATE FUNCTION chat_append_message(
    p_id BIGINT,
    p_thread_id BIGINT,
    p_sender_id BIGINT,
    p_type TEXT,
    p_nonce BYTEA,
    p_ciphertext BYTEA,
    p_created_at TIMESTAMPTZ,
    p_expired_before TIMESTAMPTZ,  -- NULL: no TTL
    p_keep_newest BIGINT,          -- NULL: no cap
    p_key TEXT                     -- NULL: no idempotency key
) RETURNS BIGINT LANGUAGE plpgsql AS $$
DECLARE
    v_newest BIGINT;
    v_first BIGINT;
BEGIN
    PERFORM pg_advisory_xact_lock(p_thread_id);
    IF p_key IS NOT NULL THEN
        SELECT message_id INTO v_first FROM chat_post_keys
        WHERE thread_id = p_thread_id AND sender_id = p_sender_id AND key = p_key
          AND (p_expired_before IS NULL OR created_at >= p_expired_before);
        IF FOUND THEN
            RETURN v_first;
        END IF;
    END IF;
    SELECT max(id) INTO v_newest FROM chat_messages WHERE thread_id = p_thread_id;
    IF v_newest >= p_id THEN
        RAISE EXCEPTION 'message id behind the thread''s newest'
            USING ERRCODE = 'CH001', DETAIL = v_newest::text;
    END IF;
    INSERT INTO chat_messages (id, thread_id, sender_id, type, nonce, ciphertext, created_at)
    VALUES (p_id, p_thread_id, p_sender_id, p_type, p_nonce, p_ciphertext, p_created_at);
    IF p_key IS NOT NULL THEN
        INSERT INTO chat_post_keys (thread_id, sender_id, key, message_id, created_at)
        VALUES (p_thread_id, p_sender_id, p_key, p_id, p_created_at)
        ON CONFLICT (thread_id, sender_id, key)
        DO UPDATE SET message_id = EXCLUDED.message_id, created_at = EXCLUDED.created_at;
    END IF;
    IF p_expired_before IS NOT NULL THEN
        DELETE FROM chat_messages
        WHERE thread_id = p_thread_id AND created_at < p_expired_before;
        DELETE FROM chat_post_keys
        WHERE thread_id = p_thread_id AND created_at < p_expired_before;
    END IF;
    IF p_keep_newest IS NOT NULL THEN
        DELETE FROM chat_messages
        WHERE thread_id = p_thread_id AND id < (
            SELECT id FROM chat_messages WHERE thread_id = p_thread_id
            ORDER BY id DESC OFFSET p_keep_newest - 1 LIMIT 1);
    END IF;
    RETURN NULL;
END
$$;
