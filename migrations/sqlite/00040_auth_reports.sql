-- +goose Up
-- DMARC aggregate reports (RFC 7489 §7.2) received at the rua address
-- Herald advises: one row per report (the reporter, the domain whose
-- policy it covers, the period), unique per reporter and report id so a
-- report sent twice is stored once.
CREATE TABLE dmarc_reports (
    id          INTEGER PRIMARY KEY,
    domain      TEXT NOT NULL,
    org_name    TEXT NOT NULL,
    email       TEXT NOT NULL DEFAULT '',
    report_id   TEXT NOT NULL,
    date_begin  DATETIME NOT NULL,
    date_end    DATETIME NOT NULL,
    policy      TEXT NOT NULL DEFAULT '',
    messages    INTEGER NOT NULL DEFAULT 0,
    via         TEXT NOT NULL DEFAULT '',
    received_at DATETIME NOT NULL,
    UNIQUE (org_name, report_id, domain)
);
CREATE INDEX dmarc_reports_domain ON dmarc_reports (domain, date_begin);

-- One row of a report: count messages from source_ip with the same
-- identifiers and results. dkim and spf are the aligned (policy
-- evaluated) results; dkim_auth and spf_auth the raw ones, one
-- "domain selector result" or "domain scope result" per line.
CREATE TABLE dmarc_records (
    id            INTEGER PRIMARY KEY,
    report_id     INTEGER NOT NULL REFERENCES dmarc_reports(id) ON DELETE CASCADE,
    source_ip     TEXT NOT NULL,
    reverse_name  TEXT NOT NULL DEFAULT '',
    count         INTEGER NOT NULL,
    disposition   TEXT NOT NULL DEFAULT '',
    dkim          TEXT NOT NULL DEFAULT '',
    spf           TEXT NOT NULL DEFAULT '',
    header_from   TEXT NOT NULL DEFAULT '',
    envelope_from TEXT NOT NULL DEFAULT '',
    dkim_auth     TEXT NOT NULL DEFAULT '',
    spf_auth      TEXT NOT NULL DEFAULT '',
    reasons       TEXT NOT NULL DEFAULT ''
);
CREATE INDEX dmarc_records_report ON dmarc_records (report_id);
CREATE INDEX dmarc_records_header_from ON dmarc_records (header_from);

-- SMTP TLS reports (RFC 8460) received at the TLS-RPT address Herald
-- advises, and their per-policy results; failures holds one failure
-- detail per line: "result-type sending-ip receiving-mx count".
CREATE TABLE tls_reports (
    id          INTEGER PRIMARY KEY,
    org_name    TEXT NOT NULL,
    report_id   TEXT NOT NULL,
    contact     TEXT NOT NULL DEFAULT '',
    date_begin  DATETIME NOT NULL,
    date_end    DATETIME NOT NULL,
    via         TEXT NOT NULL DEFAULT '',
    received_at DATETIME NOT NULL,
    UNIQUE (org_name, report_id)
);
CREATE TABLE tls_report_policies (
    id            INTEGER PRIMARY KEY,
    report_id     INTEGER NOT NULL REFERENCES tls_reports(id) ON DELETE CASCADE,
    policy_type   TEXT NOT NULL DEFAULT '',
    policy_domain TEXT NOT NULL,
    success       INTEGER NOT NULL DEFAULT 0,
    failure       INTEGER NOT NULL DEFAULT 0,
    failures      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX tls_report_policies_domain ON tls_report_policies (policy_domain);
CREATE INDEX tls_report_policies_report ON tls_report_policies (report_id);

-- +goose Down
DROP TABLE tls_report_policies;
DROP TABLE tls_reports;
DROP TABLE dmarc_records;
DROP TABLE dmarc_reports;
