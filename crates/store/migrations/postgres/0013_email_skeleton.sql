-- What each address looks like (Unicode TS #39 skeleton): a sign-up whose address looks like an existing
-- account's is refused. Filled for older accounts by the service at start (it needs the Unicode tables).
ALTER TABLE users ADD COLUMN email_skeleton TEXT;
CREATE INDEX users_email_skeleton_idx ON users (email_skeleton);
