-- +goose Up
-- spf_includes are the SPF include: terms a sending domain's return-path
-- record needs besides Herald's own addresses (a relay's "_spf.relay.example"),
-- space-separated. The DNS page shows them and the DNS check expects them.
ALTER TABLE sending_domains ADD COLUMN spf_includes TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE sending_domains DROP COLUMN spf_includes;
