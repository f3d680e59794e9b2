-- Search. Lexical: a generated tsvector of titles (weight A) and descriptions (B) with a GIN index; the
-- 'simple' configuration (no stemming) because tickets come in many languages. Semantic: each process keeps the
-- stored embeddings in memory and follows changes by `updated_at`, hence its index.
ALTER TABLE tickets ADD COLUMN search tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('simple', title), 'A') || setweight(to_tsvector('simple', description), 'B')
) STORED;
CREATE INDEX tickets_search_idx ON tickets USING GIN (search);
CREATE INDEX tickets_updated_idx ON tickets (updated_at);
-- Duplicate checks read the newest open tickets: an index of exactly those, newest first, so the check stops
-- after the ones it needs instead of sorting every open ticket (with a deep queue that cost a second per ticket).
CREATE INDEX tickets_open_number_idx ON tickets (number) WHERE status IN ('open', 'in_progress');
