-- +goose Up
-- An admin's decision to let a campaign on the direct transport start
-- although its From domain's DNS check fails or never ran. One per
-- campaign, kept with who decided, why and for which domain (a new From
-- domain needs a new decision).
CREATE TABLE campaign_dns_overrides (
    campaign_id INTEGER PRIMARY KEY REFERENCES campaigns(id) ON DELETE CASCADE,
    domain      TEXT NOT NULL,
    user_id     INTEGER,
    user_email  TEXT NOT NULL,
    reason      TEXT NOT NULL,
    created_at  DATETIME NOT NULL
);

-- +goose Down
DROP TABLE campaign_dns_overrides;
