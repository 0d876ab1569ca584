-- +goose Up
CREATE TABLE templates (
    id         BIGSERIAL PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('campaign', 'transactional')),
    name       TEXT NOT NULL,
    subject    TEXT NOT NULL DEFAULT '',
    html       TEXT NOT NULL DEFAULT '',
    text       TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX templates_kind_name_idx ON templates(kind, name);

-- Private keys are stored sealed with AES-GCM under a key derived from the
-- server secret; the public halves are kept in clear for the DNS records.
CREATE TABLE sending_domains (
    id                 BIGSERIAL PRIMARY KEY,
    domain             TEXT NOT NULL UNIQUE,
    selector           TEXT NOT NULL,
    rsa_private        TEXT NOT NULL DEFAULT '',
    rsa_public         TEXT NOT NULL DEFAULT '',
    ed25519_selector   TEXT NOT NULL DEFAULT '',
    ed25519_private    TEXT NOT NULL DEFAULT '',
    ed25519_public     TEXT NOT NULL DEFAULT '',
    return_path_domain TEXT NOT NULL,
    dns_checked_at     TIMESTAMPTZ,
    dns_ok             BOOLEAN NOT NULL DEFAULT FALSE,
    dns_report         TEXT NOT NULL DEFAULT '',
    created_at         TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL
);

CREATE TABLE ip_pools (
    id         BIGSERIAL PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    strategy   TEXT NOT NULL DEFAULT 'round_robin' CHECK (strategy IN ('round_robin', 'weighted')),
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE sending_ips (
    id           BIGSERIAL PRIMARY KEY,
    pool_id BIGINT NOT NULL REFERENCES ip_pools(id) ON DELETE CASCADE,
    address      TEXT NOT NULL,
    helo         TEXT NOT NULL DEFAULT '',
    weight       INTEGER NOT NULL DEFAULT 1,
    per_second   DOUBLE PRECISION NOT NULL DEFAULT 0,
    warmup_start TIMESTAMPTZ,
    active       BOOLEAN NOT NULL DEFAULT TRUE,
    created_at   TIMESTAMPTZ NOT NULL,
    UNIQUE (pool_id, address)
);

-- domain_rules shape traffic per destination. A rule matches a recipient
-- domain exactly or a primary MX host by suffix; the first match by position
-- wins, and the default rule covers everything else (each unmatched MX host
-- gets its own buckets under it). Zero limits mean unlimited.
CREATE TABLE domain_rules (
    id                  BIGSERIAL PRIMARY KEY,
    name                TEXT NOT NULL UNIQUE,
    domains             TEXT NOT NULL DEFAULT '',
    mx_suffixes         TEXT NOT NULL DEFAULT '',
    per_second          DOUBLE PRECISION NOT NULL DEFAULT 0,
    per_minute          INTEGER NOT NULL DEFAULT 0,
    per_hour            INTEGER NOT NULL DEFAULT 0,
    max_connections     INTEGER NOT NULL DEFAULT 0,
    max_per_connection  INTEGER NOT NULL DEFAULT 0,
    backoff_min_seconds INTEGER NOT NULL DEFAULT 60,
    backoff_max_seconds INTEGER NOT NULL DEFAULT 3600,
    position            INTEGER NOT NULL DEFAULT 0,
    is_default          BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at          TIMESTAMPTZ NOT NULL
);
INSERT INTO domain_rules (name, domains, mx_suffixes, per_second, per_minute, per_hour, max_connections, max_per_connection, backoff_min_seconds, backoff_max_seconds, position, is_default, updated_at) VALUES
    ('google', 'gmail.com googlemail.com', 'google.com googlemail.com', 20, 600, 20000, 10, 100, 300, 3600, 10, FALSE, CURRENT_TIMESTAMP),
    ('yahoo', 'yahoo.com ymail.com rocketmail.com aol.com yahoo.co.uk yahoo.fr', 'yahoodns.net', 10, 300, 10000, 5, 50, 600, 7200, 20, FALSE, CURRENT_TIMESTAMP),
    ('microsoft', 'outlook.com hotmail.com live.com msn.com hotmail.co.uk hotmail.fr', 'outlook.com protection.outlook.com', 10, 300, 10000, 5, 50, 600, 7200, 30, FALSE, CURRENT_TIMESTAMP),
    ('apple', 'icloud.com me.com mac.com', 'icloud.com apple.com', 10, 300, 10000, 5, 50, 300, 3600, 40, FALSE, CURRENT_TIMESTAMP),
    ('default', '', '', 5, 200, 5000, 3, 100, 60, 3600, 1000, TRUE, CURRENT_TIMESTAMP);

CREATE TABLE campaigns (
    id                 BIGSERIAL PRIMARY KEY,
    name               TEXT NOT NULL,
    template_id BIGINT REFERENCES templates(id) ON DELETE SET NULL,
    subject            TEXT NOT NULL DEFAULT '',
    from_name          TEXT NOT NULL DEFAULT '',
    from_email         TEXT NOT NULL,
    reply_to           TEXT NOT NULL DEFAULT '',
    sending_domain_id BIGINT REFERENCES sending_domains(id) ON DELETE SET NULL,
    ip_pool_id BIGINT REFERENCES ip_pools(id) ON DELETE SET NULL,
    transport          TEXT NOT NULL DEFAULT '',
    track_opens        BOOLEAN NOT NULL DEFAULT TRUE,
    track_clicks       BOOLEAN NOT NULL DEFAULT TRUE,
    utm                BOOLEAN NOT NULL DEFAULT FALSE,
    status             TEXT NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'scheduled', 'running', 'paused', 'finished', 'cancelled')),
    scheduled_at       TIMESTAMPTZ,
    started_at         TIMESTAMPTZ,
    finished_at        TIMESTAMPTZ,
    -- materialisation is resumable: the last subscriber id whose deliveries
    -- exist, and when the last batch was written.
    materialize_cursor BIGINT NOT NULL DEFAULT 0,
    materialized_at    TIMESTAMPTZ,
    -- counters are kept by the store in the same transactions that move
    -- deliveries between states, so progress is one row read.
    queued             BIGINT NOT NULL DEFAULT 0,
    sending            BIGINT NOT NULL DEFAULT 0,
    sent               BIGINT NOT NULL DEFAULT 0,
    deferred           BIGINT NOT NULL DEFAULT 0,
    bounced            BIGINT NOT NULL DEFAULT 0,
    failed             BIGINT NOT NULL DEFAULT 0,
    suppressed         BIGINT NOT NULL DEFAULT 0,
    created_at         TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL
);
CREATE INDEX campaigns_status_idx ON campaigns(status);

CREATE TABLE campaign_lists (
    campaign_id BIGINT NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    list_id BIGINT NOT NULL REFERENCES lists(id) ON DELETE CASCADE,
    PRIMARY KEY (campaign_id, list_id)
);

-- deliveries: one row per (campaign, subscriber), the idempotency key of a
-- send. Transactional messages have no campaign and carry their own address
-- and data.
CREATE TABLE deliveries (
    id              BIGSERIAL PRIMARY KEY,
    campaign_id BIGINT REFERENCES campaigns(id) ON DELETE CASCADE,
    subscriber_id BIGINT REFERENCES subscribers(id) ON DELETE SET NULL,
    list_id         BIGINT,
    template_id BIGINT REFERENCES templates(id) ON DELETE SET NULL,
    email           TEXT NOT NULL DEFAULT '',
    name            TEXT NOT NULL DEFAULT '',
    data            TEXT NOT NULL DEFAULT '',
    domain          TEXT NOT NULL,
    priority        INTEGER NOT NULL DEFAULT 0,
    status          TEXT NOT NULL CHECK (status IN ('queued', 'sending', 'sent', 'deferred', 'bounced', 'failed', 'suppressed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    lease_node      TEXT NOT NULL DEFAULT '',
    lease_until     TIMESTAMPTZ,
    last_code       INTEGER NOT NULL DEFAULT 0,
    last_enhanced   TEXT NOT NULL DEFAULT '',
    last_text       TEXT NOT NULL DEFAULT '',
    message_id      TEXT NOT NULL DEFAULT '',
    source_ip       TEXT NOT NULL DEFAULT '',
    mx_host         TEXT NOT NULL DEFAULT '',
    last_attempt_at TIMESTAMPTZ,
    sent_at         TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL,
    UNIQUE (campaign_id, subscriber_id)
);
CREATE INDEX deliveries_claim_idx ON deliveries(campaign_id, status, next_attempt_at);
CREATE INDEX deliveries_subscriber_idx ON deliveries(subscriber_id);
CREATE INDEX deliveries_sent_ip_idx ON deliveries(source_ip, sent_at);

CREATE TABLE links (
    id          BIGSERIAL PRIMARY KEY,
    campaign_id BIGINT NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    url         TEXT NOT NULL,
    UNIQUE (campaign_id, url)
);

CREATE TABLE outbox (
    id          BIGSERIAL PRIMARY KEY,
    delivery_id BIGINT,
    campaign_id BIGINT,
    mail_from   TEXT NOT NULL,
    rcpt_to     TEXT NOT NULL,
    subject     TEXT NOT NULL DEFAULT '',
    message_id  TEXT NOT NULL DEFAULT '',
    headers     TEXT NOT NULL DEFAULT '',
    html        TEXT NOT NULL DEFAULT '',
    text        TEXT NOT NULL DEFAULT '',
    raw         TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX outbox_campaign_idx ON outbox(campaign_id, id);

-- +goose Down
DROP TABLE outbox;
DROP TABLE links;
DROP TABLE deliveries;
DROP TABLE campaign_lists;
DROP TABLE campaigns;
DROP TABLE domain_rules;
DROP TABLE sending_ips;
DROP TABLE ip_pools;
DROP TABLE sending_domains;
DROP TABLE templates;
