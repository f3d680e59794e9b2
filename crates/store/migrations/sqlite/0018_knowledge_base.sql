-- The knowledge base. Articles are written in Markdown (rendered and sanitised when shown); `revision` counts
-- edits, each kept in `article_revisions` with who and when. `embedding` is the multilingual vector of the
-- title and body (self-service and help-centre search); `source_tickets` the resolved tickets (numbers) a
-- drafted article cites. Counters: page views and "did this help?" votes.
CREATE TABLE articles (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    title           TEXT NOT NULL,
    body            TEXT NOT NULL,
    category        TEXT,
    tags            TEXT NOT NULL DEFAULT '[]',
    language        TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'draft',
    audience        TEXT NOT NULL DEFAULT 'public',
    revision        INTEGER NOT NULL DEFAULT 1,
    embedding       BLOB,
    source_tickets  TEXT NOT NULL DEFAULT '[]',
    created_by      BLOB REFERENCES users (id),
    updated_by      BLOB REFERENCES users (id),
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    published_at    TEXT,
    views           INTEGER NOT NULL DEFAULT 0,
    helpful         INTEGER NOT NULL DEFAULT 0,
    not_helpful     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX articles_updated_idx ON articles (updated_at, id);
CREATE INDEX articles_listed_idx ON articles (state, audience, updated_at);

-- Lexical search: FTS5 over titles and bodies (external content), kept in step by triggers.
CREATE VIRTUAL TABLE article_search USING fts5(
    title, body, content = 'articles', content_rowid = 'id', tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER articles_search_insert AFTER INSERT ON articles BEGIN
    INSERT INTO article_search (rowid, title, body) VALUES (new.id, new.title, new.body);
END;
CREATE TRIGGER articles_search_delete AFTER DELETE ON articles BEGIN
    INSERT INTO article_search (article_search, rowid, title, body) VALUES ('delete', old.id, old.title, old.body);
END;
CREATE TRIGGER articles_search_update AFTER UPDATE OF title, body ON articles BEGIN
    INSERT INTO article_search (article_search, rowid, title, body) VALUES ('delete', old.id, old.title, old.body);
    INSERT INTO article_search (rowid, title, body) VALUES (new.id, new.title, new.body);
END;

CREATE TABLE article_revisions (
    article_id  INTEGER NOT NULL REFERENCES articles (id) ON DELETE CASCADE,
    revision    INTEGER NOT NULL,
    title       TEXT NOT NULL,
    body        TEXT NOT NULL,
    edited_by   BLOB REFERENCES users (id),
    edited_at   TEXT NOT NULL,
    PRIMARY KEY (article_id, revision)
);

-- One vote per voter and article (a voter: a signed-in account, or a hash of an anonymous visitor's address);
-- voting again replaces the vote.
CREATE TABLE article_votes (
    article_id  INTEGER NOT NULL REFERENCES articles (id) ON DELETE CASCADE,
    voter       TEXT NOT NULL,
    helpful     BOOLEAN NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (article_id, voter)
);

-- "This solved it": a question answered by an article instead of a ticket, once per customer and article.
CREATE TABLE deflections (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    article_id  INTEGER NOT NULL REFERENCES articles (id) ON DELETE CASCADE,
    user_id     BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  TEXT NOT NULL,
    UNIQUE (user_id, article_id)
);
CREATE INDEX deflections_created_idx ON deflections (created_at);

-- The articles a customer was shown before filing a ticket anyway.
CREATE TABLE ticket_articles (
    ticket_id   BLOB NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    article_id  INTEGER NOT NULL REFERENCES articles (id) ON DELETE CASCADE,
    PRIMARY KEY (ticket_id, article_id)
);
