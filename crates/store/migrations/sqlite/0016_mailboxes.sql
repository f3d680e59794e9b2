-- Each IMAP mailbox the desk reads: how far it has read (UIDVALIDITY and the highest UID stored), and its
-- health for operators (last poll, last success, last error, counts).
CREATE TABLE mailboxes (
    name             TEXT PRIMARY KEY,
    uid_validity     INTEGER,
    last_uid         INTEGER,
    fetched          INTEGER NOT NULL DEFAULT 0,
    last_poll_at     TEXT,
    last_success_at  TEXT,
    last_error       TEXT,
    last_error_at    TEXT,
    updated_at       TEXT NOT NULL
);

-- A message over the size limit is kept as its header only; this is the size it had.
ALTER TABLE inbound_messages ADD COLUMN oversize INTEGER;
