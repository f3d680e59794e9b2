-- What the AI said about each ticket, the ticket's sentence embedding (computed once), and when a person
-- confirmed its labels (resolved it, or corrected category/priority/skills): those tickets are what the
-- engine learns from. Trained model state is kept so a restart does not lose it.

ALTER TABLE tickets ADD COLUMN embedding BYTEA;
ALTER TABLE tickets ADD COLUMN ai_triage JSONB;
ALTER TABLE tickets ADD COLUMN triaged_at TIMESTAMPTZ;
ALTER TABLE tickets ADD COLUMN labelled_at TIMESTAMPTZ;
CREATE INDEX tickets_labelled_idx ON tickets (labelled_at) WHERE labelled_at IS NOT NULL;

CREATE TABLE ai_models (
    name       TEXT PRIMARY KEY,
    version    BIGINT NOT NULL,
    n_labels   BIGINT NOT NULL,
    trained_at TIMESTAMPTZ NOT NULL,
    state      BYTEA NOT NULL
);
