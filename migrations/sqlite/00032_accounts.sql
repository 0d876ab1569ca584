-- +goose Up
-- Accounts: two-factor sign-in, invitations and password resets.
-- totp_secret is sealed under the server secret (AES-GCM), never plain;
-- it is set (with totp_enabled_at still NULL) while a user confirms the
-- setup. totp_last_step refuses a code used once from being replayed.
-- session_gen is stored in each session at sign-in: raising it ends
-- every session the user had (a password reset does).
ALTER TABLE users ADD COLUMN totp_secret TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN totp_enabled_at DATETIME;
ALTER TABLE users ADD COLUMN totp_last_step INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN session_gen INTEGER NOT NULL DEFAULT 0;

-- One-time recovery codes, stored as SHA-256 hashes.
CREATE TABLE recovery_codes (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash  TEXT NOT NULL,
    created_at DATETIME NOT NULL,
    used_at    DATETIME
);
CREATE INDEX recovery_codes_user_idx ON recovery_codes(user_id);

-- Signed, expiring, single-use links. token_hash is the SHA-256 of the
-- link's signed token: a link is good only for the row it was issued for.
CREATE TABLE invitations (
    id          INTEGER PRIMARY KEY,
    email       TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('admin', 'marketer', 'viewer')),
    invited_by  TEXT NOT NULL DEFAULT '',
    token_hash  TEXT NOT NULL DEFAULT '',
    created_at  DATETIME NOT NULL,
    expires_at  DATETIME NOT NULL,
    accepted_at DATETIME,
    revoked_at  DATETIME,
    user_id     INTEGER
);
CREATE INDEX invitations_email_idx ON invitations(email);

CREATE TABLE password_resets (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL DEFAULT '',
    ip         TEXT NOT NULL DEFAULT '',
    created_at DATETIME NOT NULL,
    expires_at DATETIME NOT NULL,
    used_at    DATETIME
);
CREATE INDEX password_resets_user_idx ON password_resets(user_id);

-- +goose Down
DROP TABLE password_resets;
DROP TABLE invitations;
DROP TABLE recovery_codes;
ALTER TABLE users DROP COLUMN session_gen;
ALTER TABLE users DROP COLUMN totp_last_step;
ALTER TABLE users DROP COLUMN totp_enabled_at;
ALTER TABLE users DROP COLUMN totp_secret;
