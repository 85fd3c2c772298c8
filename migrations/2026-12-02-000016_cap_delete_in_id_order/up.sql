-- chat_append_batch() as migration 15 made it, but for the cap: the messages beyond the
-- newest p_keep_newest are deleted oldest first, in index order, so each post's delete
-- reads the heap pages of the rows it deletes rather than of every older row whose
-- index entry is not yet vacuumed (docs/BENCHMARKS.md, goal 1 of issue 21). Same
-- arguments, same answers; instances of the previous release call it unchanged.
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
    v_cutoff BIGINT;
    v_old TID;
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
        SELECT id INTO v_cutoff FROM chat_messages WHERE thread_id = p_thread_id
        ORDER BY id DESC OFFSET p_keep_newest - 1 LIMIT 1;
        -- Oldest first, one row at a time: with LIMIT 1 the (thread_id, id) index is
        -- read in its order (a plain index scan), which marks the entries of rows
        -- deleted before as dead once no one can see them, so later posts skip them
        -- without reading their heap pages. The delete of all rows below the cutoff
        -- at once ran as a bitmap scan, which never marks them, and so read the heap
        -- page of every deleted row not yet vacuumed at every post (hundreds).
        IF v_cutoff IS NOT NULL THEN
            -- Until none is left: a row another transaction deleted meanwhile is gone
            -- from the next statement's snapshot.
            LOOP
                SELECT ctid INTO v_old FROM chat_messages
                WHERE thread_id = p_thread_id AND id < v_cutoff
                ORDER BY thread_id, id LIMIT 1;
                EXIT WHEN NOT FOUND;
                DELETE FROM chat_messages WHERE ctid = v_old;
            END LOOP;
        END IF;
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
