-- +goose Up
-- A periodic job's row is its lease: the node that takes a due run
-- (owner) holds it until next_run_at, which it moves to the next period
-- when the run succeeds. started_at and finished_at say when the last run
-- began and ended, so an operator can see which node ran what.
ALTER TABLE jobs ADD COLUMN owner       TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN started_at  DATETIME;
ALTER TABLE jobs ADD COLUMN finished_at DATETIME;

-- +goose Down
ALTER TABLE jobs DROP COLUMN finished_at;
ALTER TABLE jobs DROP COLUMN started_at;
ALTER TABLE jobs DROP COLUMN owner;
