-- Routing: moderators can be away or at capacity; ties go to whoever was assigned least recently; each
-- ticket keeps why it went to its assignee. SLA: which deadline an escalation was sent for (once per breach).
-- Mail: every notification sent, by idempotency key, so a retried job never sends it twice.

ALTER TABLE users ADD COLUMN away BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE users ADD COLUMN capacity INTEGER NOT NULL DEFAULT 10;
ALTER TABLE users ADD COLUMN last_assigned_at TEXT;

ALTER TABLE tickets ADD COLUMN routing_reason TEXT;
ALTER TABLE tickets ADD COLUMN sla_escalated_for TEXT;
CREATE INDEX tickets_open_deadline_idx ON tickets (deadline) WHERE status = 'open';

CREATE TABLE emails (
    key       TEXT PRIMARY KEY NOT NULL,
    recipient TEXT NOT NULL,
    subject   TEXT NOT NULL,
    transport TEXT NOT NULL,
    sent_at   TEXT NOT NULL
);
