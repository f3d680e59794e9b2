-- Tickets brought in by `smart-ticket import` carry a key (a hash of their text) so that importing the same
-- file twice adds nothing.
ALTER TABLE tickets ADD COLUMN import_key TEXT;
CREATE UNIQUE INDEX tickets_import_key_idx ON tickets (import_key) WHERE import_key IS NOT NULL;
