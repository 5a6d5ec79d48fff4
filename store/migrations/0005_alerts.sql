-- alerts: the alerts that hold (interface section 4, `GET /alerts`), one row per alert, kept by
-- the monitor of the node that raised it (actors.monitoring.monitor), so an alert's `since`
-- survives a restart: a node reads its own rows at start and carries on with them (an alert
-- whose condition is gone clears 2 minutes later, as any other). `office_id` is '' for a global
-- alert. The row is written at onset and deleted at clearing; the message is the onset's.
CREATE TABLE alerts (
    node_id       text        NOT NULL,
    kind          text        NOT NULL,
    office_id     text        NOT NULL DEFAULT '',
    severity      text        NOT NULL,
    message       text        NOT NULL,
    practice_name text        NOT NULL DEFAULT '',
    since         timestamptz NOT NULL,
    PRIMARY KEY (node_id, kind, office_id)
);
