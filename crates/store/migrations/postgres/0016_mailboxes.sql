-- Each IMAP mailbox the desk reads: how far it has read (UIDVALIDITY and the highest UID stored), and its
-- health for operators (last poll, last success, last error, counts).
CREATE TABLE mailboxes (
    name             TEXT PRIMARY KEY,
    uid_validity     BIGINT,
    last_uid         BIGINT,
    fetched          BIGINT NOT NULL DEFAULT 0,
    last_poll_at     TIMESTAMPTZ,
    last_success_at  TIMESTAMPTZ,
    last_error       TEXT,
    last_error_at    TIMESTAMPTZ,
    updated_at       TIMESTAMPTZ NOT NULL
);

-- A message over the size limit is kept as its header only; this is the size it had.
ALTER TABLE inbound_messages ADD COLUMN oversize BIGINT;
