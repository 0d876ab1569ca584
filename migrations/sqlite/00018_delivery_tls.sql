-- +goose Up
-- How the last attempt of each delivery crossed the network, as one small
-- integer (models.TLSCode): 0 not recorded, 1 plain text, 10 + minor
-- version for TLS 1.x without a verified certificate, 20 + minor with one.
-- Adding a column with a constant default rewrites no row.
ALTER TABLE deliveries ADD COLUMN tls SMALLINT NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE deliveries DROP COLUMN tls;
