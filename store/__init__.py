"""Storage: the append-only event log, projections and encrypted credentials on PostgreSQL.

- ``embedded``    the embedded PostgreSQL server (pgserver) when ``DATABASE_URL`` is unset
- ``db``          sync psycopg + psycopg_pool in worker threads behind a small trio API
- ``migrate``     versioned schema migrations under an advisory lock
- ``eventlog``    ``EventStore``: ``PgEventStore`` and ``MemoryEventStore`` (same contract)
- ``faults``      a fault-injecting wrapper for either store
- ``projections`` ``practices``/``writebacks`` rows from the fold; rebuild into shadow tables
- ``credentials`` Fernet-encrypted secrets and per-writeback payload keys
- ``replay``      ``sikka-supervisor replay``
"""
