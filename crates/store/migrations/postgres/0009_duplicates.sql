-- Duplicates: at triage a ticket that reads like an open one is flagged with that ticket's number and the
-- similarity; a moderator may then merge it into the other (it is closed, `merged_into` names the survivor).
ALTER TABLE tickets ADD COLUMN duplicate_of BIGINT;
ALTER TABLE tickets ADD COLUMN duplicate_score REAL;
ALTER TABLE tickets ADD COLUMN merged_into BIGINT;
