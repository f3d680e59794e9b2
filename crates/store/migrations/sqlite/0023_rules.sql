-- Rules: ordered (`position`), each enabled or not, waiting for one event (`event`, also in `spec.when`);
-- `spec` is the rule as the API wrote it. `last_run_at`: when a scheduled rule last scanned.
CREATE TABLE rules (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL,
    position    INTEGER NOT NULL,
    enabled     BOOLEAN NOT NULL DEFAULT TRUE,
    event       TEXT NOT NULL,
    spec        TEXT NOT NULL,
    created_by  BLOB REFERENCES users (id) ON DELETE SET NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    last_run_at TEXT
);
CREATE UNIQUE INDEX rules_name_key ON rules (lower(name));
CREATE INDEX rules_event_idx ON rules (event, enabled, position);

-- Each time a rule acted on a ticket, once per event (`event_key`: the event's own key; a scan's is the
-- ticket's `updated_at` it saw, in `version` too), so a rule never fires twice for the same event and ticket.
CREATE TABLE rule_firings (
    rule_id     INTEGER NOT NULL REFERENCES rules (id) ON DELETE CASCADE,
    ticket_id   BLOB NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    event_key   TEXT NOT NULL,
    version     TEXT,
    fired_at    TEXT NOT NULL,
    PRIMARY KEY (rule_id, ticket_id, event_key)
);
CREATE INDEX rule_firings_ticket_idx ON rule_firings (ticket_id);

-- What scheduled rules scan: active tickets by how long since they changed, or since they were filed.
CREATE INDEX tickets_status_updated_idx ON tickets (status, updated_at);
CREATE INDEX tickets_status_created_idx ON tickets (status, created_at);
