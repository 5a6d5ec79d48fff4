-- Several supervisors on one database (interface section 4, "Several supervisors").
--
-- nodes: one row per running supervisor (SIKKA_NODE_ID), its heartbeat renewed with its leases;
-- a node whose row has expired is not live. Practices are spread over the live nodes by
-- rendezvous hashing (actors.leases).
CREATE TABLE nodes (
    node_id    text        PRIMARY KEY,
    started_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);

-- leases: which node may run a practice's actor. `term` grows by one at every acquisition, so a
-- renewal (scoped to the term it was granted) can never revive a lease another node took since.
-- A released or expired lease (expires_at <= now()) may be acquired by the node that the
-- rendezvous hash names. Safety does not rest on the lease alone: the actor's appends carry the
-- stream version, so a stale owner's write fails (SU409) and its actor stops.
CREATE TABLE leases (
    office_id  text        PRIMARY KEY,
    owner      text        NOT NULL,
    term       bigint      NOT NULL CHECK (term > 0),
    expires_at timestamptz NOT NULL
);
CREATE INDEX leases_by_owner ON leases (owner);

-- retention: final writebacks by completion time (payload keys older than the retention go).
CREATE INDEX writebacks_final_by_completion ON writebacks (completed_at)
    WHERE state IN ('completed', 'failed', 'cancelled');
