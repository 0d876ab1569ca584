package mailer

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/herald-mail/herald/models"
)

// dnsOverrideStore reads the admin overrides of the DNS rule;
// *models.Store implements it. A ReadinessStore without it has none.
type dnsOverrideStore interface {
	CampaignDNSOverride(ctx context.Context, campaignID int64) (*models.CampaignDNSOverride, error)
}

// sendingIPStore lists the sending addresses the panel checks the reverse
// DNS of; *models.Store implements it.
type sendingIPStore interface {
	AllSendingIPs(ctx context.Context) ([]models.SendingIP, error)
}

var (
	_ dnsOverrideStore = (*models.Store)(nil)
	_ sendingIPStore   = (*models.Store)(nil)
)

// isCapture says whether a transport only keeps messages in the outbox,
// looking through wrappers that say what they wrap (not through Staging,
// which delivers some messages for real).
func isCapture(t Transport) bool { return wraps[*Capture](t) }

// wraps says whether t is, or wraps, a transport of type T, looking
// through wrappers that say what they wrap (Unwrap).
func wraps[T Transport](t Transport) bool {
	for t != nil {
		if _, ok := t.(T); ok {
			return true
		}
		u, ok := t.(interface{ Unwrap() Transport })
		if !ok {
			return false
		}
		t = u.Unwrap()
	}
	return false
}

// unthrottled is r without its rates and per-connection cap. The rates
// protect a receiving server's patience and the sender's reputation;
// capture delivers to nobody, so 500 captured messages take a moment, not
// the minutes the default rule would spread them over.
func unthrottled(r models.DomainRule) models.DomainRule {
	r.PerSecond, r.PerMinute, r.PerHour, r.MaxPerConnection = 0, 0, 0, 0
	return r
}

// isDirect says whether a transport delivers to MX hosts itself, looking
// through wrappers that say what they wrap.
func isDirect(t Transport) bool { return wraps[*Direct](t) }

// DNSOverridable reports whether a check is the DNS rule an admin may
// override for one campaign.
func DNSOverridable(c Check) bool { return c.ID == "campaign.dns" && !c.OK && c.Blocking }

// dnsGate is the rule that a campaign delivered directly starts only when
// its From domain's last DNS check passed (DKIM, SPF, DMARC and return
// path right, DKIM or SPF aligned with the From domain), or an admin
// overrode it for this campaign and domain.
func (r *Readiness) dnsGate(ctx context.Context, cp *models.Campaign) Check {
	direct := r.DirectTransport && cp.Transport == ""
	from := strings.ToLower(models.EmailDomain(cp.FromEmail))
	c := Check{ID: "campaign.dns", Title: "The From domain's DNS check passes", Blocking: direct, OK: true}
	sd := gateSendingDomain(ctx, r.Store, cp)
	domain := from
	var chk *models.DNSCheck
	switch {
	case sd == nil:
		c.OK, c.Detail = false, "No sending domain covers "+from+", so its DNS was never checked."
	case sd.DNSCheckedAt == nil:
		domain = sd.Domain
		c.OK, c.Detail = false, "The DNS of "+sd.Domain+" was never checked."
	default:
		domain = sd.Domain
		when := sd.DNSCheckedAt.UTC().Format("2006-01-02 15:04 UTC")
		chk = sd.LastCheck()
		var problems, unsure []string
		if chk == nil {
			problems = append(problems, "the stored result could not be read")
		} else {
			for _, rc := range chk.Records {
				switch {
				case rc.State == models.RecordIncomplete:
					unsure = append(unsure, strings.ToUpper(rc.Purpose)+" "+rc.Name)
				case !rc.OK:
					problems = append(problems, strings.ToUpper(rc.Purpose)+" "+rc.Name+": "+rc.Problem)
				}
			}
		}
		if chk != nil && direct {
			problems = append(problems, r.uncheckedAddresses(ctx, chk)...)
		}
		if len(problems) > 0 {
			c.OK, c.Detail = false, "The last DNS check of "+sd.Domain+" ("+when+") failed: "+strings.Join(problems, "; ")+"."
			break
		}
		if len(unsure) > 0 {
			// Valid, but Herald cannot tell whether it names every
			// source: the domain page says so; it does not block.
			c.Detail = "The records of " + sd.Domain + " are valid at the last check (" + when + "), but Herald cannot confirm that " +
				strings.Join(unsure, ", ") + " covers every server the mail leaves from (see the domain's page)."
		} else {
			c.Detail = "All records of " + sd.Domain + " right at the last check (" + when + ")."
		}
		if a := chk.Alignment; a != nil && from != sd.Domain {
			// A From on a subdomain: align under the modes the check found.
			al := Align(from, sd.Domain, sd.ReturnPathDomain, &DMARCRecord{ADKIM: a.ADKIM, ASPF: a.ASPF})
			if !al.DKIM && !al.SPF {
				c.OK, c.Detail = false, "DMARC fails for mail From "+from+": "+al.Explain()+"."
			} else {
				c.Detail += " " + al.Explain() + "."
			}
		}
	}
	if c.OK {
		return c
	}
	c.FixHint = "Publish the records listed under Deliverability → Sending domains"
	if sd != nil {
		c.FixHint += " → " + sd.Domain
	}
	c.FixHint += " and run Check DNS. An admin can let this campaign start anyway from its page; the override is kept in the audit log."
	if ov, ok := r.Store.(dnsOverrideStore); ok {
		o, err := ov.CampaignDNSOverride(ctx, cp.ID)
		if err == nil && o.Domain == domain {
			c.OK = true
			c.Detail += fmt.Sprintf(" Overridden by %s on %s: “%s”.", o.UserEmail, o.CreatedAt.UTC().Format("2006-01-02 15:04 UTC"), o.Reason)
			c.FixHint = ""
			return c
		}
	}
	if !direct {
		c.Detail += " (This campaign does not deliver directly, so this only warns.)"
	}
	return c
}

// uncheckedAddresses names the active sending addresses the stored check's
// SPF record did not cover (added to a pool since): the check no longer
// says whether their mail passes SPF.
func (r *Readiness) uncheckedAddresses(ctx context.Context, chk *models.DNSCheck) []string {
	ls, ok := r.Store.(sendingIPStore)
	if !ok {
		return nil
	}
	var spf *models.DNSRecordCheck
	for i := range chk.Records {
		if chk.Records[i].Purpose == "spf" {
			spf = &chk.Records[i]
		}
	}
	if spf == nil {
		return nil // the return path is a CNAME to a hosted bounce domain
	}
	ips, err := ls.AllSendingIPs(ctx)
	if err != nil {
		return []string{"the sending addresses could not be read"}
	}
	terms := map[string]bool{}
	for _, t := range strings.Fields(spf.Value) {
		terms[t] = true
	}
	var missing []string
	for _, ip := range ips {
		if a, err := netip.ParseAddr(ip.Address); err == nil && ip.Active && !terms["ip4:"+a.String()] && !terms["ip6:"+a.String()] {
			missing = append(missing, ip.Address)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return []string{"sending addresses added since (" + strings.Join(missing, ", ") + ") are not in the SPF record checked; publish the new value and run Check DNS again"}
}

// DNSGateDomain is the domain whose DNS the campaign's DNS rule reads:
// the sending domain covering its From, or the From domain itself.
func DNSGateDomain(ctx context.Context, rs ReadinessStore, cp *models.Campaign) string {
	if sd := gateSendingDomain(ctx, rs, cp); sd != nil {
		return sd.Domain
	}
	return strings.ToLower(models.EmailDomain(cp.FromEmail))
}

// gateSendingDomain is the sending domain whose DNS check the campaign's
// DNS rule reads: the one whose key signs the campaign's mail
// (models.SigningDomain, the decision the engine and the DKIM rule use);
// nil when none covers the From domain.
func gateSendingDomain(ctx context.Context, rs ReadinessStore, cp *models.Campaign) *models.SendingDomain {
	var chosen *models.SendingDomain
	if cp.SendingDomainID != nil {
		chosen, _ = rs.SendingDomain(ctx, *cp.SendingDomainID)
	}
	ds, err := rs.SendingDomains(ctx)
	if err != nil {
		return nil
	}
	return models.SigningDomain(ds, chosen, models.EmailDomain(cp.FromEmail))
}

// hostChecks are the panel's rules on how direct delivery introduces
// itself: a fully qualified EHLO name, and reverse DNS of every sending
// address that resolves back to it (FCrDNS).
func (r *Readiness) hostChecks(ctx context.Context) []Check {
	var out []Check
	var ips []models.SendingIP
	if ls, ok := r.Store.(sendingIPStore); ok {
		all, err := ls.AllSendingIPs(ctx)
		if err != nil {
			return []Check{{ID: "org.fcrdns", Title: "Each sending address has reverse DNS that resolves back to it", Detail: "The sending addresses could not be read."}}
		}
		for _, ip := range all {
			if ip.Active {
				ips = append(ips, ip)
			}
		}
	}
	if r.Hostname != "" {
		c := Check{ID: "org.ehlo", Title: "The EHLO name is a fully qualified domain name", OK: true}
		var bad []string
		if !FullyQualified(r.Hostname) {
			bad = append(bad, r.Hostname+" (the default, -hostname)")
		}
		for _, ip := range ips {
			if ip.HELO != "" && !FullyQualified(ip.HELO) {
				bad = append(bad, ip.HELO+" (of "+ip.Address+")")
			}
		}
		if len(bad) > 0 {
			c.OK, c.Detail = false, "Not fully qualified: "+strings.Join(bad, ", ")+"."
			c.FixHint = "Receivers distrust a greeting that is not a full domain name: set -hostname (HERALD_HOSTNAME) to the name your sending address's reverse DNS gives, e.g. mail.example.com."
		} else {
			c.Detail = "Direct delivery greets as " + r.Hostname + "."
		}
		out = append(out, c)
	}
	if r.Resolver == nil {
		return out
	}
	c := Check{ID: "org.fcrdns", Title: "Each sending address has reverse DNS that resolves back to it", OK: true}
	if len(ips) == 0 {
		if r.DirectTransport {
			c.OK = false
			c.Detail = "No sending addresses are configured: mail leaves from the machine's default address, whose reverse DNS Herald cannot check."
			c.FixHint = "Add the machine's public addresses under Deliverability → Rules & IPs, and have your hosting provider set their reverse DNS to the EHLO name."
			out = append(out, c)
		}
		return out
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var good, bad []string
	for _, ip := range ips {
		a, err := netip.ParseAddr(ip.Address)
		if err != nil {
			continue
		}
		helo := ip.HELO
		if helo == "" {
			helo = r.Hostname
		}
		f := CheckFCrDNS(ctx, r.Resolver, a)
		switch {
		case f.Err != nil && !errors.Is(f.Err, ErrNoDomain):
			bad = append(bad, ip.Address+": the reverse lookup failed ("+f.Err.Error()+")")
		case len(f.Names) == 0:
			bad = append(bad, ip.Address+" has no reverse DNS (PTR) record")
		case f.Confirmed == "":
			bad = append(bad, ip.Address+"'s reverse DNS names "+strings.Join(f.Names, ", ")+", which does not resolve back to "+ip.Address)
		case helo != "" && !strings.EqualFold(strings.TrimSuffix(helo, "."), f.Confirmed):
			bad = append(bad, ip.Address+" greets as "+helo+" but its reverse DNS is "+f.Confirmed)
		default:
			good = append(good, ip.Address+" ↔ "+f.Confirmed)
		}
	}
	if len(bad) > 0 {
		c.OK = false
		c.Detail = strings.Join(bad, "; ") + "."
		c.FixHint = "Ask the provider of each address to set its reverse DNS (PTR) to the EHLO name, and publish an A (or AAAA) record for that name pointing to the address; Gmail and others refuse or junk mail from addresses without it."
	} else {
		c.Detail = strings.Join(good, ", ") + "."
	}
	return append(out, c)
}
