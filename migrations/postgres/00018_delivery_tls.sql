-- +goose Up
-- How the last attempt of each delivery crossed the network, as one small
-- integer (models.TLSCode): 0 not recorded, 1 plain text, 10 + minor
-- version for TLS 1.x without a verified certificate, 20 + minor with one.
-- Adding a column with a constant default rewrites no row.
ALTER TABLE deliveries ADD COLUMN tls SMALLINT NOT NULL DEFAULT 0;
-- The per-provider report reads the TLS state beside status and attempts;
-- carrying it in the covering index keeps that report an index-only scan.
-- Every outcome rewrites the row's index entries anyway (status is in the
-- key), so the extra column costs the hot path nothing more.
DROP INDEX deliveries_report_idx;
CREATE INDEX deliveries_report_idx ON deliveries(campaign_id, domain, mx_host, status, attempts) INCLUDE (tls);

-- +goose Down
DROP INDEX deliveries_report_idx;
CREATE INDEX deliveries_report_idx ON deliveries(campaign_id, domain, mx_host, status, attempts);
ALTER TABLE deliveries DROP COLUMN tls;
