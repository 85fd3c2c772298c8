-- Message ids are drawn by the instances (microseconds, see chat_core::ClockIds)
-- instead of the chat_message_ids sequence, one round trip less per post; so the
-- append checks the order. Ids are stored in increasing order within a thread: an
-- append whose id is at or below the thread's newest stores nothing and fails with
-- SQLSTATE CH001, the newest id as its detail, and the caller seals the message again
-- under a higher id (the id is bound into the ciphertext). Without this, a post that
-- drew a lower id but committed later would appear below messages a reader has
-- already seen. An error rather than a result value, so that an instance of the
-- previous release, which ignores the result, answers 503 instead of acknowledging a
-- message that was not stored. The sequence stays (the previous release uses it).
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
DECLARE
    v_newest BIGINT;
BEGIN
    PERFORM pg_advisory_xact_lock(p_thread_id);
    SELECT max(id) INTO v_newest FROM chat_messages WHERE thread_id = p_thread_id;
    IF v_newest >= p_id THEN
        RAISE EXCEPTION 'message id behind the thread''s newest'
            USING ERRCODE = 'CH001', DETAIL = v_newest::text;
    END IF;
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
