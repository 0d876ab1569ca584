package mailer

import (
	"context"
	"fmt"
	"strings"

	"github.com/miekg/dns"

	"github.com/herald-mail/herald/models"
)

// RecordCheck is the state of one required DNS record.
type RecordCheck = models.DNSRecordCheck

// DomainCheck is the result of checking a sending domain's DNS; its JSON
// method gives the form stored in sending_domains.dns_report.
type DomainCheck = models.DNSCheck

// CheckDomain looks up every record the domain needs (DKIM, SPF, DMARC,
// return path) through res and says which are right and which are missing
// or wrong. Save the outcome with the store's SaveDNSCheck(ctx, id, c.OK,
// c.JSON()).
func CheckDomain(ctx context.Context, res *Resolver, d *models.SendingDomain, o models.DNSRecordOptions) *DomainCheck {
	out := &DomainCheck{Domain: d.Domain, OK: true}
	for _, rec := range d.DNSRecords(o) {
		rc := RecordCheck{DNSRecord: rec}
		var err error
		switch rec.Type {
		case "TXT":
			rc.Found, err = res.LookupTXT(ctx, rec.Name)
		case "MX":
			rc.Found, err = res.LookupRaw(ctx, rec.Name, dns.TypeMX)
		case "CNAME":
			rc.Found, err = res.LookupRaw(ctx, rec.Name, dns.TypeCNAME)
		}
		switch {
		case err != nil:
			rc.State, rc.Problem = models.RecordError, "the lookup failed: "+err.Error()
		default:
			rc.State, rc.Problem = judge(rec, rc.Found)
		}
		rc.OK = rc.State == models.RecordOK
		rc.Fix = fixHint(rc)
		out.OK = out.OK && rc.OK
		out.Records = append(out.Records, rc)
	}
	return out
}

// fixHint says what to do about a record that is not right.
func fixHint(rc RecordCheck) string {
	switch rc.State {
	case models.RecordOK:
		return ""
	case models.RecordError:
		return "Try again in a minute; if it keeps failing, check that Herald's DNS server answers."
	case models.RecordMissing:
		return "Add a " + rc.Type + " record named " + rc.Name + " with the value shown, at your DNS host. New records can take up to an hour to appear."
	}
	switch rc.Purpose {
	case "spf":
		return "Edit the SPF record of " + rc.Name + " to the value shown (keep one SPF record per name: merge any other include: terms into it)."
	case "dkim", "dkim-ed25519":
		return "Replace the TXT record at " + rc.Name + " with the value shown; copy it whole (long values may be split into several quoted strings)."
	}
	return "Change the " + rc.Type + " record of " + rc.Name + " to the value shown."
}

func judge(rec models.DNSRecord, found []string) (string, string) {
	const (
		ok      = models.RecordOK
		missing = models.RecordMissing
		wrong   = models.RecordWrong
	)
	squash := func(s string) string { return strings.ToLower(strings.Join(strings.Fields(s), "")) }
	switch rec.Purpose {
	case "dkim", "dkim-ed25519":
		want := squash(rec.Value[strings.Index(rec.Value, "p="):])
		for _, f := range found {
			if strings.Contains(squash(f), want) {
				return ok, ""
			}
		}
		if len(found) == 0 {
			return missing, "no DKIM key is published at " + rec.Name
		}
		return wrong, "a DKIM record exists but holds another key"
	case "spf":
		if n := countPrefix(found, "v=spf1"); n > 1 {
			return wrong, fmt.Sprintf("%d SPF records are published at %s; receivers treat that as an error", n, rec.Name)
		}
		for _, f := range found {
			if !strings.HasPrefix(strings.ToLower(f), "v=spf1") {
				continue
			}
			terms := strings.Fields(strings.ToLower(f))
			for _, need := range strings.Fields(strings.ToLower(rec.Value)) {
				if need == "v=spf1" || strings.HasSuffix(need, "all") {
					continue
				}
				found := false
				for _, t := range terms {
					found = found || t == need
				}
				if !found {
					return wrong, "the SPF record lacks " + need
				}
			}
			return ok, ""
		}
		return missing, "no SPF record (v=spf1 …) is published at " + rec.Name
	case "dmarc":
		if n := countPrefix(found, "v=dmarc1"); n > 1 {
			return wrong, fmt.Sprintf("%d DMARC records are published at %s; receivers ignore them all", n, rec.Name)
		}
		for _, f := range found {
			if strings.HasPrefix(strings.ToUpper(strings.TrimSpace(f)), "V=DMARC1") {
				return ok, ""
			}
		}
		if len(found) > 0 {
			return wrong, "the TXT record at " + rec.Name + " is not a DMARC policy (it must start with v=DMARC1)"
		}
		return missing, "no DMARC policy is published at " + rec.Name
	case "return-path":
		want := strings.ToLower(strings.TrimSuffix(rec.Value, "."))
		for _, f := range found {
			got := strings.ToLower(strings.TrimSuffix(f, "."))
			if rec.Type == "MX" {
				if i := strings.IndexByte(got, ' '); i > 0 && strings.HasSuffix(want, got[i:]) {
					return ok, ""
				}
			} else if got == want {
				return ok, ""
			}
		}
		if len(found) == 0 {
			return missing, "no " + rec.Type + " record is published at " + rec.Name
		}
		return wrong, "the " + rec.Type + " record of " + rec.Name + " points to " + strings.Join(found, ", ")
	}
	return wrong, "unknown record"
}

// countPrefix counts the records starting with prefix (case-insensitive).
func countPrefix(found []string, prefix string) int {
	n := 0
	for _, f := range found {
		if strings.HasPrefix(strings.ToLower(strings.TrimSpace(f)), prefix) {
			n++
		}
	}
	return n
}
