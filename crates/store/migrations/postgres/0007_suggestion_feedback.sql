-- A moderator's verdict on one suggested past ticket for one ticket: helpful or not (the latest verdict counts).
CREATE TABLE suggestion_feedback (
    ticket_id        UUID NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    suggested_number BIGINT NOT NULL,
    user_id          UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    helpful          BOOLEAN NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (ticket_id, suggested_number, user_id)
);
CREATE INDEX suggestion_feedback_created_idx ON suggestion_feedback (created_at);
