-- Articles the knowledge base proposes: one per repeated problem found among recently resolved tickets (the
-- `kb.propose` job), ranked by `score` (how often and how recently it recurs). `tickets` are the cluster's ticket
-- numbers, the most typical first; `cited` those the draft's text was taken from. The draft (title, body) is
-- written from their resolutions with personal data removed. A person accepts one (a draft article is written:
-- `article_id`) or dismisses it; the same problem is not proposed again after either. Each run replaces the open
-- proposals.
CREATE TABLE article_proposals (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    title           TEXT NOT NULL,
    body            TEXT NOT NULL,
    language        TEXT NOT NULL,
    category        TEXT,
    tickets         TEXT NOT NULL,
    cited           TEXT NOT NULL,
    ticket_count    INTEGER NOT NULL,
    recent_count    INTEGER NOT NULL,
    score           REAL NOT NULL,
    last_resolved   TEXT NOT NULL,
    engine          TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'open',
    article_id      BIGINT REFERENCES articles (id) ON DELETE SET NULL,
    decided_by      BLOB REFERENCES users (id) ON DELETE SET NULL,
    created_at      TEXT NOT NULL,
    decided_at      TEXT
);
CREATE INDEX article_proposals_state_idx ON article_proposals (state, score);

-- The proposal job reads the most recently resolved tickets.
CREATE INDEX tickets_resolved_at_idx ON tickets (resolved_at);
