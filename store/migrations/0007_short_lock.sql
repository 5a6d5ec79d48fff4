-- sikka_commit_group, version 2: the append lock is held for the events alone, and the folds it
-- is sent leave out the fields at their defaults.
--
-- Measured on bench.store's 64 writers (two group commits in flight, store.groupcommit): with
-- 0006 the lock (store.locks.APPEND_LOCK: namespace 0x5155 = 20821, key 1) was held through the
-- checks and both projection upserts, about 3 ms of a group's 6 ms, while the other group waited
-- for it; here a group takes it after its upserts and holds it for the log's head, the events'
-- INSERT, the NOTIFY and the commit (about 0.4 ms before the commit). Positions stay dense and in
-- commit order: they are still assigned under the lock, which is still held until the commit.
--
-- What may now happen outside the lock, and why it is safe:
-- * the version check: within a process two groups in flight never hold one stream
--   (store.groupcommit); were another process to append to the same stream at once, both would
--   pass the check and the second INSERT of a version would fail on the unique (stream_id,
--   version) index, failing the call (and its upserts with it): the writers then append alone,
--   as after any data error, and a lone batch that breaks a unique index is tried once more
--   (store.pglog), when its check sees the winner and reports the conflict;
-- * the idempotency-key check: likewise, writebacks_idempotency fails the second of two
--   concurrent writers of one key;
-- * the upserts take the projection rows' locks before the append lock. They take them in
--   office_id order, and a writeback row only after its practice's row, so two groups of this
--   function cannot wait for each other in a cycle. A supervisor of a release before this one
--   (0006's function: append lock first, rows after) appending to the same practice at the same
--   moment could: PostgreSQL then aborts one of the two (deadlock detected), whose writers get an
--   error and retry after their actor restarts. Two processes appending to one practice at once
--   means two owners of its lease, which the leases exclude outside a handover.
--
-- Slim folds: actors.core.state encodes Practice and Writeback with omit_defaults, so a fold holds
-- only the fields that differ from their defaults (about 380 bytes instead of 850 for the bench's
-- practices and writebacks: the jsonb parse of a group, its longest step, takes half the time).
-- A typed column whose field is at its default is absent from the fold; jsonb_populate_record
-- gives NULL for it, and the defaults below (those of actors.core.state) fill the NOT NULL
-- columns. The folds already stored lose their fields at the defaults too (the documents below are
-- actors.core.state's defaults, checked by tests/store/test_pglog.py), so a fold is stored in one
-- form whoever wrote it: `replay --rebuild-projections` and deploy/restore-drill.sh compare folds
-- as they are stored. This rewrites every projection row once, in the migration's transaction
-- (appends wait for it); a supervisor of the previous release still running writes full folds,
-- which decode the same but differ as stored until the row is next written.
UPDATE practices SET fold = fold - ARRAY(SELECT d.key FROM jsonb_each(
    '{"registered": false, "practice_name": "", "practice_ids": [], "time_zone": null,
      "authorized": true, "setup_required": false, "setup_code": null, "paused": false,
      "parked_until": null, "offboarded": false, "token_expires_at": null, "last_error": null,
      "updated_at": null, "next_seq": 1, "writebacks": {}, "payloads": {}, "finished": {},
      "retryable_failed": [], "token_issued_at": null, "token_stale": false,
      "refresh_requested": false, "refresh_failures": 0, "refresh_retry_at": null,
      "refresh_grant": null, "submit_hold_until": null, "submit_hold_reason": null,
      "spu_offline_streak": 0, "offboarding": false, "failed_ops": {}, "late_watch": {},
      "recent_sikka_ids": [], "resent_watch": {}, "duplicates": []}'::jsonb
) AS d WHERE fold -> d.key = d.value);
UPDATE writebacks SET fold = fold - ARRAY(SELECT d.key FROM jsonb_each(
    '{"state": "queued", "idempotency_key": null, "retry_of": null, "retryable": false,
      "sikka_writeback_id": null, "created_id": null, "error": null, "submitted_at": null,
      "completed_at": null, "sikka_completed_time": null, "attempts": 0, "checks": 0,
      "next_check_at": null, "seq": 0, "attempted_at": null, "retry_at": null,
      "deferred_reason": null, "cancel_requested": false, "cancel_reason": null,
      "payload_digest": "", "unknown_since": null, "last_result": "", "status_read_due": false,
      "ambiguous": false, "delete_attempts": 0, "delete_retry_at": null, "delete_answered": false,
      "checked_at": null, "status_check_planned": false, "seen_here": false}'::jsonb
) AS d WHERE fold -> d.key = d.value);

CREATE OR REPLACE FUNCTION sikka_commit_group(p_group jsonb, OUT o_actual integer[], OUT o_duplicate text[], OUT o_last bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_passes boolean[];
    v_head   bigint;
    v_added  bigint;
BEGIN
    SELECT array_agg(c.actual ORDER BY c.n), array_agg(c.duplicate ORDER BY c.n),
           array_agg(c.actual = c.expected AND c.duplicate IS NULL ORDER BY c.n)
        INTO o_actual, o_duplicate, v_passes
        FROM (SELECT g.n, g.expected,
                     (SELECT coalesce(max(e.version), 0) FROM events e WHERE e.stream_id = g.stream) AS actual,
                     (SELECT k.idempotency_key
                      FROM jsonb_to_recordset(g.keys) AS k(writeback_id text, idempotency_key text)
                      JOIN writebacks w ON w.office_id = substr(g.stream, 10)
                          AND w.idempotency_key = k.idempotency_key AND w.writeback_id <> k.writeback_id
                      LIMIT 1) AS duplicate
              FROM ROWS FROM (jsonb_to_recordset(p_group) AS (stream text, expected integer, keys jsonb))
                  WITH ORDINALITY AS g(stream, expected, keys, n)) AS c;
    IF array_position(v_passes, true) IS NULL THEN
        o_last := (SELECT coalesce(max(position), 0) FROM events);
        RETURN;
    END IF;
    INSERT INTO practices (office_id, practice_name, state, token_expires_at, last_error, updated_at, version, fold)
        SELECT r.office_id, coalesce(r.practice_name, ''), g.state, r.token_expires_at, r.last_error, r.updated_at,
               g.version, g.practice
        FROM ROWS FROM (jsonb_to_recordset(p_group) AS (version integer, state text, practice jsonb))
                WITH ORDINALITY AS g(version, state, practice, n),
            jsonb_populate_record(NULL::practices, g.practice) AS r
        WHERE v_passes[g.n]
        ORDER BY r.office_id
        ON CONFLICT (office_id) DO UPDATE SET
            practice_name = EXCLUDED.practice_name, state = EXCLUDED.state,
            token_expires_at = EXCLUDED.token_expires_at, last_error = EXCLUDED.last_error,
            updated_at = EXCLUDED.updated_at, version = EXCLUDED.version, fold = EXCLUDED.fold;
    INSERT INTO writebacks (writeback_id, office_id, operation, state, idempotency_key, retry_of, retryable,
                            sikka_writeback_id, created_id, error, requested_at, submitted_at, completed_at,
                            sikka_completed_time, deadline_at, attempts, checks, next_check_at, seq, fold)
        SELECT r.writeback_id, r.office_id, r.operation, coalesce(r.state, 'queued'), r.idempotency_key, r.retry_of,
               coalesce(r.retryable, false), r.sikka_writeback_id, r.created_id, r.error, r.requested_at,
               r.submitted_at, r.completed_at, r.sikka_completed_time, r.deadline_at, coalesce(r.attempts, 0),
               coalesce(r.checks, 0), r.next_check_at, coalesce(r.seq, 0), w.fold
        FROM ROWS FROM (jsonb_to_recordset(p_group) AS (writebacks jsonb)) WITH ORDINALITY AS g(writebacks, n),
            jsonb_array_elements(g.writebacks) AS w(fold),
            jsonb_populate_record(NULL::writebacks, w.fold) AS r
        WHERE v_passes[g.n]
        ORDER BY r.writeback_id
        ON CONFLICT (writeback_id) DO UPDATE SET
            office_id = EXCLUDED.office_id, operation = EXCLUDED.operation, state = EXCLUDED.state,
            idempotency_key = EXCLUDED.idempotency_key, retry_of = EXCLUDED.retry_of,
            retryable = EXCLUDED.retryable, sikka_writeback_id = EXCLUDED.sikka_writeback_id,
            created_id = EXCLUDED.created_id, error = EXCLUDED.error, requested_at = EXCLUDED.requested_at,
            submitted_at = EXCLUDED.submitted_at, completed_at = EXCLUDED.completed_at,
            sikka_completed_time = EXCLUDED.sikka_completed_time, deadline_at = EXCLUDED.deadline_at,
            attempts = EXCLUDED.attempts, checks = EXCLUDED.checks, next_check_at = EXCLUDED.next_check_at,
            seq = EXCLUDED.seq, fold = EXCLUDED.fold;
    PERFORM pg_advisory_xact_lock(20821, 1);
    SELECT coalesce(max(position), 0) INTO v_head FROM events;
    INSERT INTO events (position, stream_id, version, type, data)
        SELECT v_head + row_number() OVER (ORDER BY g.n, x.k), g.stream, g.expected + x.k, x.event->>'type', x.event
        FROM ROWS FROM (jsonb_to_recordset(p_group) AS (stream text, expected integer, events jsonb))
                WITH ORDINALITY AS g(stream, expected, events, n),
            jsonb_array_elements(g.events) WITH ORDINALITY AS x(event, k)
        WHERE v_passes[g.n];
    GET DIAGNOSTICS v_added = ROW_COUNT;
    o_last := v_head + v_added;
    PERFORM pg_notify('events', o_last::text);
END $$;
