-- The queue's two claim paths (ready jobs by run_at; jobs whose lease ran out by locked_until) each walk
-- their own index in order, however many finished jobs the table holds.
CREATE INDEX jobs_queued_idx ON jobs (run_at, id) WHERE state = 'queued';
CREATE INDEX jobs_leased_idx ON jobs (locked_until, id) WHERE state = 'running';
