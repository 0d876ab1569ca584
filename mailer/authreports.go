package mailer

import (
	"context"
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/herald-mail/herald/mailer/authreport"
	"github.com/herald-mail/herald/models"
)

// Report addresses: the local parts of the rua address of the DMARC
// record and of the TLS-RPT record Herald advises, at a sending domain or
// its return-path domain (models.SendingDomain.DNSRecords).
const (
	DMARCLocalPart = "dmarc"
	TLSLocalPart   = "tlsrpt"
)

// ReportStore is what the recorder stores DMARC aggregate and TLS reports
// through; *models.Store implements it. A store without it makes the
// recorder refuse the report addresses like any other unknown user.
type ReportStore interface {
	// IsReportDomain reports whether dmarc@ and tlsrpt@ at domain are
	// Herald's: a sending domain or a return-path domain.
	IsReportDomain(ctx context.Context, domain string) (bool, error)
	// SaveDMARCReport stores a report; stored is false for a resend.
	SaveDMARCReport(ctx context.Context, r *models.DMARCReport) (stored bool, err error)
	// SaveTLSReport stores a TLS report; stored is false for a resend.
	SaveTLSReport(ctx context.Context, r *models.TLSReport) (stored bool, err error)
}

var _ ReportStore = (*models.Store)(nil)

// errReportRefused is the reply to a report that is malformed, too big or
// hostile: permanent, so the reporter does not send it again.
func errReportRefused(reason string) *smtp.SMTPError {
	return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "Report refused: " + reason}
}

// reportAddress says whether addr is the DMARC or TLS report address of a
// domain of ours; kind is 0 when it is not.
func (r *Recorder) reportAddress(ctx context.Context, addr string) (rcptKind, error) {
	if r.reports == nil {
		return 0, nil
	}
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 {
		return 0, nil
	}
	var kind rcptKind
	switch strings.ToLower(addr[:at]) {
	case DMARCLocalPart:
		kind = rcptDMARC
	case TLSLocalPart:
		kind = rcptTLS
	default:
		return 0, nil
	}
	domain := strings.ToLower(addr[at+1:])
	if r.domains[domain] {
		return kind, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ok, err := r.reports.IsReportDomain(ctx, domain)
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, nil
	}
	return kind, nil
}

// storeReports finds the report attachments of a message and stores them.
// found says the message held any; a report that cannot be read is a
// refusal (errReportRefused), a database failure an error.
func (r *Recorder) storeReports(ctx context.Context, raw []byte, src Source) (found bool, err error) {
	atts, err := authreport.Find(raw)
	if err != nil && len(atts) == 0 {
		return false, err
	}
	log := r.log.With("via", src.Via, "ip", src.IP, "from", src.From)
	for _, a := range atts {
		switch a.Kind {
		case authreport.KindDMARC:
			rep, err := authreport.ParseDMARC(a.Data, r.limits)
			if err != nil {
				log.Warn("DMARC report refused", "file", a.Filename, "bytes", len(a.Data), "reason", err)
				return true, err
			}
			m := dmarcRow(rep, src.Via)
			r.reverseNames(ctx, m.Records)
			stored, err := r.reports.SaveDMARCReport(ctx, m)
			if err != nil {
				return true, err
			}
			log.Info("DMARC report", "org", rep.OrgName, "report_id", rep.ReportID, "domain", rep.Policy.Domain,
				"records", len(rep.Records), "messages", m.Messages, "duplicate", !stored)
		case authreport.KindTLS:
			rep, err := authreport.ParseTLS(a.Data, r.limits)
			if err != nil {
				log.Warn("TLS report refused", "file", a.Filename, "bytes", len(a.Data), "reason", err)
				return true, err
			}
			stored, err := r.reports.SaveTLSReport(ctx, tlsRow(rep, src.Via))
			if err != nil {
				return true, err
			}
			log.Info("TLS report", "org", rep.OrgName, "report_id", rep.ReportID, "policies", len(rep.Policies), "duplicate", !stored)
		}
	}
	return len(atts) > 0, nil
}

// handleReport stores the reports of a message sent to a report address;
// a message holding none is refused, as is one whose report is unreadable.
func (r *Recorder) handleReport(ctx context.Context, raw []byte, src Source) error {
	found, err := r.storeReports(ctx, raw, src)
	var re *authreport.RefusedError
	switch {
	case errors.As(err, &re):
		return errReportRefused(re.Reason)
	case err != nil:
		return err
	case !found:
		return errReportRefused("the message holds no DMARC aggregate report (XML, gzip or zip) or TLS report (JSON or gzip)")
	}
	return nil
}

func dmarcRow(rep *authreport.DMARCReport, via string) *models.DMARCReport {
	p := rep.Policy
	policy := "p=" + p.P
	if p.SP != "" {
		policy += " sp=" + p.SP
	}
	if p.ADKIM != "" {
		policy += " adkim=" + p.ADKIM
	}
	if p.ASPF != "" {
		policy += " aspf=" + p.ASPF
	}
	if p.Pct > 0 {
		policy += " pct=" + strconv.Itoa(p.Pct)
	}
	m := &models.DMARCReport{Domain: p.Domain, OrgName: trunc(rep.OrgName, 200), Email: trunc(rep.Email, 200), ReportID: trunc(rep.ReportID, 200),
		DateBegin: rep.Begin, DateEnd: rep.End, Policy: policy, Via: via}
	for _, x := range rep.Records {
		rec := models.DMARCRecord{SourceIP: x.SourceIP, Count: x.Count, Disposition: trunc(x.Disposition, 20), DKIM: trunc(x.DKIM, 20), SPF: trunc(x.SPF, 20),
			HeaderFrom: trunc(x.HeaderFrom, 255), EnvelopeFrom: trunc(x.EnvelopeFrom, 255), Reasons: trunc(strings.Join(x.Reasons, " "), 255)}
		var dk, sp []string
		for _, a := range x.DKIMResults {
			dk = append(dk, field(a.Domain)+" "+field(a.Selector)+" "+field(a.Result))
		}
		for _, a := range x.SPFResults {
			sp = append(sp, field(a.Domain)+" "+field(a.Scope)+" "+field(a.Result))
		}
		rec.DKIMAuth, rec.SPFAuth = trunc(strings.Join(dk, "\n"), 2000), trunc(strings.Join(sp, "\n"), 2000)
		m.Records = append(m.Records, rec)
	}
	return m
}

func tlsRow(rep *authreport.TLSReport, via string) *models.TLSReport {
	m := &models.TLSReport{OrgName: trunc(rep.OrgName, 200), ReportID: trunc(rep.ReportID, 200), Contact: trunc(rep.Contact, 200),
		DateBegin: rep.DateRange.Start.UTC(), DateEnd: rep.DateRange.End.UTC(), Via: via}
	for _, p := range rep.Policies {
		var fl []string
		for _, f := range p.Failures {
			fl = append(fl, field(f.ResultType)+" "+field(f.SendingIP)+" "+field(f.ReceivingMX)+" "+strconv.FormatInt(f.FailedCount, 10))
		}
		m.Policies = append(m.Policies, models.TLSReportPolicy{PolicyType: trunc(p.Policy.Type, 40), PolicyDomain: trunc(p.Policy.Domain, 255),
			Success: p.Summary.Success, Failure: p.Summary.Failure, Failures: trunc(strings.Join(fl, "\n"), 8000)})
	}
	return m
}

// field makes a report value one word for the space-separated columns
// ("-" when empty).
func field(s string) string {
	s = strings.Join(strings.Fields(s), "_")
	if s == "" {
		return "-"
	}
	return trunc(s, 255)
}

func trunc(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// maxReverse bounds the reverse lookups for one report.
const maxReverse = 100

// reverseNames fills in the reverse DNS name of each record's address,
// when the recorder has a resolver: a few lookups at a time, within a few
// seconds in all; a name not found in time stays empty.
func (r *Recorder) reverseNames(ctx context.Context, recs []models.DMARCRecord) {
	if r.resolver == nil || len(recs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	names := map[string]string{}
	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		sem = make(chan struct{}, 8)
	)
	for _, rec := range recs {
		if _, seen := names[rec.SourceIP]; seen || len(names) >= maxReverse {
			continue
		}
		names[rec.SourceIP] = ""
		ip, err := netip.ParseAddr(rec.SourceIP)
		if err != nil {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if ptr, err := r.resolver.LookupAddr(ctx, ip); err == nil && len(ptr) > 0 {
				mu.Lock()
				names[ip.String()] = trunc(ptr[0], 255)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for i := range recs {
		recs[i].ReverseName = names[recs[i].SourceIP]
	}
}
