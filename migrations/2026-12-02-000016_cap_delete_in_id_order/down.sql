-- Back to migration 15's cap delete.
CREATE OR REPLACE FUNCTION chat_append_batch(
    p_thread_id BIGINT,
    p_ids BIGINT[],
    p_sender_ids BIGINT[],
    p_types TEXT[],
    p_nonces BYTEA[],
    p_ciphertexts BYTEA[],
    p_created_at TIMESTAMPTZ[],
    p_keys TEXT[],                 -- an element NULL: no idempotency key
    p_expired_before TIMESTAMPTZ,  -- NULL: no TTL
    p_keep_newest BIGINT           -- NULL: no cap
) RETURNS BIGINT[] LANGUAGE plpgsql AS $$
DECLARE
    v_newest BIGINT;
    v_first BIGINT;
    v_answers BIGINT[] := '{}';
    v_stored_id BIGINT;
    v_stored_at TIMESTAMPTZ;
BEGIN
    PERFORM pg_advisory_xact_lock(p_thread_id);
    SELECT max(id) INTO v_newest FROM chat_messages WHERE thread_id = p_thread_id;
    FOR i IN 1 .. coalesce(array_length(p_ids, 1), 0) LOOP
        v_first := NULL;
        IF p_keys[i] IS NOT NULL THEN
            SELECT message_id INTO v_first FROM chat_post_keys
            WHERE thread_id = p_thread_id AND sender_id = p_sender_ids[i] AND key = p_keys[i]
              AND (p_expired_before IS NULL OR created_at >= p_expired_before);
        END IF;
        IF v_first IS NULL THEN
            IF v_newest >= p_ids[i] THEN
                RAISE EXCEPTION 'message id behind the thread''s newest'
                    USING ERRCODE = 'CH001', DETAIL = v_newest::text;
            END IF;
            INSERT INTO chat_messages (id, thread_id, sender_id, type, nonce, ciphertext, created_at)
            VALUES (p_ids[i], p_thread_id, p_sender_ids[i], p_types[i], p_nonces[i],
                    p_ciphertexts[i], p_created_at[i]);
            IF p_keys[i] IS NOT NULL THEN
                INSERT INTO chat_post_keys (thread_id, sender_id, key, message_id, created_at)
                VALUES (p_thread_id, p_sender_ids[i], p_keys[i], p_ids[i], p_created_at[i])
                ON CONFLICT (thread_id, sender_id, key)
                DO UPDATE SET message_id = EXCLUDED.message_id, created_at = EXCLUDED.created_at;
            END IF;
            v_newest := p_ids[i];
            v_stored_id := p_ids[i];
            v_stored_at := p_created_at[i];
        END IF;
        v_answers := v_answers || v_first;
    END LOOP;
    IF v_stored_id IS NULL THEN
        RETURN v_answers;
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
    -- The activity, as chat-postgres's record_activity_on writes it.
    WITH t AS (
        UPDATE chat_threads
        SET last_message_id = v_stored_id, last_message_at = v_stored_at,
            activity_at = v_stored_at
        WHERE id = p_thread_id AND (last_message_id IS NULL OR last_message_id < v_stored_id)
        RETURNING id)
    UPDATE chat_inbox i SET activity_at = v_stored_at FROM t WHERE i.thread_id = t.id;
    RETURN v_answers;
END
$$;
