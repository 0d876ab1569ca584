-- +goose Up
-- events is the append-only log of opens, clicks and one-click
-- unsubscribes, written in batches by the web tracker. It has no foreign
-- keys on purpose: a batch must never fail because a campaign or subscriber
-- was deleted while its events waited in memory. machine marks traffic that
-- no person caused (privacy-proxy prefetches, link scanners); reports count
-- it apart.
CREATE TABLE events (
    id            BIGSERIAL PRIMARY KEY,
    delivery_id   BIGINT NOT NULL,
    campaign_id   BIGINT,
    subscriber_id BIGINT,
    link_id       BIGINT,
    kind          TEXT NOT NULL CHECK (kind IN ('open', 'click', 'unsubscribe')),
    machine       BOOLEAN NOT NULL DEFAULT FALSE,
    ip            TEXT NOT NULL DEFAULT '',
    user_agent    TEXT NOT NULL DEFAULT '',
    created_at    TIMESTAMPTZ NOT NULL
);
-- Covers the campaign report (by kind, unique deliveries, human or not),
-- the per-link report and the scanner re-marking of one delivery's clicks.
CREATE INDEX events_campaign_idx ON events(campaign_id, kind, delivery_id, link_id, machine);
-- A subscriber's activity, and their erasure.
CREATE INDEX events_subscriber_idx ON events(subscriber_id, created_at);

-- +goose Down
DROP TABLE events;
