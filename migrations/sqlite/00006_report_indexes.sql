-- +goose Up
-- The reports aggregate a campaign's rows; these indexes cover those
-- queries so they read index pages only, never the rows themselves.
-- Deliveries by provider: recipient domain and MX host roll up to a
-- provider, with the status and attempts the rates need.
CREATE INDEX deliveries_report_idx ON deliveries(campaign_id, domain, mx_host, status, attempts);
-- The hourly opens-and-clicks chart of a campaign.
CREATE INDEX events_timeline_idx ON events(campaign_id, kind, created_at, machine);
-- Bounces and complaints of the last days (deliverability report).
CREATE INDEX bounces_created_idx ON bounces(created_at, kind);

-- +goose Down
DROP INDEX bounces_created_idx;
DROP INDEX events_timeline_idx;
DROP INDEX deliveries_report_idx;
