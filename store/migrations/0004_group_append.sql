-- Group commit (store.groupcommit): one call appends a group of batches, each to its own stream,
-- in one transaction under the append lock (store.locks.APPEND_LOCK: namespace 0x5155 = 20821,
-- key 1), so a group costs one lock, one flush and one NOTIFY however many streams it holds.
--
-- p_group is a JSON array of batches, each {"stream", "expected", "events": [event, ...],
-- "practice": a practices row, "writebacks": [writebacks row, ...]}: events to append to a stream
-- at version `expected`, with the projection rows its writer computed with the production fold
-- (one JSON document: a single parameter costs the client nothing to send). Each batch is checked
-- on its own and the group writes only the batches that pass, in order, at dense positions after
-- the log's head:
--   o_actual[i]     the stream's version before batch i (for a second batch of one stream in the
--                   group: after the first, if that one passes); the batch passes only if it
--                   equals its `expected` (else the writer gets ConcurrencyError)
--   o_duplicate[i]  an idempotency key batch i gives a writeback of its practice that another
--                   writeback already holds (the writer gets DuplicateIdempotencyKey), else NULL
--   o_last          the log's head after the group
-- Anything else that fails (a constraint, bad data) fails the whole call; the writers then
-- append alone, so each gets the error its own batch causes.
--
-- sikka_append (0001) stays for supervisors of the previous release during a rolling upgrade:
-- it takes the same lock, so positions stay dense and in commit order with both in use.
CREATE FUNCTION sikka_append_group(p_group jsonb, OUT o_actual integer[], OUT o_duplicate text[], OUT o_last bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_streams  text[];
    v_expected integer[];
    v_sizes    integer[];
    v_passes   boolean[] := '{}';
    v_moved    jsonb := '{}';  -- stream -> its version after a batch of this group that passes
    v_head     bigint;
    v_added    bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(20821, 1);
    SELECT array_agg(g.batch->>'stream' ORDER BY g.n),
           array_agg((g.batch->>'expected')::integer ORDER BY g.n),
           array_agg(jsonb_array_length(g.batch->'events') ORDER BY g.n),
           array_agg((SELECT coalesce(max(e.version), 0) FROM events e WHERE e.stream_id = g.batch->>'stream')
                     ORDER BY g.n),
           array_agg((SELECT r.idempotency_key
                      FROM jsonb_to_recordset(g.batch->'writebacks')
                          AS r(writeback_id text, office_id text, idempotency_key text)
                      JOIN writebacks w ON w.office_id = r.office_id AND w.idempotency_key = r.idempotency_key
                          AND w.idempotency_key IS NOT NULL AND w.writeback_id <> r.writeback_id
                      WHERE r.idempotency_key IS NOT NULL
                      LIMIT 1) ORDER BY g.n)
        INTO v_streams, v_expected, v_sizes, o_actual, o_duplicate
        FROM jsonb_array_elements(p_group) WITH ORDINALITY AS g(batch, n);
    FOR i IN 1 .. cardinality(v_streams) LOOP
        IF v_moved ? v_streams[i] THEN
            o_actual[i] := (v_moved ->> v_streams[i])::integer;
        END IF;
        v_passes[i] := o_actual[i] = v_expected[i] AND o_duplicate[i] IS NULL;
        IF v_passes[i] THEN
            v_moved := v_moved || jsonb_build_object(v_streams[i], v_expected[i] + v_sizes[i]);
        END IF;
    END LOOP;
    SELECT coalesce(max(position), 0) INTO v_head FROM events;
    INSERT INTO events (position, stream_id, version, type, data)
        SELECT v_head + row_number() OVER (ORDER BY g.n, x.k), v_streams[g.n], v_expected[g.n] + x.k,
               x.event->>'type', x.event
        FROM jsonb_array_elements(p_group) WITH ORDINALITY AS g(batch, n),
            jsonb_array_elements(g.batch->'events') WITH ORDINALITY AS x(event, k)
        WHERE v_passes[g.n];
    GET DIAGNOSTICS v_added = ROW_COUNT;
    o_last := v_head + v_added;
    IF v_added = 0 THEN
        RETURN;
    END IF;
    INSERT INTO practices
        SELECT r.* FROM jsonb_array_elements(p_group) WITH ORDINALITY AS g(batch, n),
            jsonb_populate_record(NULL::practices, g.batch->'practice') AS r
        WHERE v_passes[g.n]
        ON CONFLICT (office_id) DO UPDATE SET
            practice_name = EXCLUDED.practice_name, state = EXCLUDED.state,
            token_expires_at = EXCLUDED.token_expires_at, last_error = EXCLUDED.last_error,
            updated_at = EXCLUDED.updated_at, version = EXCLUDED.version, fold = EXCLUDED.fold;
    INSERT INTO writebacks
        SELECT r.* FROM jsonb_array_elements(p_group) WITH ORDINALITY AS g(batch, n),
            jsonb_populate_recordset(NULL::writebacks, g.batch->'writebacks') AS r
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
