-- +goose Up
-- Outgoing webhooks: endpoints an admin registered, the events each one
-- receives (comma-separated names), and the secret its deliveries are
-- signed with (kept in clear: signing needs it, as the receiver does).
CREATE TABLE webhooks (
    id              BIGSERIAL PRIMARY KEY,
    url             TEXT NOT NULL,
    events          TEXT NOT NULL,
    secret          TEXT NOT NULL,
    enabled         BOOLEAN NOT NULL DEFAULT TRUE,
    disabled_reason TEXT NOT NULL DEFAULT '',
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);

-- The durable outbox: one row per (webhook, event), written by the feed
-- job from the tables Herald records events in. event_id is the
-- idempotency key receivers see; the unique index makes a repeated feed
-- harmless. subscriber_id names whom the event is about, for erasure.
-- A row is leased to one node while it is being posted.
CREATE TABLE webhook_deliveries (
    id              BIGSERIAL PRIMARY KEY,
    webhook_id      BIGINT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    event_id        TEXT NOT NULL,
    subscriber_id   BIGINT,
    event           TEXT NOT NULL,
    payload         TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    lease_owner     TEXT NOT NULL DEFAULT '',
    lease_until     TIMESTAMPTZ,
    last_code       INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT NOT NULL DEFAULT '',
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX webhook_deliveries_event_idx ON webhook_deliveries(webhook_id, event_id);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries(status, next_attempt_at);
-- Erasure deletes the events about a subscriber (no foreign key: the
-- event outlives a deleted subscriber until it is sent).
CREATE INDEX webhook_deliveries_subscriber_idx ON webhook_deliveries(subscriber_id);

-- Every POST made, for the delivery log in the dashboard.
CREATE TABLE webhook_attempts (
    id          BIGSERIAL PRIMARY KEY,
    delivery_id BIGINT NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
    webhook_id  BIGINT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    attempt     INTEGER NOT NULL,
    status_code INTEGER NOT NULL DEFAULT 0,
    error       TEXT NOT NULL DEFAULT '',
    duration_ms INTEGER NOT NULL DEFAULT 0,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX webhook_attempts_webhook_idx ON webhook_attempts(webhook_id, id);
CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts(delivery_id);

-- Where the feed job stopped reading each source table: the last id (and
-- for deliveries, ordered by the time they were sent, that time too).
CREATE TABLE webhook_cursors (
    source  TEXT PRIMARY KEY,
    last_id BIGINT NOT NULL DEFAULT 0,
    last_at TIMESTAMPTZ
);

-- +goose Down
DROP TABLE webhook_cursors;
DROP TABLE webhook_attempts;
DROP TABLE webhook_deliveries;
DROP TABLE webhooks;
