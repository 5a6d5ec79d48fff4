-- Dashboard queries over the tables of interface section 6 (events, practices, writebacks):
-- the monitoring queries of the original setup guide (section 6), rewritten for this product.
-- Each query starts with a "-- name: NAME" line; tests/test_dashboards.py runs every one.
-- Live per-minute rate usage is not in the database: GET /usage, `sikka-supervisor usage` and
-- the sikka_rate_used / sikka_rate_limit metrics carry it.

-- name: tokens_expiring
-- Active practices whose request key expires within 2 hours (the supervisor refreshes keys
-- well before that: a row here means refreshing is failing; see last_error).
SELECT office_id,
       practice_name,
       token_expires_at,
       round(extract(epoch FROM token_expires_at - now()) / 3600, 2) AS hours_until_expiry,
       last_error
FROM practices
WHERE state = 'active'
  AND token_expires_at < now() + interval '2 hours'
ORDER BY token_expires_at;

-- name: stuck_writebacks
-- Writebacks pending at Sikka for over 30 minutes (the writeback_stuck alert).
SELECT writeback_id,
       office_id,
       operation,
       sikka_writeback_id,
       submitted_at,
       checks,
       round(extract(epoch FROM now() - submitted_at) / 60, 1) AS minutes_pending
FROM writebacks
WHERE state = 'pending'
  AND submitted_at < now() - interval '30 minutes'
ORDER BY submitted_at;

-- name: failed_writebacks
-- Writebacks that failed in the last 24 hours, newest first (the writeback_failed alert).
SELECT writeback_id,
       office_id,
       operation,
       error ->> 'code'    AS error_code,
       error ->> 'message' AS error_message,
       retryable,
       submitted_at,
       completed_at
FROM writebacks
WHERE state = 'failed'
  AND completed_at > now() - interval '24 hours'
ORDER BY completed_at DESC;

-- name: failure_rate
-- Practices where over 5 % of the outcomes recorded in the last hour were failures (the
-- failure_rate alert).
SELECT office_id,
       count(*) FILTER (WHERE state = 'completed') AS completed,
       count(*) FILTER (WHERE state = 'failed')    AS failed,
       round(100.0 * count(*) FILTER (WHERE state = 'failed') / count(*), 1) AS failure_percent
FROM writebacks
WHERE state IN ('completed', 'failed')
  AND completed_at > now() - interval '1 hour'
GROUP BY office_id
HAVING count(*) FILTER (WHERE state = 'failed') > 0.05 * count(*)
ORDER BY failure_percent DESC, office_id;

-- name: usage
-- Per practice over the last 24 hours: writebacks requested and their states, and submission
-- attempts sent to Sikka (from the event log).
SELECT p.office_id,
       p.practice_name,
       p.state,
       count(w.writeback_id)                                AS requested,
       count(w.writeback_id) FILTER (WHERE w.state = 'completed') AS completed,
       count(w.writeback_id) FILTER (WHERE w.state = 'failed')    AS failed,
       count(w.writeback_id) FILTER (WHERE w.state NOT IN ('completed', 'failed', 'cancelled')) AS open,
       (SELECT count(*) FROM events e
         WHERE e.stream_id = 'practice-' || p.office_id
           AND e.type = 'submit_attempted'
           AND e.recorded_at > now() - interval '24 hours') AS submit_attempts
FROM practices p
LEFT JOIN writebacks w ON w.office_id = p.office_id AND w.requested_at > now() - interval '24 hours'
GROUP BY p.office_id, p.practice_name, p.state
ORDER BY requested DESC, p.office_id;
