"""Storage: the append-only event log, projections and encrypted credentials on PostgreSQL.

- ``embedded``    the embedded PostgreSQL server (pgserver) when ``DATABASE_URL`` is unset
- ``db``          sync psycopg + psycopg_pool in worker threads behind a small trio API
- ``connect``     from settings to a migrated database
- ``migrate``     versioned schema migrations (``migrations/``) under an advisory lock
- ``locks``       the advisory lock keys
- ``eventlog``    the event stores' contract and what they share (errors, ``RecordedEvent``)
- ``groupcommit`` appends gathered into group commits (one transaction, lock and flush for many)
- ``pglog``       ``PgEventStore``: the event log and its projections in PostgreSQL
- ``memory``      ``MemoryEventStore``: the same contract in memory (tests, simulations, bench)
- ``projections`` ``practices``/``writebacks`` rows from the production fold (pure)
- ``rebuild``     the projection tables rebuilt from the log into shadow tables and swapped in
- ``credentials`` Fernet-encrypted secrets and per-writeback payload keys
- ``leases``      node leases and practice ownership rows
- ``alerts``      the alerts that hold, per node (an alert's ``since`` survives restarts)
- ``retention``   the retention sweep (payload keys and old rows)
- ``replay``      ``sikka-supervisor replay``
"""
