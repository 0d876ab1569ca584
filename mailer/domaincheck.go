package mailer

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/miekg/dns"

	"github.com/herald-mail/herald/models"
)

// RecordCheck is the state of one required DNS record.
type RecordCheck struct {
	models.DNSRecord
	OK      bool
	Found   []string // what the DNS answered for the name and type
	Problem string   // what is wrong, for people; "" when OK
}

// DomainCheck is the result of checking a sending domain's DNS.
type DomainCheck struct {
	Domain  string
	OK      bool // every record is right
	Records []RecordCheck
}

// JSON is the check as stored in sending_domains.dns_report.
func (c *DomainCheck) JSON() string {
	b, _ := json.Marshal(c)
	return string(b)
}

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
			rc.Problem = "lookup failed: " + err.Error()
		default:
			rc.OK, rc.Problem = judge(rec, rc.Found)
		}
		out.OK = out.OK && rc.OK
		out.Records = append(out.Records, rc)
	}
	return out
}

func judge(rec models.DNSRecord, found []string) (bool, string) {
	squash := func(s string) string { return strings.ToLower(strings.Join(strings.Fields(s), "")) }
	switch rec.Purpose {
	case "dkim", "dkim-ed25519":
		want := squash(rec.Value[strings.Index(rec.Value, "p="):])
		for _, f := range found {
			if strings.Contains(squash(f), want) {
				return true, ""
			}
		}
		if len(found) == 0 {
			return false, "missing: publish the DKIM key"
		}
		return false, "a DKIM record exists but holds another key"
	case "spf":
		for _, f := range found {
			if !strings.HasPrefix(strings.ToLower(f), "v=spf1") {
				continue
			}
			terms := strings.Fields(strings.ToLower(f))
			for _, need := range strings.Fields(strings.ToLower(rec.Value)) {
				if need == "v=spf1" || strings.HasSuffix(need, "all") {
					continue
				}
				ok := false
				for _, t := range terms {
					ok = ok || t == need
				}
				if !ok {
					return false, "the SPF record lacks " + need
				}
			}
			return true, ""
		}
		return false, "missing: publish the SPF record"
	case "dmarc":
		for _, f := range found {
			if strings.HasPrefix(strings.ToUpper(strings.TrimSpace(f)), "V=DMARC1") {
				return true, ""
			}
		}
		return false, "missing: publish a DMARC policy"
	case "return-path":
		want := strings.ToLower(strings.TrimSuffix(rec.Value, "."))
		for _, f := range found {
			got := strings.ToLower(strings.TrimSuffix(f, "."))
			if rec.Type == "MX" {
				if i := strings.IndexByte(got, ' '); i > 0 && strings.HasSuffix(want, got[i:]) {
					return true, ""
				}
			} else if got == want {
				return true, ""
			}
		}
		if len(found) == 0 {
			return false, "missing: publish the return-path " + rec.Type
		}
		return false, "the return-path " + rec.Type + " points elsewhere"
	}
	return false, "unknown record"
}
