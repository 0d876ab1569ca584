package models

import "strings"

// ProviderOther is the provider of a recipient no domain rule matches.
const ProviderOther = "other"

// Providers rolls recipient domains up to the mailbox providers named by the
// domain rules (google, yahoo, microsoft, apple and any an admin adds): a
// rule matches a recipient domain exactly, or the primary MX host by
// suffix. It is the one place that matching is written, so the mailer's
// shaping and the reports agree on who "Gmail" is. It lives in models
// because the mailer imports models and models imports nothing of ours.
type Providers struct {
	rules []providerRule
}

type providerRule struct {
	name       string
	domains    []string
	mxSuffixes []string
}

// NewProviders prepares rules (in matching order, as DomainRules returns
// them) for matching. The default rule matches nothing: its recipients
// are ProviderOther.
func NewProviders(rules []DomainRule) *Providers {
	p := &Providers{}
	for i := range rules {
		r := &rules[i]
		if r.IsDefault {
			continue
		}
		pr := providerRule{name: r.Name, domains: r.DomainList()}
		for _, s := range r.MXSuffixList() {
			pr.mxSuffixes = append(pr.mxSuffixes, strings.TrimPrefix(s, "."))
		}
		p.rules = append(p.rules, pr)
	}
	return p
}

// ByDomain returns the name of the rule listing the recipient domain, or "".
func (p *Providers) ByDomain(domain string) string {
	domain = strings.ToLower(domain)
	for _, r := range p.rules {
		for _, d := range r.domains {
			if d == domain {
				return r.name
			}
		}
	}
	return ""
}

// ByMX returns the name of the first rule whose MX suffix the host ends
// with, or "".
func (p *Providers) ByMX(host string) string {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "" {
		return ""
	}
	for _, r := range p.rules {
		for _, s := range r.mxSuffixes {
			if host == s || strings.HasSuffix(host, "."+s) {
				return r.name
			}
		}
	}
	return ""
}

// Of returns the provider of a recipient: the rule matching its domain,
// else the rule matching the MX host its mail went to (empty before the
// first attempt), else ProviderOther.
func (p *Providers) Of(domain, mxHost string) string {
	if n := p.ByDomain(domain); n != "" {
		return n
	}
	if n := p.ByMX(mxHost); n != "" {
		return n
	}
	return ProviderOther
}

// ProviderLabel is how reports name a provider: the well-known rules by
// their mailbox brand, others by the rule's own name.
func ProviderLabel(name string) string {
	switch name {
	case "google":
		return "Gmail (Google)"
	case "yahoo":
		return "Yahoo / AOL"
	case "microsoft":
		return "Microsoft (Outlook, Hotmail)"
	case "apple":
		return "Apple (iCloud)"
	case ProviderOther:
		return "Others"
	}
	return name
}
