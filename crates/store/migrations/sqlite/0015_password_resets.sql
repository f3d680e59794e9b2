-- Password reset links: only the token's hash is stored; a link works once, until it expires.
CREATE TABLE password_resets (
    token_hash  TEXT PRIMARY KEY,
    user_id     BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at  TEXT NOT NULL,
    used_at     TEXT,
    created_at  TEXT NOT NULL
);
CREATE INDEX password_resets_user_idx ON password_resets (user_id);
