-- +goose Up
-- Signatures (SendGrid) and tokens (Mailgun) of webhook posts accepted in
-- the last minutes: a post seen before is a replay and is refused. Shared
-- through the database so a replay to another node is refused too; rows
-- older than the accepted timestamp age are deleted as new ones arrive.
CREATE TABLE webhook_seen (
    key     TEXT PRIMARY KEY,
    seen_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX webhook_seen_at_idx ON webhook_seen(seen_at);

-- +goose Down
DROP TABLE webhook_seen;
