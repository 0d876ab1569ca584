-- +goose Up
-- The per-provider report's covering index changed with every claim and
-- every outcome (status, MX host and attempts are in its key): a third of
-- the database's work per message. BenchmarkDeliveryLifecycle: 43.5 →
-- 36.2 µs a delivery. The report now reads the campaign's rows themselves
-- (BenchmarkCampaignReport: 222 → 420 ms for 200,000 deliveries).
-- PostgreSQL keeps the index.
DROP INDEX deliveries_report_idx;

-- +goose Down
CREATE INDEX deliveries_report_idx ON deliveries(campaign_id, domain, mx_host, status, attempts);
