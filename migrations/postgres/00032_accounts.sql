-- +goose Up
-- Accounts: two-factor sign-in, invitations and password resets.
-- totp_secret is sealed under the server secret (AES-GCM), never plain;
-- it is set (with totp_enabled_at still NULL) while a user confirms the
-- setup. totp_last_step refuses a code used once from being replayed.
-- session_gen is stored in each session at sign-in: raising it ends
-- every session the user had (a password reset does).
ALTER TABLE users ADD COLUMN totp_secret TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN totp_enabled_at TIMESTAMPTZ;
ALTER TABLE users ADD COLUMN totp_last_step BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN session_gen BIGINT NOT NULL DEFAULT 0;

-- One-time recovery codes, stored as SHA-256 hashes.
CREATE TABLE recovery_codes (
    id         BIGSERIAL PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash  TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ
);
CREATE INDEX recovery_codes_user_idx ON recovery_codes(user_id);

-- Signed, expiring, single-use links. token_hash is the SHA-256 of the
-- link's signed token: a link is good only for the row it was issued for.
CREATE TABLE invitations (
    id          BIGSERIAL PRIMARY KEY,
    email       TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('admin', 'marketer', 'viewer')),
    invited_by  TEXT NOT NULL DEFAULT '',
    token_hash  TEXT NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    accepted_at TIMESTAMPTZ,
    revoked_at  TIMESTAMPTZ,
    user_id     BIGINT
);
CREATE INDEX invitations_email_idx ON invitations(email);

CREATE TABLE password_resets (
    id         BIGSERIAL PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL DEFAULT '',
    ip         TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ
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
