-- The append-only log, its projections and the encrypted credentials (interface section 6).

-- position: assigned as max(position)+1 while the transaction holds the append lock
-- (pg_advisory_xact_lock), so positions are dense and commit order equals position order:
-- a reader that tails `position > last` can never skip a row committed later.
CREATE TABLE events (
    position    bigint      PRIMARY KEY CHECK (position > 0),
    stream_id   text        NOT NULL,
    version     integer     NOT NULL CHECK (version > 0),
    type        text        NOT NULL,
    data        jsonb       NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT events_stream_version UNIQUE (stream_id, version)
);

-- projection: one row per practice stream. `fold` holds the practice-level fold state (no
-- writebacks, no payloads, no secrets) so that the next event can be applied to it.
CREATE TABLE practices (
    office_id        text        PRIMARY KEY,
    practice_name    text        NOT NULL DEFAULT '',
    state            text        NOT NULL
                     CHECK (state IN ('active', 'setup_required', 'paused', 'parked', 'offboarded')),
    owner            text,
    token_expires_at timestamptz,
    last_error       text,
    updated_at       timestamptz NOT NULL,
    version          integer     NOT NULL,
    fold             jsonb       NOT NULL
);

-- projection: one row per writeback, the admin API's Writeback shape (never the payload).
CREATE TABLE writebacks (
    writeback_id         text        PRIMARY KEY,
    office_id            text        NOT NULL,
    operation            text        NOT NULL,
    state                text        NOT NULL
                         CHECK (state IN ('queued', 'submitting', 'pending', 'deferred', 'unknown',
                                          'completed', 'failed', 'cancelled')),
    idempotency_key      text,
    retry_of             text,
    retryable            boolean     NOT NULL DEFAULT false,
    sikka_writeback_id   text,
    created_id           text,
    error                jsonb,
    requested_at         timestamptz NOT NULL,
    submitted_at         timestamptz,
    completed_at         timestamptz,
    sikka_completed_time text,
    deadline_at          timestamptz NOT NULL,
    attempts             integer     NOT NULL DEFAULT 0,
    checks               integer     NOT NULL DEFAULT 0,
    next_check_at        timestamptz,
    seq                  integer     NOT NULL DEFAULT 0,
    fold                 jsonb       NOT NULL,
    CONSTRAINT final_has_completed_at
        CHECK (state NOT IN ('completed', 'failed', 'cancelled') OR completed_at IS NOT NULL)
);
CREATE UNIQUE INDEX writebacks_idempotency ON writebacks (office_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX writebacks_by_practice ON writebacks (office_id, requested_at DESC, writeback_id DESC);
CREATE INDEX writebacks_open ON writebacks (state) WHERE state NOT IN ('completed', 'failed', 'cancelled');

-- secrets (practice secret/request/refresh keys) and per-writeback payload keys, each
-- encrypted with the master key(s) (Fernet/MultiFernet). Never in events or projections.
CREATE TABLE credentials (
    kind       text        NOT NULL,
    owner      text        NOT NULL,
    ciphertext text        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, owner)
);

-- The whole append as one call (one round trip): serialize appends, check the stream version,
-- insert the batch at dense positions, upsert the projection rows the writer computed with the
-- production fold, and wake listeners. A stale writer gets SQLSTATE SU409 and writes nothing.
-- The lock key is store.locks.APPEND_LOCK (namespace 0x5155 = 20821, key 1).
CREATE FUNCTION sikka_append(
    p_stream text, p_expected integer, p_types text[], p_data jsonb[], p_practice jsonb, p_writebacks jsonb
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_actual integer;
    v_head   bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(20821, 1);
    SELECT coalesce(max(version), 0) INTO v_actual FROM events WHERE stream_id = p_stream;
    IF v_actual <> p_expected THEN
        RAISE EXCEPTION USING ERRCODE = 'SU409', DETAIL = v_actual::text,
            MESSAGE = format('stream %s: expected version %s, but it is at version %s', p_stream, p_expected, v_actual);
    END IF;
    SELECT coalesce(max(position), 0) INTO v_head FROM events;
    INSERT INTO events (position, stream_id, version, type, data)
        SELECT v_head + i, p_stream, p_expected + i, p_types[i], p_data[i] FROM generate_subscripts(p_types, 1) AS i;
    INSERT INTO practices SELECT * FROM jsonb_populate_record(NULL::practices, p_practice)
        ON CONFLICT (office_id) DO UPDATE SET
            practice_name = EXCLUDED.practice_name, state = EXCLUDED.state,
            token_expires_at = EXCLUDED.token_expires_at, last_error = EXCLUDED.last_error,
            updated_at = EXCLUDED.updated_at, version = EXCLUDED.version, fold = EXCLUDED.fold;
    INSERT INTO writebacks SELECT * FROM jsonb_populate_recordset(NULL::writebacks, p_writebacks)
        ON CONFLICT (writeback_id) DO UPDATE SET
            office_id = EXCLUDED.office_id, operation = EXCLUDED.operation, state = EXCLUDED.state,
            idempotency_key = EXCLUDED.idempotency_key, retry_of = EXCLUDED.retry_of,
            retryable = EXCLUDED.retryable, sikka_writeback_id = EXCLUDED.sikka_writeback_id,
            created_id = EXCLUDED.created_id, error = EXCLUDED.error, requested_at = EXCLUDED.requested_at,
            submitted_at = EXCLUDED.submitted_at, completed_at = EXCLUDED.completed_at,
            sikka_completed_time = EXCLUDED.sikka_completed_time, deadline_at = EXCLUDED.deadline_at,
            attempts = EXCLUDED.attempts, checks = EXCLUDED.checks, next_check_at = EXCLUDED.next_check_at,
            seq = EXCLUDED.seq, fold = EXCLUDED.fold;
    PERFORM pg_notify('events', (v_head + cardinality(p_types))::text);
    RETURN v_head + cardinality(p_types);
END $$;
