-- +goose Up
-- An import's uploaded file lives in the database, in chunks, so whichever
-- node takes the import can read it; the chunks go when the import ends.
-- options is the column mapping the marketer chose (JSON), set when the
-- import is started: from then on any node may run it. The node running
-- it holds lease_owner until lease_until and renews it; a node that dies
-- lets the lease run out and another resumes after the last batch it
-- committed (read_bytes).
ALTER TABLE imports ADD COLUMN options     TEXT NOT NULL DEFAULT '';
ALTER TABLE imports ADD COLUMN lease_owner TEXT NOT NULL DEFAULT '';
ALTER TABLE imports ADD COLUMN lease_until DATETIME;
CREATE INDEX imports_pending_idx ON imports(status) WHERE status IN ('queued', 'running');

CREATE TABLE import_chunks (
    import_id INTEGER NOT NULL REFERENCES imports(id) ON DELETE CASCADE,
    seq       INTEGER NOT NULL,
    data      BLOB NOT NULL,
    PRIMARY KEY (import_id, seq)
);

-- +goose Down
DROP TABLE import_chunks;
DROP INDEX imports_pending_idx;
ALTER TABLE imports DROP COLUMN lease_until;
ALTER TABLE imports DROP COLUMN lease_owner;
ALTER TABLE imports DROP COLUMN options;
