package mailer

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
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
// or wrong, and why. SPF is parsed and evaluated as receivers do (syntax,
// the 10-lookup limit through every include, void lookups, and the result
// for each of o.SendingIPs); DMARC is parsed strictly and discovered as
// receivers do, falling back to the organisational domain; the alignment
// of DKIM (d= the domain) and SPF (the return path) under the published
// adkim and aspf is computed. Save the outcome with the store's
// SaveDNSCheck(ctx, id, c.OK, c.JSON()).
func CheckDomain(ctx context.Context, res *Resolver, d *models.SendingDomain, o models.DNSRecordOptions) *DomainCheck {
	out := &DomainCheck{Domain: d.Domain, OK: true, OrgDomain: OrgDomain(d.Domain)}
	own, org, dmarcErr := DiscoverDMARC(ctx, res, d.Domain)
	if org != nil && org.Record != nil {
		out.OrgDMARC = &models.OrgDMARC{Domain: org.Domain, Policy: org.Record.SubdomainPolicy(), ADKIM: org.Record.ADKIM, ASPF: org.Record.ASPF}
	}
	o.OrgDMARC = out.OrgDMARC
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
		if rec.Purpose == "dmarc" && err == nil {
			err = dmarcErr
		}
		switch {
		case err != nil:
			rc.State, rc.Problem = models.RecordError, "the lookup failed: "+err.Error()
		case rec.Purpose == "spf":
			judgeSPF(ctx, res, &rc, o)
		case rec.Purpose == "dmarc":
			judgeDMARC(&rc, d.Domain, own, org)
			noteRUA(&rc, own, org)
		case rec.Purpose == "tlsrpt":
			judgeTLSRPT(&rc)
		default:
			rc.State, rc.Problem = judge(rec, rc.Found)
		}
		rc.OK = rc.State == models.RecordOK
		rc.Fix = fixHint(rc)
		if rec.Purpose != "tlsrpt" { // optional: a wrong one is no fault of the domain's mail
			out.OK = out.OK && rc.OK
		}
		out.Records = append(out.Records, rc)
	}
	if pol := applied(own, org); pol != nil {
		a := Align(d.Domain, d.Domain, d.ReturnPathDomain, pol.Record)
		a.PolicyDomain, a.Policy = pol.Domain, pol.Effective(d.Domain)
		out.Alignment = &a
		for i := range out.Records {
			if r := &out.Records[i]; r.Purpose == "dmarc" {
				r.Notes = append(r.Notes, "Alignment of mail From "+d.Domain+": "+a.Explain()+".")
				if !a.DKIM && !a.SPF {
					r.State, r.OK, out.OK = models.RecordWrong, false, false
					r.Problem = "neither DKIM nor SPF aligns with " + d.Domain + " under this policy, so DMARC fails for its mail"
					r.Fix = fixHint(*r)
				}
			}
		}
	}
	return out
}

// applied is the DMARC policy receivers apply to the domain: its own
// valid record, else its organisational domain's.
func applied(own, org *DMARCPolicy) *DMARCPolicy {
	switch {
	case own != nil && own.Domain != "":
		if own.Record != nil {
			return own
		}
		return nil
	case org != nil && org.Record != nil:
		return org
	}
	return nil
}

// judgeSPF parses and evaluates the SPF record of the return-path domain.
func judgeSPF(ctx context.Context, res *Resolver, rc *RecordCheck, o models.DNSRecordOptions) {
	recs := spfRecords(rc.Found)
	switch len(recs) {
	case 0:
		rc.State, rc.Problem = models.RecordMissing, "no SPF record (v=spf1 …) is published at "+rc.Name
		return
	case 1:
	default:
		rc.State, rc.Problem = models.RecordWrong, fmt.Sprintf("%d SPF records are published at %s; receivers answer permerror, so SPF fails", len(recs), rc.Name)
		return
	}
	rec, err := ParseSPF(recs[0])
	if err != nil {
		rc.State, rc.Problem = models.RecordWrong, "the SPF record is invalid ("+err.Error()+"); receivers answer permerror, so SPF fails"
		return
	}
	var ips []netip.Addr
	for _, s := range o.SendingIPs {
		if a, err := netip.ParseAddr(s); err == nil {
			ips = append(ips, a)
		}
	}
	ev := EvaluateSPF(ctx, res, rc.Name, ips)
	rc.Notes = append(rc.Notes, fmt.Sprintf("%d of the %d DNS lookups SPF allows.", ev.Lookups, spfMaxLookups))
	if ev.Err != nil {
		var pe *spfPermError
		if errors.As(ev.Err, &pe) {
			rc.State, rc.Problem = models.RecordWrong, "the SPF policy is broken: "+pe.Error()+"; receivers answer permerror, so SPF fails"
		} else {
			rc.State, rc.Problem = models.RecordError, "the lookup failed: "+ev.Err.Error()
		}
		return
	}
	var all *SPFTerm
	for i := range rec.Terms {
		if rec.Terms[i].Mechanism == "all" {
			all = &rec.Terms[i]
			break
		}
	}
	switch {
	case len(rec.Terms) == 0 || len(rec.Terms) == 1 && all != nil && rec.Redirect == "":
		if all == nil || all.Qualifier != '+' {
			rc.State, rc.Problem = models.RecordWrong, "the record "+recs[0]+" authorises no server at all, so mail with this return path never passes SPF"
			return
		}
		fallthrough
	case all != nil && all.Qualifier == '+':
		rc.State, rc.Problem = models.RecordWrong, "the record ends in +all, which authorises every server on the internet to send as "+rc.Name
		return
	}
	var bad []string
	for _, ip := range ips {
		r, term := ev.Results[ip.String()], ev.Matched[ip.String()]
		if term == "" {
			term = "no term matches"
		}
		rc.Notes = append(rc.Notes, fmt.Sprintf("Sending address %s: %s (%s).", ip, r, term))
		if r != SPFPass {
			bad = append(bad, fmt.Sprintf("%s gets %s (%s)", ip, r, term))
		}
	}
	if len(bad) > 0 {
		rc.State, rc.Problem = models.RecordWrong, "the SPF record does not authorise Herald's sending addresses: "+strings.Join(bad, "; ")+
			"; add "+spfTerms(ips)+" to it"
		return
	}
	for _, need := range strings.Fields(strings.ToLower(rc.Value)) {
		if !strings.HasPrefix(need, "include:") {
			continue
		}
		found := false
		for _, t := range rec.Terms {
			found = found || t.Mechanism == "include" && strings.EqualFold(t.Domain, need[len("include:"):])
		}
		if !found {
			rc.State, rc.Problem = models.RecordWrong, "the SPF record lacks "+need+" (the servers of your relay)"
			return
		}
	}
	if rc.Incomplete {
		rc.State, rc.Problem = models.RecordIncomplete, "the record is valid, but Herald cannot tell whether it covers every server your mail leaves from: "+rc.Note
		return
	}
	rc.State = models.RecordOK
}

func spfTerms(ips []netip.Addr) string {
	var out []string
	for _, ip := range ips {
		if ip.Is4() {
			out = append(out, "ip4:"+ip.String())
		} else {
			out = append(out, "ip6:"+ip.String())
		}
	}
	return strings.Join(out, " ")
}

// judgeDMARC judges the DMARC record of domain: its own record (valid,
// and no weaker than its organisational domain's policy for
// subdomains), or the organisational domain's when it has none.
func judgeDMARC(rc *RecordCheck, domain string, own, org *DMARCPolicy) {
	switch {
	case own != nil && own.Domain != "":
		if own.Err != nil {
			rc.State, rc.Problem = models.RecordWrong, "the DMARC record at _dmarc."+domain+" is invalid: "+own.Err.Error()
			return
		}
		r := own.Record
		rc.Notes = append(rc.Notes, fmt.Sprintf("Policy p=%s for %s.", r.Policy, domain))
		if r.Pct < 100 {
			rc.Notes = append(rc.Notes, fmt.Sprintf("pct=%d: the policy applies to %d%% of failing mail only.", r.Pct, r.Pct))
		}
		if org != nil && org.Record != nil && policyStrength(r.Policy) < policyStrength(org.Record.SubdomainPolicy()) {
			rc.State = models.RecordWrong
			rc.Problem = fmt.Sprintf("p=%s here is weaker than the policy %s sets for its subdomains (p=%s): this record overrides it, so receivers apply the weaker one to %s",
				r.Policy, org.Domain, org.Record.SubdomainPolicy(), domain)
			return
		}
		rc.State = models.RecordOK
	case org != nil && org.Domain != "":
		rc.Found = []string{org.Raw}
		if org.Err != nil {
			rc.State, rc.Problem = models.RecordWrong, "no DMARC record at _dmarc."+domain+", and the one at _dmarc."+org.Domain+" that applies to it is invalid: "+org.Err.Error()
			return
		}
		rc.State = models.RecordOK
		rc.Notes = append(rc.Notes, fmt.Sprintf("No record at _dmarc.%s: the policy of the organisational domain %s applies (p=%s for subdomains).",
			domain, org.Domain, org.Record.SubdomainPolicy()))
	default:
		rc.State, rc.Problem = models.RecordMissing, "no DMARC policy is published at _dmarc."+domain
		if o := OrgDomain(domain); o != domain {
			rc.Problem += " or at _dmarc." + o
		}
	}
}

// fixHint says what to do about a record that is not right.
func fixHint(rc RecordCheck) string {
	switch rc.State {
	case models.RecordOK:
		return ""
	case models.RecordError:
		return "Try again in a minute; if it keeps failing, check that Herald's DNS server answers."
	case models.RecordIncomplete:
		return "Make sure the SPF record of " + rc.Name + " names every server your mail leaves from, and tell Herald about them (sending addresses under Rules & IPs, or the relay's include on this domain) so it can check."
	case models.RecordMissing:
		if rc.Incomplete && rc.Value == "" {
			return "Publish a TXT record at " + rc.Name + " naming your sending servers (e.g. v=spf1 ip4:<your server's public address> ~all)."
		}
		return "Add a " + rc.Type + " record named " + rc.Name + " with the value shown, at your DNS host. New records can take up to an hour to appear."
	}
	switch rc.Purpose {
	case "spf":
		if rc.Value == "" {
			return "Edit the SPF record of " + rc.Name + " so that it is valid and names every server your mail leaves from."
		}
		return "Edit the SPF record of " + rc.Name + " to the value shown (keep one SPF record per name: merge any other include: terms into it)."
	case "tlsrpt":
		return "Replace the TXT records at " + rc.Name + " with the one value shown."
	case "dmarc":
		return "Replace the TXT record at " + rc.Name + " with the value shown (one record starting v=DMARC1, with p=, and report addresses written mailto:…)."
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

// noteRUA says, beside a DMARC record that is right, whether its reports
// reach Herald: the advised rua address must be among the record's.
func noteRUA(rc *RecordCheck, own, org *DMARCPolicy) {
	pol := own
	if pol == nil || pol.Domain == "" {
		pol = org
	}
	if pol == nil || pol.Record == nil {
		return
	}
	_, want, _ := strings.Cut(rc.Value, "rua=")
	want, _, _ = strings.Cut(want, ";")
	want = strings.ToLower(strings.TrimSpace(want))
	for _, u := range pol.Record.RUA {
		if strings.EqualFold(strings.TrimSpace(u), want) || strings.HasPrefix(strings.ToLower(u), want+"!") {
			rc.Notes = append(rc.Notes, "Aggregate reports come to Herald ("+strings.TrimPrefix(want, "mailto:")+"): see the domain's Reports page.")
			return
		}
	}
	rc.Notes = append(rc.Notes, "Aggregate reports do not come to Herald: add "+want+" to the record's rua= to see who sends as the domain on its Reports page.")
}

// judgeTLSRPT checks an optional TLS-RPT record: one v=TLSRPTv1 record
// whose rua names the advised address.
func judgeTLSRPT(rc *RecordCheck) {
	_, want, _ := strings.Cut(rc.Value, "rua=")
	want = strings.ToLower(strings.TrimSpace(want))
	var recs []string
	for _, f := range rc.Found {
		if strings.HasPrefix(strings.ReplaceAll(f, " ", ""), "v=TLSRPTv1;") {
			recs = append(recs, f)
		}
	}
	switch {
	case len(recs) == 0:
		// Optional: not publishing it is no fault, only a missed view.
		rc.State = models.RecordOK
		rc.Notes = append(rc.Notes, "Not published (optional): publish it to receive TLS reports about Herald's inbound server.")
	case len(recs) > 1:
		rc.State, rc.Problem = models.RecordWrong, "more than one TLS-RPT record is published at "+rc.Name+": receivers ignore them all"
	case !strings.Contains(strings.ToLower(recs[0]), want):
		rc.State = models.RecordOK
		rc.Notes = append(rc.Notes, "TLS reports go elsewhere: add "+want+" to the record's rua= to see them in Herald.")
	default:
		rc.State = models.RecordOK
	}
}
