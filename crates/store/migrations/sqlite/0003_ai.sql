-- What the AI said about each ticket, the ticket's sentence embedding (computed once), and when a person
-- confirmed its labels (resolved it, or corrected category/priority/skills): those tickets are what the
-- engine learns from. Trained model state is kept so a restart does not lose it.

ALTER TABLE tickets ADD COLUMN embedding BLOB;
ALTER TABLE tickets ADD COLUMN ai_triage TEXT;
ALTER TABLE tickets ADD COLUMN triaged_at TEXT;
ALTER TABLE tickets ADD COLUMN labelled_at TEXT;
CREATE INDEX tickets_labelled_idx ON tickets (labelled_at);

CREATE TABLE ai_models (
    name       TEXT PRIMARY KEY NOT NULL,
    version    INTEGER NOT NULL,
    n_labels   INTEGER NOT NULL,
    trained_at TEXT NOT NULL,
    state      BLOB NOT NULL
);
