-- A language model's summary of a long ticket conversation (the extractive one is made when it is read):
-- `turns` counts the comments it covered, so a conversation that grew since shows the extractive summary until
-- the model's catches up. `summary`: `{problem, tried, asked, asked_by}`.
CREATE TABLE ticket_summaries (
    ticket_id   UUID PRIMARY KEY REFERENCES tickets (id) ON DELETE CASCADE,
    turns       INTEGER NOT NULL,
    summary     JSONB NOT NULL,
    engine      TEXT NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
