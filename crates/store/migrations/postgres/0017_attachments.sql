-- Files on tickets and comments. Contents are stored once per sha256 (a file sent twice, or to two tickets,
-- takes its space once) in the database itself, so a copy of the SQLite file is a whole backup.
CREATE TABLE blobs (
    sha256      TEXT PRIMARY KEY,
    size        BIGINT NOT NULL,
    data        BYTEA NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);

-- `comment_id` NULL: a file of the ticket itself (sent with it). `internal`: a file of an internal note,
-- which only staff may see. `content_id`: the `cid:` an e-mail's HTML showed it under.
CREATE TABLE attachments (
    id            UUID PRIMARY KEY,
    ticket_id     UUID NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    comment_id    BIGINT REFERENCES comments (id) ON DELETE CASCADE,
    internal      BOOLEAN NOT NULL DEFAULT FALSE,
    file_name     TEXT NOT NULL,
    content_type  TEXT NOT NULL,
    size          BIGINT NOT NULL,
    sha256        TEXT NOT NULL REFERENCES blobs (sha256),
    content_id    TEXT,
    uploaded_by   UUID REFERENCES users (id),
    created_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX attachments_ticket_idx ON attachments (ticket_id, created_at);
CREATE INDEX attachments_sha256_idx ON attachments (sha256);
