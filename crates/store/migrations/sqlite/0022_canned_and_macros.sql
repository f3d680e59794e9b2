-- The team's own workflow, first part. Tickets carry tags (a JSON list, like skills). A history row may say
-- which macro or rule made the change (`via`: `{"kind": "macro", "id": 3, "name": "Refund sent"}`).
ALTER TABLE tickets ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';
ALTER TABLE ticket_events ADD COLUMN via TEXT;

-- Canned responses: reply texts with {{ placeholders }}, shared (owner_id NULL) or one person's own. A name is
-- unique among the shared ones and among each person's own.
CREATE TABLE canned_responses (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL,
    body        TEXT NOT NULL,
    owner_id    BLOB REFERENCES users (id) ON DELETE CASCADE,
    created_by  BLOB REFERENCES users (id) ON DELETE SET NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE UNIQUE INDEX canned_responses_name_key ON canned_responses (coalesce(owner_id, x''), lower(name));

-- Which canned response a reply was written from: what "used on similar tickets" counts.
CREATE TABLE canned_uses (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    canned_id   INTEGER NOT NULL REFERENCES canned_responses (id) ON DELETE CASCADE,
    ticket_id   BLOB NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    comment_id  INTEGER REFERENCES comments (id) ON DELETE SET NULL,
    user_id     BLOB REFERENCES users (id) ON DELETE SET NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX canned_uses_ticket_idx ON canned_uses (ticket_id, canned_id);
CREATE INDEX canned_uses_canned_idx ON canned_uses (canned_id);

-- Macros: named lists of actions (JSON, as the API writes them) that staff apply to a ticket in one step.
CREATE TABLE macros (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    actions     TEXT NOT NULL,
    created_by  BLOB REFERENCES users (id) ON DELETE SET NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE UNIQUE INDEX macros_name_key ON macros (lower(name));
