-- A moderator's verdict on one suggested past ticket for one ticket: helpful or not (the latest verdict counts).
CREATE TABLE suggestion_feedback (
    ticket_id        BLOB NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    suggested_number INTEGER NOT NULL,
    user_id          BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    helpful          BOOLEAN NOT NULL,
    created_at       TEXT NOT NULL,
    PRIMARY KEY (ticket_id, suggested_number, user_id)
);
CREATE INDEX suggestion_feedback_created_idx ON suggestion_feedback (created_at);
