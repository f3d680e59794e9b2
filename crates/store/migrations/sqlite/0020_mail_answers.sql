-- Desk settings an admin changes while the desk runs (every process reads them here): a name and its JSON value.
CREATE TABLE desk_settings (
    name        TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    updated_by  BLOB REFERENCES users (id) ON DELETE SET NULL,
    updated_at  TEXT NOT NULL
);

-- The public articles mailed as the answer to a ticket filed by e-mail (at most one answer per ticket).
-- `token_hash`: the SHA-256 of the token in the mail's "this solved it" link (which needs no sign-in);
-- `solved_at`/`solved_article`: when the customer said (by the link, or by replying "solved") which answered it.
CREATE TABLE mail_answers (
    ticket_id       BLOB PRIMARY KEY REFERENCES tickets (id) ON DELETE CASCADE,
    articles        TEXT NOT NULL,
    token_hash      TEXT NOT NULL UNIQUE,
    sent_at         TEXT NOT NULL,
    solved_at       TEXT,
    solved_article  INTEGER REFERENCES articles (id) ON DELETE SET NULL
);
CREATE INDEX mail_answers_sent_idx ON mail_answers (sent_at);
