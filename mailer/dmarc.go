package mailer

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/net/publicsuffix"

	"github.com/herald-mail/herald/models"
)

// DMARCRecord is a parsed DMARC policy record (RFC 7489 §6.3).
type DMARCRecord struct {
	Policy    string // p: none, quarantine or reject
	SubPolicy string // sp; "" when absent (subdomains then get Policy)
	ADKIM     string // "r" or "s"; "r" when absent
	ASPF      string // "r" or "s"; "r" when absent
	Pct       int    // 0–100; 100 when absent
	RUA, RUF  []string
}

// SubdomainPolicy is the policy the record asks for mail from subdomains
// of the domain it was found at.
func (r *DMARCRecord) SubdomainPolicy() string {
	if r.SubPolicy != "" {
		return r.SubPolicy
	}
	return r.Policy
}

// policyStrength orders DMARC policies from weakest to strongest.
func policyStrength(p string) int {
	return map[string]int{"none": 0, "quarantine": 1, "reject": 2}[p]
}

// isDMARC says whether a TXT record claims to be a DMARC record (receivers
// discard the others at _dmarc names).
func isDMARC(txt string) bool {
	v, _, _ := strings.Cut(txt, ";")
	k, val, ok := strings.Cut(v, "=")
	return ok && strings.TrimSpace(k) == "v" && strings.HasPrefix(strings.TrimSpace(val), "DMARC1")
}

// ParseDMARC parses a DMARC record strictly: v=DMARC1 first, p= present,
// known tags with valid values, no tag twice, rua and ruf lists of
// mailto: URIs. The error says what is wrong, for people.
func ParseDMARC(txt string) (*DMARCRecord, error) {
	r := &DMARCRecord{ADKIM: "r", ASPF: "r", Pct: 100}
	seen := map[string]bool{}
	for i, part := range strings.Split(txt, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			if i == 0 {
				return nil, errors.New("it does not start with v=DMARC1")
			}
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if i == 0 {
			if !ok || k != "v" || v != "DMARC1" {
				return nil, errors.New("it does not start with v=DMARC1 (the version tag must come first, exactly so)")
			}
			seen["v"] = true
			continue
		}
		if !ok {
			return nil, fmt.Errorf("%q is not a tag=value pair", part)
		}
		if seen[k] {
			return nil, fmt.Errorf("the %s= tag appears twice", k)
		}
		seen[k] = true
		switch k {
		case "v":
			return nil, errors.New("v= must be the first tag only")
		case "p", "sp":
			if v != "none" && v != "quarantine" && v != "reject" {
				return nil, fmt.Errorf("%s=%s is not a policy: use none, quarantine or reject", k, v)
			}
			if k == "p" {
				r.Policy = v
			} else {
				r.SubPolicy = v
			}
		case "adkim", "aspf":
			if v != "r" && v != "s" {
				return nil, fmt.Errorf("%s=%s is not an alignment mode: use r (relaxed) or s (strict)", k, v)
			}
			if k == "adkim" {
				r.ADKIM = v
			} else {
				r.ASPF = v
			}
		case "pct":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > 100 || v != strconv.Itoa(n) {
				return nil, fmt.Errorf("pct=%s is not a whole number from 0 to 100", v)
			}
			r.Pct = n
		case "rua", "ruf":
			uris, err := parseDMARCURIs(k, v)
			if err != nil {
				return nil, err
			}
			if k == "rua" {
				r.RUA = uris
			} else {
				r.RUF = uris
			}
		case "fo":
			for _, o := range strings.Split(v, ":") {
				if o = strings.TrimSpace(o); o != "0" && o != "1" && o != "d" && o != "s" {
					return nil, fmt.Errorf("fo=%s: failure options are 0, 1, d and s separated by colons", v)
				}
			}
		case "rf":
			for _, f := range strings.Split(v, ":") {
				if strings.TrimSpace(f) != "afrf" {
					return nil, fmt.Errorf("rf=%s: the only report format is afrf", v)
				}
			}
		case "ri":
			if n, err := strconv.ParseUint(v, 10, 32); err != nil || v != strconv.FormatUint(n, 10) {
				return nil, fmt.Errorf("ri=%s is not a number of seconds", v)
			}
		}
		// Other tags are ignored, as receivers must (RFC 7489 §6.3).
	}
	if r.Policy == "" {
		return nil, errors.New("it has no p= tag (the policy is required: p=none, p=quarantine or p=reject)")
	}
	return r, nil
}

// parseDMARCURIs checks a comma-separated list of report URIs, each
// optionally followed by a size limit ("!10m").
func parseDMARCURIs(tag, v string) ([]string, error) {
	var out []string
	for _, raw := range strings.Split(v, ",") {
		raw = strings.TrimSpace(raw)
		u := raw
		if i := strings.LastIndexByte(raw, '!'); i >= 0 {
			size := strings.TrimRight(raw[i+1:], "kmgt")
			if len(raw[i+1:])-len(size) > 1 || size == "" || strings.Trim(size, "0123456789") != "" {
				return nil, fmt.Errorf("%s=%s: %q has an invalid size limit (e.g. !10m)", tag, v, raw)
			}
			u = raw[:i]
		}
		if u == "" {
			return nil, fmt.Errorf("%s= has an empty report address", tag)
		}
		pu, err := url.Parse(u)
		if err != nil || pu.Scheme == "" {
			hint := ""
			if strings.Contains(u, "@") {
				hint = " (write " + tag + "=mailto:" + u + ")"
			}
			return nil, fmt.Errorf("%s=%s: %q is not a URI%s", tag, v, u, hint)
		}
		if !strings.EqualFold(pu.Scheme, "mailto") {
			return nil, fmt.Errorf("%s=%s: %q is not a mailto: URI; receivers send reports by mail only", tag, v, u)
		}
		addr := pu.Opaque
		if addr == "" {
			addr = pu.Path
		}
		if a, err := mail.ParseAddress(addr); err != nil || a.Address != addr || !strings.Contains(addr[strings.IndexByte(addr, '@')+1:], ".") {
			return nil, fmt.Errorf("%s=%s: %q is not a valid mail address", tag, v, addr)
		}
		out = append(out, u)
	}
	return out, nil
}

// OrgDomain is a domain's organisational domain (RFC 7489 §3.2): its
// registrable part by the Public Suffix List (news.example.co.uk →
// example.co.uk). A name that is itself a public suffix is its own.
func OrgDomain(domain string) string {
	domain = strings.TrimSuffix(strings.ToLower(domain), ".")
	org, err := publicsuffix.EffectiveTLDPlusOne(domain)
	if err != nil {
		return domain
	}
	return org
}

// DMARCPolicy is what DMARC discovery found for a domain.
type DMARCPolicy struct {
	Domain string       // where the record was found (the domain or its organisational domain); "" when none
	Raw    string       // the record as published
	Record *DMARCRecord // nil when none or invalid
	Err    error        // why the record found is invalid, or why there are several
}

// Effective is the policy that applies to mail from domain under p.
func (p *DMARCPolicy) Effective(domain string) string {
	if p.Record == nil {
		return ""
	}
	if p.Domain != strings.ToLower(domain) {
		return p.Record.SubdomainPolicy()
	}
	return p.Record.Policy
}

// DiscoverDMARC finds the DMARC policy of domain as a receiver does (RFC
// 7489 §6.6.3): _dmarc.domain, then _dmarc of the organisational domain.
// The first answer is the domain's own; org is the organisational
// domain's, nil when the domain is itself organisational.
func DiscoverDMARC(ctx context.Context, res *Resolver, domain string) (own, org *DMARCPolicy, err error) {
	domain = strings.ToLower(domain)
	own, err = lookupDMARC(ctx, res, domain)
	if err != nil {
		return nil, nil, err
	}
	if o := OrgDomain(domain); o != domain {
		if org, err = lookupDMARC(ctx, res, o); err != nil {
			return nil, nil, err
		}
	}
	return own, org, nil
}

func lookupDMARC(ctx context.Context, res *Resolver, domain string) (*DMARCPolicy, error) {
	txts, err := res.LookupTXT(ctx, "_dmarc."+domain)
	if err != nil {
		return nil, err
	}
	p := &DMARCPolicy{}
	var recs []string
	for _, t := range txts {
		if isDMARC(t) {
			recs = append(recs, t)
		}
	}
	switch len(recs) {
	case 0:
		if len(txts) > 0 {
			p.Domain, p.Raw = domain, txts[0]
			_, p.Err = ParseDMARC(txts[0])
		}
		return p, nil
	case 1:
		p.Domain, p.Raw = domain, recs[0]
		p.Record, p.Err = ParseDMARC(recs[0])
	default:
		p.Domain, p.Raw = domain, strings.Join(recs, " | ")
		p.Err = fmt.Errorf("%d DMARC records are published at _dmarc.%s; receivers then apply none of them", len(recs), domain)
	}
	return p, nil
}

// Alignment is how a message's identities line up with its From domain.
type Alignment = models.DNSAlignment

// Align computes DKIM and SPF alignment of a message from from, signed
// with d= dkimDomain and sent with an envelope from envelope, under rec's
// modes (relaxed when rec is nil).
func Align(from, dkimDomain, envelope string, rec *DMARCRecord) Alignment {
	a := Alignment{From: strings.ToLower(from), DKIMDomain: strings.ToLower(dkimDomain), Envelope: strings.ToLower(envelope), ADKIM: "r", ASPF: "r"}
	if rec != nil {
		a.ADKIM, a.ASPF = rec.ADKIM, rec.ASPF
	}
	a.DKIM = a.DKIMDomain != "" && aligned(a.ADKIM, a.From, a.DKIMDomain)
	a.SPF = a.Envelope != "" && aligned(a.ASPF, a.From, a.Envelope)
	return a
}

func aligned(mode, a, b string) bool {
	if mode == "s" {
		return a == b
	}
	return OrgDomain(a) == OrgDomain(b)
}
