// The tables of `migrations/`, for diesel's query builder.

diesel::table! {
    service_requests (id) {
        id -> BigInt,
        client_id -> BigInt,
        updated_at -> Timestamptz,
        staff_ids -> Array<BigInt>,
        record -> Bool,
    }
}

diesel::table! {
    chat_threads (id) {
        id -> BigInt,
        request_id -> BigInt,
        admin_id -> Nullable<BigInt>,
        client_id -> BigInt,
        status -> Text,
        opened_at -> Timestamptz,
        closed_at -> Nullable<Timestamptz>,
        staff_ids -> Array<BigInt>,
        last_message_id -> Nullable<BigInt>,
        last_message_at -> Nullable<Timestamptz>,
        activity_at -> Timestamptz,
        hold -> Bool,
        record_state -> Nullable<Text>,
    }
}

diesel::table! {
    chat_thread_keys (thread_id) {
        thread_id -> BigInt,
        master_key_version -> Text,
        wrapped_key -> Bytea,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    chat_messages (id) {
        id -> BigInt,
        thread_id -> BigInt,
        sender_id -> BigInt,
        #[sql_name = "type"]
        kind -> Text,
        nonce -> Nullable<Bytea>,
        ciphertext -> Nullable<Bytea>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    chat_jobs (id) {
        id -> BigInt,
        kind -> Text,
        thread_id -> BigInt,
        attempts -> Integer,
        run_at -> Timestamptz,
        leased_until -> Nullable<Timestamptz>,
        failed_at -> Nullable<Timestamptz>,
        last_error -> Nullable<Text>,
        created_at -> Timestamptz,
        delivery_id -> Nullable<Text>,
        payload -> Nullable<Text>,
    }
}

diesel::table! {
    chat_audit_events (id) {
        id -> BigInt,
        at -> Timestamptz,
        actor_id -> Nullable<BigInt>,
        role -> Nullable<Text>,
        action -> Text,
        thread_id -> Nullable<BigInt>,
        request_id -> Nullable<BigInt>,
        message_id -> Nullable<BigInt>,
        outcome -> Text,
        recorded_at -> Timestamptz,
        event_id -> Nullable<Uuid>,
        detail -> Nullable<Text>,
    }
}

diesel::table! {
    chat_post_keys (thread_id, sender_id, key) {
        thread_id -> BigInt,
        sender_id -> BigInt,
        key -> Text,
        message_id -> BigInt,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    chat_inbox (thread_id, user_id) {
        user_id -> BigInt,
        thread_id -> BigInt,
        status -> Text,
        activity_at -> Timestamptz,
    }
}

diesel::table! {
    chat_reads (thread_id, user_id) {
        thread_id -> BigInt,
        user_id -> BigInt,
        up_to -> BigInt,
    }
}
