-- +goose Up
-- jobs records when each periodic job (the daily retention run) is next
-- due, so that with several nodes only one of them runs it.
CREATE TABLE jobs (
    name        TEXT PRIMARY KEY,
    next_run_at TIMESTAMPTZ NOT NULL
);

-- +goose Down
DROP TABLE jobs;
