-- The inbox page and its unread counts as PL/pgSQL functions: a function keeps the
-- plans of its queries for the session (a generic plan after a few calls), so a page
-- is not planned again on every request; planning the two statements cost more than
-- running them (0.3 to 0.6 ms each against 0.1 ms, measured in docs/BENCHMARKS.md).

-- A page of the inbox (SPEC §3.8): the reader's rows of chat_inbox, or every thread
-- with p_everyone, with p_status (NULL: any), strictly after the cursor (NULL: from
-- the start) in the order (activity, thread id) descending, each with the reader's
-- read marker. Each branch is one range of one index.
CREATE FUNCTION chat_inbox_page(
    p_reader BIGINT,
    p_everyone BOOLEAN,
    p_status TEXT,
    p_after_at TIMESTAMPTZ,
    p_after_id BIGINT,
    p_limit INTEGER
) RETURNS TABLE (
    id BIGINT, request_id BIGINT, admin_id BIGINT, client_id BIGINT, status TEXT,
    opened_at TIMESTAMPTZ, closed_at TIMESTAMPTZ, staff_ids BIGINT[],
    last_message_id BIGINT, last_message_at TIMESTAMPTZ, read_up_to BIGINT
) LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
DECLARE
    v_at TIMESTAMPTZ := COALESCE(p_after_at, 'infinity');
    v_id BIGINT := COALESCE(p_after_id, 9223372036854775807);
BEGIN
    IF NOT p_everyone AND p_status IS NOT NULL THEN
        RETURN QUERY
        SELECT c.id, c.request_id, c.admin_id, c.client_id, c.status, c.opened_at,
               c.closed_at, c.staff_ids, c.last_message_id, c.last_message_at, r.up_to
        FROM chat_inbox i JOIN chat_threads c ON c.id = i.thread_id
        LEFT JOIN chat_reads r ON r.thread_id = i.thread_id AND r.user_id = p_reader
        WHERE i.user_id = p_reader AND i.status = p_status
          AND (i.activity_at, i.thread_id) < (v_at, v_id)
        ORDER BY i.activity_at DESC, i.thread_id DESC LIMIT p_limit;
    ELSIF NOT p_everyone THEN
        RETURN QUERY
        SELECT c.id, c.request_id, c.admin_id, c.client_id, c.status, c.opened_at,
               c.closed_at, c.staff_ids, c.last_message_id, c.last_message_at, r.up_to
        FROM chat_inbox i JOIN chat_threads c ON c.id = i.thread_id
        LEFT JOIN chat_reads r ON r.thread_id = i.thread_id AND r.user_id = p_reader
        WHERE i.user_id = p_reader
          AND (i.activity_at, i.thread_id) < (v_at, v_id)
        ORDER BY i.activity_at DESC, i.thread_id DESC LIMIT p_limit;
    ELSIF p_status IS NOT NULL THEN
        RETURN QUERY
        SELECT c.id, c.request_id, c.admin_id, c.client_id, c.status, c.opened_at,
               c.closed_at, c.staff_ids, c.last_message_id, c.last_message_at, r.up_to
        FROM chat_threads c
        LEFT JOIN chat_reads r ON r.thread_id = c.id AND r.user_id = p_reader
        WHERE c.status = p_status AND (c.activity_at, c.id) < (v_at, v_id)
        ORDER BY c.activity_at DESC, c.id DESC LIMIT p_limit;
    ELSE
        RETURN QUERY
        SELECT c.id, c.request_id, c.admin_id, c.client_id, c.status, c.opened_at,
               c.closed_at, c.staff_ids, c.last_message_id, c.last_message_at, r.up_to
        FROM chat_threads c
        LEFT JOIN chat_reads r ON r.thread_id = c.id AND r.user_id = p_reader
        WHERE (c.activity_at, c.id) < (v_at, v_id)
        ORDER BY c.activity_at DESC, c.id DESC LIMIT p_limit;
    END IF;
END;
$$;

-- For each (thread, read marker), the messages not expired by p_expired_before above
-- the marker (0: none) that p_reader did not send, in the order given. Ids, senders
-- and times only: no content is read.
CREATE FUNCTION chat_unread_counts(
    p_threads BIGINT[],
    p_markers BIGINT[],
    p_reader BIGINT,
    p_expired_before TIMESTAMPTZ
) RETURNS TABLE (unread BIGINT) LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN QUERY
    SELECT (SELECT count(*) FROM chat_messages m
            WHERE m.thread_id = t.thread_id AND m.id > t.after AND m.sender_id <> p_reader
              AND (p_expired_before IS NULL OR m.created_at >= p_expired_before))
    FROM unnest(p_threads, p_markers) WITH ORDINALITY AS t(thread_id, after, n)
    ORDER BY t.n;
END;
$$;
