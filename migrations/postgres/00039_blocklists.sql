-- +goose Up
-- DNS blocklists Herald checks its sending addresses and domains against
-- (jobs/blocklists.go). kind says what the list holds: ip lists are asked
-- reversed-octets.zone, domain lists domain.zone. codes is one answer a
-- line, "127.0.0.2 what it means"; a meaning beginning with "!" is the
-- list refusing the question (the check was not possible), as is any
-- answer in 127.255.255.0/24. pause_pool: a pool with an address listed
-- here stops sending until it is clean again.
CREATE TABLE blocklists (
    id         BIGSERIAL PRIMARY KEY,
    zone       TEXT NOT NULL UNIQUE,
    name       TEXT NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('ip', 'domain')),
    codes      TEXT NOT NULL DEFAULT '',
    delist_url TEXT NOT NULL DEFAULT '',
    enabled    BOOLEAN NOT NULL DEFAULT TRUE,
    pause_pool BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMPTZ NOT NULL
);

INSERT INTO blocklists (zone, name, kind, codes, delist_url, created_at) VALUES
('zen.spamhaus.org', 'Spamhaus ZEN', 'ip', '127.0.0.2 SBL: a known spam source or spam operation
127.0.0.3 SBL CSS: snowshoe spam, low-reputation sending
127.0.0.4 XBL: the address sends like hijacked or infected machines
127.0.0.5 XBL: the address sends like hijacked or infected machines
127.0.0.6 XBL: the address sends like hijacked or infected machines
127.0.0.7 XBL: the address sends like hijacked or infected machines
127.0.0.9 SBL DROP: a hijacked or spam-only network
127.0.0.10 PBL (ISP): an end-user range that should not send directly
127.0.0.11 PBL (Spamhaus): an end-user range that should not send directly', 'https://check.spamhaus.org/', now()),
('dbl.spamhaus.org', 'Spamhaus DBL', 'domain', '127.0.1.2 spam domain
127.0.1.4 phishing domain
127.0.1.5 malware domain
127.0.1.6 botnet command and control domain
127.0.1.102 abused legitimate domain: spam
127.0.1.103 abused legitimate domain: spammed redirector
127.0.1.104 abused legitimate domain: phishing
127.0.1.105 abused legitimate domain: malware
127.0.1.106 abused legitimate domain: botnet command and control', 'https://check.spamhaus.org/', now()),
('b.barracudacentral.org', 'Barracuda BRBL', 'ip', '127.0.0.2 listed by Barracuda Reputation Block List', 'https://www.barracudacentral.org/rbl/removal-request', now()),
('bl.spamcop.net', 'SpamCop', 'ip', '127.0.0.2 reported as a spam source by SpamCop users', 'https://www.spamcop.net/bl.shtml', now()),
('multi.surbl.org', 'SURBL multi', 'domain', '127.0.0.1 !SURBL refuses queries from this resolver
127.0.0.8 phishing domain (PH)
127.0.0.16 malware domain (MW)
127.0.0.64 spam or abuse domain (ABUSE)
127.0.0.128 cracked site (CR)', 'https://www.surbl.org/surbl-analysis', now()),
('dnsbl-1.uceprotect.net', 'UCEPROTECT level 1', 'ip', '127.0.0.2 the address itself sent to UCEPROTECT spamtraps', 'https://www.uceprotect.net/en/rblcheck.php', now()),
('psbl.surriel.com', 'PSBL', 'ip', '127.0.0.2 the address sent to PSBL spamtraps', 'https://psbl.org/remove', now());

-- One row per period in which a checked address or domain had one state
-- on one list: a change of state begins a new row, a repeated state moves
-- last_seen on. The newest row of (target, zone) is its current state.
CREATE TABLE blocklist_results (
    id          BIGSERIAL PRIMARY KEY,
    target      TEXT NOT NULL,
    target_kind TEXT NOT NULL CHECK (target_kind IN ('ip', 'domain')),
    source      TEXT NOT NULL DEFAULT '',
    zone        TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('clean', 'listed', 'unavailable', 'error')),
    answer      TEXT NOT NULL DEFAULT '',
    meaning     TEXT NOT NULL DEFAULT '',
    first_seen  TIMESTAMPTZ NOT NULL,
    last_seen   TIMESTAMPTZ NOT NULL
);
CREATE INDEX blocklist_results_target ON blocklist_results (target, zone, id);

-- A pool the blocklist rule paused (paused_reason says by which listing);
-- the engine sends nothing through it until the listing is gone.
ALTER TABLE ip_pools ADD COLUMN paused_reason TEXT NOT NULL DEFAULT '';
ALTER TABLE ip_pools ADD COLUMN paused_at TIMESTAMPTZ;

-- +goose Down
ALTER TABLE ip_pools DROP COLUMN paused_at;
ALTER TABLE ip_pools DROP COLUMN paused_reason;
DROP TABLE blocklist_results;
DROP TABLE blocklists;
