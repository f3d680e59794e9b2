-- Routing weighs each moderator's open tickets by priority on every assignment: an index of exactly those rows
-- keeps that count cheap when thousands of tickets are open (it was a full scan under the routing lock).
CREATE INDEX tickets_open_load_idx ON tickets (assigned_to, priority)
    WHERE assigned_to IS NOT NULL AND status IN ('open', 'in_progress');
