package models

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// DMARCReport is a stored DMARC aggregate report and, when saving, its
// records.
type DMARCReport struct {
	ID         int64
	Domain     string // the policy_published domain
	OrgName    string
	Email      string
	ReportID   string
	DateBegin  time.Time
	DateEnd    time.Time
	Policy     string // "p=none sp=none adkim=r aspf=r pct=100"
	Messages   int64  // the sum of the records' counts
	Via        string // smtp, imap
	ReceivedAt time.Time
	Records    []DMARCRecord `gorm:"foreignKey:ReportID"`
}

// TableName is the reports' table.
func (DMARCReport) TableName() string { return "dmarc_reports" }

// DMARCRecord is one row of a report: Count messages from SourceIP.
type DMARCRecord struct {
	ID           int64
	ReportID     int64
	SourceIP     string
	ReverseName  string
	Count        int64
	Disposition  string
	DKIM         string `gorm:"column:dkim"` // aligned results, pass or fail
	SPF          string `gorm:"column:spf"`
	HeaderFrom   string
	EnvelopeFrom string
	DKIMAuth     string `gorm:"column:dkim_auth"` // "domain selector result" per line
	SPFAuth      string `gorm:"column:spf_auth"`  // "domain scope result" per line
	Reasons      string // override reasons, space-separated
}

// TableName is the records' table.
func (DMARCRecord) TableName() string { return "dmarc_records" }

// SaveDMARCReport stores a report and its records in one transaction.
// A report already stored (same reporter, report id and domain: a
// resend) is left alone and stored is false.
func (s *Store) SaveDMARCReport(ctx context.Context, r *DMARCReport) (stored bool, err error) {
	recs := r.Records
	r.Records = nil
	defer func() { r.Records = recs }()
	r.Messages = 0
	for _, rec := range recs {
		r.Messages += rec.Count
	}
	if r.ReceivedAt.IsZero() {
		r.ReceivedAt = time.Now().UTC()
	}
	stored, err = saveOnce(s, ctx, r, &r.ID, recs, func(c *DMARCRecord) *int64 { return &c.ReportID })
	if err != nil {
		return false, fmt.Errorf("models: save DMARC report %s/%s: %w", r.OrgName, r.ReportID, err)
	}
	return stored, nil
}

// TLSReport is a stored SMTP TLS report and, when saving, its policies.
type TLSReport struct {
	ID         int64
	OrgName    string
	ReportID   string
	Contact    string
	DateBegin  time.Time
	DateEnd    time.Time
	Via        string
	ReceivedAt time.Time
	Policies   []TLSReportPolicy `gorm:"foreignKey:ReportID"`
}

// TableName is the TLS reports' table.
func (TLSReport) TableName() string { return "tls_reports" }

// TLSReportPolicy is the result of one policy of a TLS report.
type TLSReportPolicy struct {
	ID           int64
	ReportID     int64
	PolicyType   string // sts, tlsa, no-policy-found
	PolicyDomain string
	Success      int64
	Failure      int64
	Failures     string // "result-type sending-ip receiving-mx count" per line
}

// TableName is the policies' table.
func (TLSReportPolicy) TableName() string { return "tls_report_policies" }

// SaveTLSReport stores a TLS report and its policies; a report already
// stored is left alone and stored is false.
func (s *Store) SaveTLSReport(ctx context.Context, r *TLSReport) (stored bool, err error) {
	pols := r.Policies
	r.Policies = nil
	defer func() { r.Policies = pols }()
	if r.ReceivedAt.IsZero() {
		r.ReceivedAt = time.Now().UTC()
	}
	stored, err = saveOnce(s, ctx, r, &r.ID, pols, func(c *TLSReportPolicy) *int64 { return &c.ReportID })
	if err != nil {
		return false, fmt.Errorf("models: save TLS report %s/%s: %w", r.OrgName, r.ReportID, err)
	}
	return stored, nil
}

// saveOnce inserts report unless its unique key is already stored, then
// its children, each given the report's id (*id once inserted) through
// parent, in one transaction. stored is false for a resend.
func saveOnce[C any](s *Store, ctx context.Context, report any, id *int64, children []C, parent func(*C) *int64) (stored bool, err error) {
	err = s.tx(ctx, func(tx *gorm.DB) error {
		res := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(report)
		if res.Error != nil || res.RowsAffected == 0 {
			return res.Error
		}
		stored = true
		for i := range children {
			*parent(&children[i]) = *id
		}
		if len(children) == 0 {
			return nil
		}
		return tx.CreateInBatches(children, 500).Error
	})
	return stored, err
}

// IsReportDomain reports whether domain is a sending domain or a sending
// domain's return-path domain: the domains whose dmarc@ and tlsrpt@
// addresses Herald advises and accepts.
func (s *Store) IsReportDomain(ctx context.Context, domain string) (bool, error) {
	d := strings.ToLower(strings.TrimSpace(domain))
	var n int64
	err := s.conn(ctx).Model(&SendingDomain{}).Where("LOWER(domain) = ? OR LOWER(return_path_domain) = ?", d, d).Count(&n).Error
	if err != nil {
		return false, fmt.Errorf("models: is report domain %q: %w", domain, err)
	}
	return n > 0, nil
}

// DMARCSource is everything the reports say about one address sending as
// a domain over a period.
type DMARCSource struct {
	IP, ReverseName string
	Messages        int64
	Aligned         int64 // passed DMARC: DKIM or SPF passed and aligned
	DKIMPass        int64 // aligned DKIM passed
	SPFPass         int64 // aligned SPF passed
	Quarantined     int64
	Rejected        int64
	// DKIMSignatures and SPFDomains are the raw results seen,
	// "domain (selector): result" and "domain: result", most messages first.
	DKIMSignatures []string
	SPFDomains     []string
	// Selectors are the DKIM selectors of passing signatures by the
	// domain itself.
	Selectors []string
	Reporters []string
	LastSeen  time.Time
}

// Failed is the number of messages that failed DMARC.
func (s DMARCSource) Failed() int64 { return s.Messages - s.Aligned }

// DMARCDay is one day of a domain's reports.
type DMARCDay struct {
	Day      time.Time
	Messages int64
	Aligned  int64
	Sources  int
}

// DMARCSummary is what a domain's reports say over a period.
type DMARCSummary struct {
	Domain   string
	Since    time.Time
	Messages int64
	Aligned  int64
	Sources  []DMARCSource // most messages first
	Days     []DMARCDay    // oldest first
	Reports  []DMARCReport // newest first, without records
}

// DMARCSummary sums the records about domain (mail whose From was the
// domain, or reports for its policy) in reports whose period began at or
// after since, by source address and by day.
func (s *Store) DMARCSummary(ctx context.Context, domain string, since time.Time) (*DMARCSummary, error) {
	d := strings.ToLower(strings.TrimSpace(domain))
	out := &DMARCSummary{Domain: d, Since: since}
	type row struct {
		DMARCRecord
		OrgName   string
		DateBegin time.Time
		DateEnd   time.Time
	}
	var rows []row
	err := s.conn(ctx).Table("dmarc_records AS r").
		Select("r.*, p.org_name, p.date_begin, p.date_end").
		Joins("JOIN dmarc_reports p ON p.id = r.report_id").
		Where("p.date_begin >= ? AND (r.header_from = ? OR (r.header_from = '' AND p.domain = ?))", since, d, d).
		Order("p.date_begin, r.id").Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("models: DMARC summary of %s: %w", domain, err)
	}
	bySrc := map[string]*DMARCSource{}
	byDay := map[time.Time]*DMARCDay{}
	daySrc := map[time.Time]map[string]bool{}
	type tally map[string]int64
	dkim, spf := map[string]tally{}, map[string]tally{}
	for _, r := range rows {
		src := bySrc[r.SourceIP]
		if src == nil {
			src = &DMARCSource{IP: r.SourceIP}
			bySrc[r.SourceIP] = src
			dkim[r.SourceIP], spf[r.SourceIP] = tally{}, tally{}
		}
		if r.ReverseName != "" {
			src.ReverseName = r.ReverseName
		}
		pass := r.DKIM == "pass" || r.SPF == "pass"
		src.Messages += r.Count
		if pass {
			src.Aligned += r.Count
		}
		if r.DKIM == "pass" {
			src.DKIMPass += r.Count
		}
		if r.SPF == "pass" {
			src.SPFPass += r.Count
		}
		switch r.Disposition {
		case "quarantine":
			src.Quarantined += r.Count
		case "reject":
			src.Rejected += r.Count
		}
		if !slices.Contains(src.Reporters, r.OrgName) {
			src.Reporters = append(src.Reporters, r.OrgName)
		}
		if r.DateEnd.After(src.LastSeen) {
			src.LastSeen = r.DateEnd
		}
		for _, l := range splitLines(r.DKIMAuth) {
			f := strings.Fields(l)
			if len(f) != 3 {
				continue
			}
			dkim[r.SourceIP][f[0]+" ("+f[1]+"): "+f[2]] += r.Count
			if f[2] == "pass" && f[0] == d && !slices.Contains(src.Selectors, f[1]) {
				src.Selectors = append(src.Selectors, f[1])
			}
		}
		for _, l := range splitLines(r.SPFAuth) {
			if f := strings.Fields(l); len(f) == 3 {
				spf[r.SourceIP][f[0]+": "+f[2]] += r.Count
			}
		}
		day := r.DateBegin.UTC().Truncate(24 * time.Hour)
		dd := byDay[day]
		if dd == nil {
			dd = &DMARCDay{Day: day}
			byDay[day], daySrc[day] = dd, map[string]bool{}
		}
		dd.Messages += r.Count
		if pass {
			dd.Aligned += r.Count
		}
		daySrc[day][r.SourceIP] = true
		out.Messages += r.Count
		if pass {
			out.Aligned += r.Count
		}
	}
	top := func(t tally) []string {
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return t[keys[i]] > t[keys[j]] || t[keys[i]] == t[keys[j]] && keys[i] < keys[j] })
		return keys
	}
	for ip, src := range bySrc {
		src.DKIMSignatures, src.SPFDomains = top(dkim[ip]), top(spf[ip])
		out.Sources = append(out.Sources, *src)
	}
	sort.Slice(out.Sources, func(i, j int) bool {
		a, b := out.Sources[i], out.Sources[j]
		return a.Messages > b.Messages || a.Messages == b.Messages && a.IP < b.IP
	})
	for day, dd := range byDay {
		dd.Sources = len(daySrc[day])
		out.Days = append(out.Days, *dd)
	}
	sort.Slice(out.Days, func(i, j int) bool { return out.Days[i].Day.Before(out.Days[j].Day) })
	err = s.conn(ctx).Where("date_begin >= ? AND (domain = ? OR id IN (SELECT report_id FROM dmarc_records WHERE header_from = ?))", since, d, d).
		Order("date_begin DESC, id DESC").Limit(200).Find(&out.Reports).Error
	if err != nil {
		return nil, fmt.Errorf("models: DMARC reports of %s: %w", domain, err)
	}
	return out, nil
}

func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// TLSResult is one policy result of a TLS report, with its report.
type TLSResult struct {
	TLSReportPolicy
	OrgName   string
	DateBegin time.Time
	DateEnd   time.Time
}

// FailureLines are the failure details, one "result-type sending-ip
// receiving-mx count" each.
func (r TLSResult) FailureLines() []string { return splitLines(r.Failures) }

// TLSSummary is what TLS reports say about some policy domains.
type TLSSummary struct {
	Success, Failure int64
	Results          []TLSResult // newest first
}

// TLSSummary returns the TLS report results for the policy domains, of
// reports whose period began at or after since.
func (s *Store) TLSSummary(ctx context.Context, domains []string, since time.Time) (*TLSSummary, error) {
	out := &TLSSummary{}
	if len(domains) == 0 {
		return out, nil
	}
	for i := range domains {
		domains[i] = strings.ToLower(domains[i])
	}
	err := s.conn(ctx).Table("tls_report_policies AS p").
		Select("p.*, r.org_name, r.date_begin, r.date_end").
		Joins("JOIN tls_reports r ON r.id = p.report_id").
		Where("r.date_begin >= ? AND p.policy_domain IN ?", since, domains).
		Order("r.date_begin DESC, p.id").Limit(500).Scan(&out.Results).Error
	if err != nil {
		return nil, fmt.Errorf("models: TLS summary: %w", err)
	}
	for _, r := range out.Results {
		out.Success += r.Success
		out.Failure += r.Failure
	}
	return out, nil
}
