-- +goose Up
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE users (
    id            BIGSERIAL PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL DEFAULT '',
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'marketer', 'viewer')),
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);

CREATE TABLE api_tokens (
    id           BIGSERIAL PRIMARY KEY,
    user_id      BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    created_at   TIMESTAMPTZ NOT NULL,
    last_used_at TIMESTAMPTZ
);

CREATE TABLE sessions (
    token  TEXT PRIMARY KEY,
    data   BYTEA NOT NULL,
    expiry DOUBLE PRECISION NOT NULL
);
CREATE INDEX sessions_expiry_idx ON sessions(expiry);

CREATE TABLE audit_log (
    id          BIGSERIAL PRIMARY KEY,
    user_id     BIGINT,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    object_type TEXT NOT NULL,
    object_id   TEXT NOT NULL DEFAULT '',
    summary     TEXT NOT NULL DEFAULT '',
    ip          TEXT NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX audit_log_created_idx ON audit_log(created_at);

CREATE TABLE lists (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    optin       TEXT NOT NULL CHECK (optin IN ('single', 'double')),
    visibility  TEXT NOT NULL CHECK (visibility IN ('public', 'private')),
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

-- list_stats is kept by triggers so that the lists page never counts a
-- million subscriptions to show three numbers.
CREATE TABLE list_stats (
    list_id      BIGINT PRIMARY KEY REFERENCES lists(id) ON DELETE CASCADE,
    unconfirmed  BIGINT NOT NULL DEFAULT 0,
    confirmed    BIGINT NOT NULL DEFAULT 0,
    unsubscribed BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE subscribers (
    id          BIGSERIAL PRIMARY KEY,
    email       TEXT NOT NULL,
    name        TEXT NOT NULL DEFAULT '',
    attributes  TEXT NOT NULL DEFAULT '{}',
    status      TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'blocklisted', 'erased')),
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
-- Addresses are unique regardless of case; the same index serves prefix search.
CREATE UNIQUE INDEX subscribers_email_idx ON subscribers(lower(email) text_pattern_ops);
CREATE INDEX subscribers_name_idx ON subscribers(lower(name) text_pattern_ops);
-- Nearly everyone is active: only the others are indexed, for the status
-- filter of the subscribers page. (Active ones are found walking by id.)
CREATE INDEX subscribers_inactive_idx ON subscribers(status, id) WHERE status <> 'active';

CREATE TABLE subscriptions (
    subscriber_id BIGINT NOT NULL REFERENCES subscribers(id) ON DELETE CASCADE,
    list_id       BIGINT NOT NULL REFERENCES lists(id) ON DELETE CASCADE,
    status        TEXT NOT NULL CHECK (status IN ('unconfirmed', 'confirmed', 'unsubscribed')),
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (subscriber_id, list_id)
);
CREATE INDEX subscriptions_list_idx ON subscriptions(list_id, status, subscriber_id);

-- +goose StatementBegin
CREATE FUNCTION list_stats_apply(l BIGINT, st TEXT, d BIGINT) RETURNS void AS $$
BEGIN
    INSERT INTO list_stats(list_id) VALUES (l) ON CONFLICT (list_id) DO NOTHING;
    UPDATE list_stats SET
        unconfirmed  = unconfirmed  + CASE WHEN st = 'unconfirmed'  THEN d ELSE 0 END,
        confirmed    = confirmed    + CASE WHEN st = 'confirmed'    THEN d ELSE 0 END,
        unsubscribed = unsubscribed + CASE WHEN st = 'unsubscribed' THEN d ELSE 0 END
    WHERE list_id = l;
END;
$$ LANGUAGE plpgsql;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION subscriptions_stats() RETURNS trigger AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM list_stats_apply(OLD.list_id, OLD.status, -1);
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        PERFORM list_stats_apply(NEW.list_id, NEW.status, 1);
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
-- +goose StatementEnd

CREATE TRIGGER subscriptions_stats_ins AFTER INSERT ON subscriptions FOR EACH ROW EXECUTE FUNCTION subscriptions_stats();
CREATE TRIGGER subscriptions_stats_del AFTER DELETE ON subscriptions FOR EACH ROW EXECUTE FUNCTION subscriptions_stats();
CREATE TRIGGER subscriptions_stats_upd AFTER UPDATE OF status ON subscriptions FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION subscriptions_stats();

-- consents is append-only. hash = sha256(prev_hash | the row's fields |
-- pii_digest); erasure blanks the personal columns but keeps pii_digest, so
-- the chain still verifies and the row becomes a tombstone.
CREATE TABLE consents (
    id            BIGSERIAL PRIMARY KEY,
    subscriber_id BIGINT,
    list_id       BIGINT,
    action        TEXT NOT NULL,
    lawful_basis  TEXT NOT NULL,
    source        TEXT NOT NULL,
    email         TEXT NOT NULL DEFAULT '',
    ip            TEXT NOT NULL DEFAULT '',
    user_agent    TEXT NOT NULL DEFAULT '',
    page          TEXT NOT NULL DEFAULT '',
    text_hash     TEXT NOT NULL DEFAULT '',
    actor         TEXT NOT NULL DEFAULT '',
    note          TEXT NOT NULL DEFAULT '',
    created_at    TIMESTAMPTZ NOT NULL,
    pii_digest    TEXT NOT NULL,
    prev_hash     TEXT NOT NULL,
    hash          TEXT NOT NULL
);
CREATE INDEX consents_subscriber_idx ON consents(subscriber_id, id);

CREATE TABLE suppressions (
    id         BIGSERIAL PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('address', 'domain')),
    value      TEXT NOT NULL DEFAULT '',
    value_hash TEXT NOT NULL UNIQUE,
    reason     TEXT NOT NULL,
    note       TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE imports (
    id            BIGSERIAL PRIMARY KEY,
    list_id       BIGINT REFERENCES lists(id) ON DELETE SET NULL,
    user_id       BIGINT,
    filename      TEXT NOT NULL,
    mode          TEXT NOT NULL,
    lawful_basis  TEXT NOT NULL,
    source        TEXT NOT NULL,
    status        TEXT NOT NULL,
    total_bytes   BIGINT NOT NULL DEFAULT 0,
    read_bytes    BIGINT NOT NULL DEFAULT 0,
    rows_read     BIGINT NOT NULL DEFAULT 0,
    inserted      BIGINT NOT NULL DEFAULT 0,
    updated       BIGINT NOT NULL DEFAULT 0,
    skipped       BIGINT NOT NULL DEFAULT 0,
    failed        BIGINT NOT NULL DEFAULT 0,
    message       TEXT NOT NULL DEFAULT '',
    created_at    TIMESTAMPTZ NOT NULL,
    finished_at   TIMESTAMPTZ
);

CREATE TABLE import_errors (
    import_id BIGINT NOT NULL REFERENCES imports(id) ON DELETE CASCADE,
    row_num   BIGINT NOT NULL,
    email     TEXT NOT NULL DEFAULT '',
    reason    TEXT NOT NULL,
    PRIMARY KEY (import_id, row_num)
);

-- +goose Down
DROP TABLE import_errors;
DROP TABLE imports;
DROP TABLE suppressions;
DROP TABLE consents;
DROP TABLE subscriptions;
DROP FUNCTION subscriptions_stats;
DROP FUNCTION list_stats_apply;
DROP TABLE subscribers;
DROP TABLE list_stats;
DROP TABLE lists;
DROP TABLE audit_log;
DROP TABLE sessions;
DROP TABLE api_tokens;
DROP TABLE users;
DROP TABLE settings;
