-- Actor snapshots: the folded practice state at a stream version, so recovery reads only the
-- tail. `schema` names the state's encoding; a snapshot of another schema is ignored (the
-- stream is folded from the start instead), so a changed fold never trusts an old snapshot.
CREATE TABLE snapshots (
    stream_id  text        PRIMARY KEY,
    version    integer     NOT NULL CHECK (version > 0),
    schema     integer     NOT NULL,
    state      jsonb       NOT NULL,
    taken_at   timestamptz NOT NULL DEFAULT now()
);
