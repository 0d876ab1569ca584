-- +goose Up
-- Seed mailboxes for inbox placement tests: an address Herald sends to
-- and the IMAP mailbox it reads back, with the provider it stands for.
-- The IMAP URL carries the password: it is stored sealed with the server
-- secret, as the relay URL is.
CREATE TABLE seed_mailboxes (
    id         INTEGER PRIMARY KEY,
    address    TEXT NOT NULL UNIQUE,
    provider   TEXT NOT NULL,
    imap_url   TEXT NOT NULL,
    created_at DATETIME NOT NULL
);

-- A placement test: a campaign's message sent to every seed with a
-- token header, then looked for in the seeds until found or the
-- deadline. gate marks the test a campaign ran before its full send.
CREATE TABLE placement_tests (
    id          INTEGER PRIMARY KEY,
    campaign_id INTEGER NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    token       TEXT NOT NULL UNIQUE,
    status      TEXT NOT NULL CHECK (status IN ('running', 'done')),
    gate        BOOLEAN NOT NULL DEFAULT 0,
    created_at  DATETIME NOT NULL,
    deadline    DATETIME NOT NULL,
    finished_at DATETIME
);

-- One row per (test, seed): where the copy landed and what the
-- receiver's Authentication-Results said. The seed's address and
-- provider are copied so that a deleted seed leaves its results.
CREATE TABLE placement_results (
    id           INTEGER PRIMARY KEY,
    test_id      INTEGER NOT NULL REFERENCES placement_tests(id) ON DELETE CASCADE,
    seed_id      INTEGER,
    address      TEXT NOT NULL,
    provider     TEXT NOT NULL,
    placement    TEXT NOT NULL CHECK (placement IN ('pending', 'inbox', 'spam', 'other', 'missing', 'error')),
    folder       TEXT NOT NULL DEFAULT '',
    arrival_ms   INTEGER,
    spf          TEXT NOT NULL DEFAULT '',
    dkim         TEXT NOT NULL DEFAULT '',
    dmarc        TEXT NOT NULL DEFAULT '',
    auth_results TEXT NOT NULL DEFAULT '',
    detail       TEXT NOT NULL DEFAULT '',
    UNIQUE (test_id, seed_id)
);
CREATE INDEX placement_tests_status ON placement_tests (status);

-- A campaign's pre-send gate: starting it sends a placement test first
-- and holds the campaign paused until the test ends; it resumes when at
-- least min_inbox percent of the seeds got it in the inbox, and stays
-- paused with the reason otherwise.
CREATE TABLE placement_gates (
    campaign_id INTEGER PRIMARY KEY REFERENCES campaigns(id) ON DELETE CASCADE,
    min_inbox   INTEGER NOT NULL CHECK (min_inbox BETWEEN 1 AND 100),
    state       TEXT NOT NULL CHECK (state IN ('armed', 'testing', 'passed', 'failed')),
    test_id     INTEGER,
    reason      TEXT NOT NULL DEFAULT '',
    updated_at  DATETIME NOT NULL
);

-- +goose Down
DROP TABLE placement_gates;
DROP TABLE placement_results;
DROP TABLE placement_tests;
DROP TABLE seed_mailboxes;
