-- The function as migration 2 made it: appends in any id order.
CREATE OR REPLACE FUNCTION chat_append_message(
    p_id BIGINT,
    p_thread_id BIGINT,
    p_sender_id BIGINT,
    p_type TEXT,
    p_nonce BYTEA,
    p_ciphertext BYTEA,
    p_created_at TIMESTAMPTZ,
    p_expired_before TIMESTAMPTZ,  -- NULL: no TTL
    p_keep_newest BIGINT           -- NULL: no cap
) RETURNS VOID LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(p_thread_id);
    INSERT INTO chat_messages (id, thread_id, sender_id, type, nonce, ciphertext, created_at)
    VALUES (p_id, p_thread_id, p_sender_id, p_type, p_nonce, p_ciphertext, p_created_at);
    IF p_expired_before IS NOT NULL THEN
        DELETE FROM chat_messages
        WHERE thread_id = p_thread_id AND created_at < p_expired_before;
    END IF;
    IF p_keep_newest IS NOT NULL THEN
        DELETE FROM chat_messages
        WHERE thread_id = p_thread_id AND id < (
            SELECT id FROM chat_messages WHERE thread_id = p_thread_id
            ORDER BY id DESC OFFSET p_keep_newest - 1 LIMIT 1);
    END IF;
END
$$;
