-- Files on tickets and comments. Contents are stored once per sha256 (a file sent twice, or to two tickets,
-- takes its space once) in the database itself, so a copy of the SQLite file is a whole backup.
CREATE TABLE blobs (
    sha256      TEXT PRIMARY KEY,
    size        INTEGER NOT NULL,
    data        BLOB NOT NULL,
    created_at  TEXT NOT NULL
);

-- `comment_id` NULL: a file of the ticket itself (sent with it). `internal`: a file of an internal note,
-- which only staff may see. `content_id`: the `cid:` an e-mail's HTML showed it under.
CREATE TABLE attachments (
    id            BLOB PRIMARY KEY,
    ticket_id     BLOB NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    comment_id    INTEGER REFERENCES comments (id) ON DELETE CASCADE,
    internal      BOOLEAN NOT NULL DEFAULT FALSE,
    file_name     TEXT NOT NULL,
    content_type  TEXT NOT NULL,
    size          INTEGER NOT NULL,
    sha256        TEXT NOT NULL REFERENCES blobs (sha256),
    content_id    TEXT,
    uploaded_by   BLOB REFERENCES users (id),
    created_at    TEXT NOT NULL
);
CREATE INDEX attachments_ticket_idx ON attachments (ticket_id, created_at);
CREATE INDEX attachments_sha256_idx ON attachments (sha256);
