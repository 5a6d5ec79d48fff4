-- sikka_commit_group: a group commit (store.groupcommit) in about half the time of 0004's
-- sikka_append_group, which stays for supervisors of the previous release during a rolling upgrade
-- (both take the append lock, store.locks.APPEND_LOCK: namespace 0x5155 = 20821, key 1, so
-- positions stay dense and in commit order with both in use).
--
-- What changed, measured on a group of 64 one-event batches (bench.store's 64 writers):
-- * a row travels once: the projection rows are their fold documents, and the typed columns are
--   read from the fold here (jsonb_populate_record) instead of being sent a second time beside it;
-- * only the idempotency keys a batch brings (`keys`: writebacks new to its writer, or whose key
--   changed) are looked up, through writebacks_idempotency, instead of a join per batch over every
--   writeback row it carries (that join degraded to a scan of the table);
-- * a stream appears at most once in a group (store.groupcommit leaves a second batch of a stream
--   for the next group), so each batch is checked against the stored version alone, in one
--   statement, without 0004's sequential loop (were a stream to appear twice, both batches would
--   pass the check and the unique (stream_id, version) index would fail the call: the writers then
--   append alone, as after any data error);
-- * the tables keep room on each page (fillfactor) so that updating a row whose indexed columns do
--   not change (a status check, a practice's summary) is a HOT update: no index entry is written.
--
-- p_group is a JSON array of batches, each {"stream", "expected", "version": the stream's version
-- after the batch, "events": [event, ...],
-- "state": the practice's state, "practice": its summary (fold), "writebacks": [fold, ...],
-- "keys": [{"writeback_id", "idempotency_key"}, ...]}. A batch passes when the stream's version is
-- `expected` and none of its keys is held by another writeback of the practice; the group writes
-- the batches that pass, in order, at dense positions after the log's head:
--   o_actual[i]     the stream's version before batch i (ConcurrencyError unless `expected`)
--   o_duplicate[i]  a key of batch i that another writeback holds (DuplicateIdempotencyKey), else NULL
--   o_last          the log's head after the group
-- Anything else that fails (a constraint, bad data) fails the whole call; the writers then append
-- alone, so each gets the error its own batch causes.
ALTER TABLE practices SET (fillfactor = 50);
ALTER TABLE writebacks SET (fillfactor = 70);

CREATE FUNCTION sikka_commit_group(p_group jsonb, OUT o_actual integer[], OUT o_duplicate text[], OUT o_last bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_passes boolean[];
    v_head   bigint;
    v_added  bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(20821, 1);
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
    SELECT coalesce(max(position), 0) INTO v_head FROM events;
    INSERT INTO events (position, stream_id, version, type, data)
        SELECT v_head + row_number() OVER (ORDER BY g.n, x.k), g.stream, g.expected + x.k, x.event->>'type', x.event
        FROM ROWS FROM (jsonb_to_recordset(p_group) AS (stream text, expected integer, events jsonb))
                WITH ORDINALITY AS g(stream, expected, events, n),
            jsonb_array_elements(g.events) WITH ORDINALITY AS x(event, k)
        WHERE v_passes[g.n];
    GET DIAGNOSTICS v_added = ROW_COUNT;
    o_last := v_head + v_added;
    IF v_added = 0 THEN
        RETURN;
    END IF;
    INSERT INTO practices (office_id, practice_name, state, token_expires_at, last_error, updated_at, version, fold)
        SELECT r.office_id, r.practice_name, g.state, r.token_expires_at, r.last_error, r.updated_at,
               g.version, g.practice
        FROM ROWS FROM (jsonb_to_recordset(p_group) AS (version integer, state text, practice jsonb))
                WITH ORDINALITY AS g(version, state, practice, n),
            jsonb_populate_record(NULL::practices, g.practice) AS r
        WHERE v_passes[g.n]
        ON CONFLICT (office_id) DO UPDATE SET
            practice_name = EXCLUDED.practice_name, state = EXCLUDED.state,
            token_expires_at = EXCLUDED.token_expires_at, last_error = EXCLUDED.last_error,
            updated_at = EXCLUDED.updated_at, version = EXCLUDED.version, fold = EXCLUDED.fold;
    INSERT INTO writebacks (writeback_id, office_id, operation, state, idempotency_key, retry_of, retryable,
                            sikka_writeback_id, created_id, error, requested_at, submitted_at, completed_at,
                            sikka_completed_time, deadline_at, attempts, checks, next_check_at, seq, fold)
        SELECT r.writeback_id, r.office_id, r.operation, r.state, r.idempotency_key, r.retry_of, r.retryable,
               r.sikka_writeback_id, r.created_id, r.error, r.requested_at, r.submitted_at, r.completed_at,
               r.sikka_completed_time, r.deadline_at, r.attempts, r.checks, r.next_check_at, r.seq, w.fold
        FROM ROWS FROM (jsonb_to_recordset(p_group) AS (writebacks jsonb)) WITH ORDINALITY AS g(writebacks, n),
            jsonb_array_elements(g.writebacks) AS w(fold),
            jsonb_populate_record(NULL::writebacks, w.fold) AS r
        WHERE v_passes[g.n]
        ON CONFLICT (writeback_id) DO UPDATE SET
            office_id = EXCLUDED.office_id, operation = EXCLUDED.operation, state = EXCLUDED.state,
            idempotency_key = EXCLUDED.idempotency_key, retry_of = EXCLUDED.retry_of,
            retryable = EXCLUDED.retryable, sikka_writeback_id = EXCLUDED.sikka_writeback_id,
            created_id = EXCLUDED.created_id, error = EXCLUDED.error, requested_at = EXCLUDED.requested_at,
            submitted_at = EXCLUDED.submitted_at, completed_at = EXCLUDED.completed_at,
            sikka_completed_time = EXCLUDED.sikka_completed_time, deadline_at = EXCLUDED.deadline_at,
            attempts = EXCLUDED.attempts, checks = EXCLUDED.checks, next_check_at = EXCLUDED.next_check_at,
            seq = EXCLUDED.seq, fold = EXCLUDED.fold;
    PERFORM pg_notify('events', o_last::text);
END $$;
