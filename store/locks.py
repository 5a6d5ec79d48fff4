"""Advisory lock keys: (namespace, key) pairs, namespaced so they cannot collide with others'."""

NAMESPACE = 0x5155  # "SU": Sikka sUpervisor

APPEND_LOCK = (NAMESPACE, 1)  # transaction-scoped: serializes (group) commits (position = commit order)
MIGRATE_LOCK = (NAMESPACE, 2)  # transaction-scoped: one migrator at a time
RUN_LOCK = (NAMESPACE, 3)  # session-scoped: shared by every `run`; exclusive for rebuilding projections
NODE_LOCK_NAMESPACE = NAMESPACE + 1  # session-scoped, keyed by hashtext(SIKKA_NODE_ID): one `run` per node id
