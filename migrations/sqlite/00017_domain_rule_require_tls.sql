-- +goose Up
-- A domain rule may require TLS with a certificate valid for the MX host:
-- mail to its destinations is then never sent in plain text or to a host
-- whose certificate does not verify; it is deferred instead.
ALTER TABLE domain_rules ADD COLUMN require_tls BOOLEAN NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE domain_rules DROP COLUMN require_tls;
