-- +goose Up
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL DEFAULT '',
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'marketer', 'viewer')),
    created_at    DATETIME NOT NULL,
    updated_at    DATETIME NOT NULL
);

CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    created_at   DATETIME NOT NULL,
    last_used_at DATETIME
);

CREATE TABLE sessions (
    token  TEXT PRIMARY KEY,
    data   BLOB NOT NULL,
    expiry REAL NOT NULL
);
CREATE INDEX sessions_expiry_idx ON sessions(expiry);

CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    object_type TEXT NOT NULL,
    object_id   TEXT NOT NULL DEFAULT '',
    summary     TEXT NOT NULL DEFAULT '',
    ip          TEXT NOT NULL DEFAULT '',
    created_at  DATETIME NOT NULL
);
CREATE INDEX audit_log_created_idx ON audit_log(created_at);

CREATE TABLE lists (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    optin       TEXT NOT NULL CHECK (optin IN ('single', 'double')),
    visibility  TEXT NOT NULL CHECK (visibility IN ('public', 'private')),
    created_at  DATETIME NOT NULL,
    updated_at  DATETIME NOT NULL
);

-- list_stats is kept by triggers so that the lists page never counts a
-- million subscriptions to show three numbers.
CREATE TABLE list_stats (
    list_id      INTEGER PRIMARY KEY REFERENCES lists(id) ON DELETE CASCADE,
    unconfirmed  INTEGER NOT NULL DEFAULT 0,
    confirmed    INTEGER NOT NULL DEFAULT 0,
    unsubscribed INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE subscribers (
    id          INTEGER PRIMARY KEY,
    email       TEXT NOT NULL,
    name        TEXT NOT NULL DEFAULT '',
    attributes  TEXT NOT NULL DEFAULT '{}',
    status      TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'blocklisted', 'erased')),
    created_at  DATETIME NOT NULL,
    updated_at  DATETIME NOT NULL
);
-- Addresses are unique regardless of case; the same index serves prefix search.
CREATE UNIQUE INDEX subscribers_email_idx ON subscribers(lower(email));
CREATE INDEX subscribers_name_idx ON subscribers(lower(name));
-- Nearly everyone is active: only the others are indexed, for the status
-- filter of the subscribers page. (Active ones are found walking by id.)
CREATE INDEX subscribers_inactive_idx ON subscribers(status, id) WHERE status <> 'active';

CREATE TABLE subscriptions (
    subscriber_id INTEGER NOT NULL REFERENCES subscribers(id) ON DELETE CASCADE,
    list_id       INTEGER NOT NULL REFERENCES lists(id) ON DELETE CASCADE,
    status        TEXT NOT NULL CHECK (status IN ('unconfirmed', 'confirmed', 'unsubscribed')),
    created_at    DATETIME NOT NULL,
    updated_at    DATETIME NOT NULL,
    PRIMARY KEY (subscriber_id, list_id)
) WITHOUT ROWID;
CREATE INDEX subscriptions_list_idx ON subscriptions(list_id, status, subscriber_id);

-- +goose StatementBegin
CREATE TRIGGER subscriptions_ins AFTER INSERT ON subscriptions BEGIN
    INSERT INTO list_stats(list_id) VALUES (NEW.list_id) ON CONFLICT(list_id) DO NOTHING;
    UPDATE list_stats SET
        unconfirmed  = unconfirmed  + (NEW.status = 'unconfirmed'),
        confirmed    = confirmed    + (NEW.status = 'confirmed'),
        unsubscribed = unsubscribed + (NEW.status = 'unsubscribed')
    WHERE list_id = NEW.list_id;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER subscriptions_upd AFTER UPDATE OF status ON subscriptions WHEN OLD.status <> NEW.status BEGIN
    UPDATE list_stats SET
        unconfirmed  = unconfirmed  + (NEW.status = 'unconfirmed')  - (OLD.status = 'unconfirmed'),
        confirmed    = confirmed    + (NEW.status = 'confirmed')    - (OLD.status = 'confirmed'),
        unsubscribed = unsubscribed + (NEW.status = 'unsubscribed') - (OLD.status = 'unsubscribed')
    WHERE list_id = NEW.list_id;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER subscriptions_del AFTER DELETE ON subscriptions BEGIN
    UPDATE list_stats SET
        unconfirmed  = unconfirmed  - (OLD.status = 'unconfirmed'),
        confirmed    = confirmed    - (OLD.status = 'confirmed'),
        unsubscribed = unsubscribed - (OLD.status = 'unsubscribed')
    WHERE list_id = OLD.list_id;
END;
-- +goose StatementEnd

-- consents is append-only. hash = sha256(prev_hash | the row's fields |
-- pii_digest); erasure blanks the personal columns but keeps pii_digest, so
-- the chain still verifies and the row becomes a tombstone.
CREATE TABLE consents (
    id            INTEGER PRIMARY KEY,
    subscriber_id INTEGER,
    list_id       INTEGER,
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
    created_at    DATETIME NOT NULL,
    pii_digest    TEXT NOT NULL,
    prev_hash     TEXT NOT NULL,
    hash          TEXT NOT NULL
);
CREATE INDEX consents_subscriber_idx ON consents(subscriber_id, id);

CREATE TABLE suppressions (
    id         INTEGER PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('address', 'domain')),
    value      TEXT NOT NULL DEFAULT '',
    value_hash TEXT NOT NULL UNIQUE,
    reason     TEXT NOT NULL,
    note       TEXT NOT NULL DEFAULT '',
    created_at DATETIME NOT NULL
);

CREATE TABLE imports (
    id            INTEGER PRIMARY KEY,
    list_id       INTEGER REFERENCES lists(id) ON DELETE SET NULL,
    user_id       INTEGER,
    filename      TEXT NOT NULL,
    mode          TEXT NOT NULL,
    lawful_basis  TEXT NOT NULL,
    source        TEXT NOT NULL,
    status        TEXT NOT NULL,
    total_bytes   INTEGER NOT NULL DEFAULT 0,
    read_bytes    INTEGER NOT NULL DEFAULT 0,
    rows_read     INTEGER NOT NULL DEFAULT 0,
    inserted      INTEGER NOT NULL DEFAULT 0,
    updated       INTEGER NOT NULL DEFAULT 0,
    skipped       INTEGER NOT NULL DEFAULT 0,
    failed        INTEGER NOT NULL DEFAULT 0,
    message       TEXT NOT NULL DEFAULT '',
    created_at    DATETIME NOT NULL,
    finished_at   DATETIME
);

CREATE TABLE import_errors (
    import_id INTEGER NOT NULL REFERENCES imports(id) ON DELETE CASCADE,
    row_num   INTEGER NOT NULL,
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
DROP TABLE subscribers;
DROP TABLE list_stats;
DROP TABLE lists;
DROP TABLE audit_log;
DROP TABLE sessions;
DROP TABLE api_tokens;
DROP TABLE users;
DROP TABLE settings;
