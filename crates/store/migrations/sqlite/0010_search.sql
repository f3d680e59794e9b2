-- Search. Lexical: an FTS5 index of titles and descriptions (external content: the text stays in `tickets`),
-- kept in step by triggers; unicode61 folds case and diacritics in every language. Semantic: each process keeps
-- the stored embeddings in memory and follows changes by `updated_at`, hence its index.
CREATE VIRTUAL TABLE ticket_search USING fts5(
    title, description, content = 'tickets', content_rowid = 'number', tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER tickets_search_insert AFTER INSERT ON tickets BEGIN
    INSERT INTO ticket_search (rowid, title, description) VALUES (new.number, new.title, new.description);
END;
CREATE TRIGGER tickets_search_delete AFTER DELETE ON tickets BEGIN
    INSERT INTO ticket_search (ticket_search, rowid, title, description)
        VALUES ('delete', old.number, old.title, old.description);
END;
CREATE TRIGGER tickets_search_update AFTER UPDATE OF title, description ON tickets BEGIN
    INSERT INTO ticket_search (ticket_search, rowid, title, description)
        VALUES ('delete', old.number, old.title, old.description);
    INSERT INTO ticket_search (rowid, title, description) VALUES (new.number, new.title, new.description);
END;
INSERT INTO ticket_search (ticket_search) VALUES ('rebuild');
CREATE INDEX tickets_updated_idx ON tickets (updated_at);
-- Duplicate checks read the newest open tickets: an index of exactly those, newest first, so the check stops
-- after the ones it needs instead of sorting every open ticket (with a deep queue that cost a second per ticket).
CREATE INDEX tickets_open_number_idx ON tickets (number) WHERE status IN ('open', 'in_progress');
