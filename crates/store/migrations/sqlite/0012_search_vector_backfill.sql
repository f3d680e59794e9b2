-- Tickets still without a multilingual vector (filed before the model was installed), found without a scan.
CREATE INDEX tickets_missing_search_vector_idx ON tickets (number) WHERE search_vector IS NULL;
