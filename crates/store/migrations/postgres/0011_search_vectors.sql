-- Cross-language similarity: a ticket's multilingual sentence vector (multilingual-e5-small, little-endian f32s)
-- and the language it is written in (ISO 639-1, when its words tell), for the vector index; `embedding` stays
-- the English model's vector that triage learns from.
ALTER TABLE tickets ADD COLUMN search_vector BYTEA;
ALTER TABLE tickets ADD COLUMN language TEXT;
