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
