-- +goose Up
-- The engines running on this database, one row each: a node writes its
-- row when it starts and every heartbeat, and deletes it when it stops
-- cleanly. The nodes whose heartbeat is recent share every destination's
-- rate and connection limits equally; a node that died stops counting
-- once its heartbeat is old.
CREATE TABLE nodes (
    id           TEXT PRIMARY KEY,
    started_at   TIMESTAMP NOT NULL,
    heartbeat_at TIMESTAMP NOT NULL
);

-- +goose Down
DROP TABLE nodes;
