-- +goose Up
-- A/B tests. A campaign with two to five variants and a test share sends
-- each variant to an even part of a random test share of its audience;
-- the rest is materialised but held (queued, due far in the future) until
-- a winner is chosen, then released with the winner's variant. An empty
-- variant field means the campaign's own.
CREATE TABLE campaign_variants (
    id          BIGSERIAL PRIMARY KEY,
    campaign_id BIGINT NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    idx         INTEGER NOT NULL,
    label       TEXT NOT NULL DEFAULT '',
    subject     TEXT NOT NULL DEFAULT '',
    from_name   TEXT NOT NULL DEFAULT '',
    preheader   TEXT NOT NULL DEFAULT '',
    html        TEXT NOT NULL DEFAULT '',
    UNIQUE (campaign_id, idx)
);
-- ab_share: percent of the audience in the test (0: no test).
-- ab_metric: opens | clicks | cto. ab_wait_seconds: from the test's
-- release to the decision. ab_manual: the marketer picks.
-- ab_test_at: when the test share was released; ab_winner and
-- ab_decided_*: the decision; ab_result: the figures it was made on (JSON).
ALTER TABLE campaigns ADD COLUMN ab_share        INTEGER NOT NULL DEFAULT 0;
ALTER TABLE campaigns ADD COLUMN ab_metric       TEXT NOT NULL DEFAULT '';
ALTER TABLE campaigns ADD COLUMN ab_wait_seconds INTEGER NOT NULL DEFAULT 0;
ALTER TABLE campaigns ADD COLUMN ab_manual       BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE campaigns ADD COLUMN ab_test_at      TIMESTAMPTZ;
ALTER TABLE campaigns ADD COLUMN ab_winner       INTEGER;
ALTER TABLE campaigns ADD COLUMN ab_decided_at   TIMESTAMPTZ;
ALTER TABLE campaigns ADD COLUMN ab_decided_by   TEXT NOT NULL DEFAULT '';
ALTER TABLE campaigns ADD COLUMN ab_result       TEXT NOT NULL DEFAULT '';
-- The variant a delivery carries (campaign_variants.idx); NULL: none, or
-- held for the winner.
ALTER TABLE deliveries ADD COLUMN variant SMALLINT;

-- +goose Down
ALTER TABLE deliveries DROP COLUMN variant;
ALTER TABLE campaigns DROP COLUMN ab_result;
ALTER TABLE campaigns DROP COLUMN ab_decided_by;
ALTER TABLE campaigns DROP COLUMN ab_decided_at;
ALTER TABLE campaigns DROP COLUMN ab_winner;
ALTER TABLE campaigns DROP COLUMN ab_test_at;
ALTER TABLE campaigns DROP COLUMN ab_manual;
ALTER TABLE campaigns DROP COLUMN ab_wait_seconds;
ALTER TABLE campaigns DROP COLUMN ab_metric;
ALTER TABLE campaigns DROP COLUMN ab_share;
DROP TABLE campaign_variants;
