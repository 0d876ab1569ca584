-- +goose Up
-- A delivery's lease generation, the fencing token of its lease: every
-- claim adds one, and recording, renewing or releasing a row requires the
-- generation its claim returned. An outcome from an attempt whose lease
-- another node has since taken over names an older generation and
-- changes nothing, so it cannot overwrite the newer attempt's.
ALTER TABLE deliveries ADD COLUMN lease_gen BIGINT NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE deliveries DROP COLUMN lease_gen;
