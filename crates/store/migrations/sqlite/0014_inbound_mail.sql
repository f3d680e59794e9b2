-- Mail received for the support address, kept as it came (raw bytes) before anything is derived from it.
-- `state`: stored (waiting to be turned into a ticket or reply), ingested, ignored (an auto-reply or a bounce),
-- rejected (could not be turned into one: `reason` says why; an admin may retry or dismiss it), dismissed.
CREATE TABLE inbound_messages (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    source        TEXT NOT NULL,
    uid_validity  INTEGER,
    uid           INTEGER,
    message_id    TEXT,
    -- The sender's address as the message gives it (lower case), for the per-sender limit against mail loops.
    sender        TEXT,
    raw           BLOB NOT NULL,
    state         TEXT NOT NULL DEFAULT 'stored'
                  CHECK (state IN ('stored', 'ingested', 'ignored', 'rejected', 'dismissed')),
    reason        TEXT,
    ticket_id     BLOB REFERENCES tickets (id),
    received_at   TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
-- One row per mailbox message (a fetch repeated after a crash adds nothing) and per Message-ID.
CREATE UNIQUE INDEX inbound_messages_uid_idx ON inbound_messages (source, uid_validity, uid) WHERE uid IS NOT NULL;
CREATE UNIQUE INDEX inbound_messages_message_id_idx ON inbound_messages (message_id) WHERE message_id IS NOT NULL;

CREATE INDEX inbound_messages_sender_idx ON inbound_messages (sender, received_at);

-- Every Message-ID we sent or received about a ticket: a message naming one in In-Reply-To or References
-- joins that ticket.
CREATE TABLE mail_threads (
    message_id  TEXT PRIMARY KEY,
    ticket_id   BLOB NOT NULL REFERENCES tickets (id),
    created_at  TEXT NOT NULL
);
CREATE INDEX mail_threads_ticket_idx ON mail_threads (ticket_id);
