package mailer

import (
	"context"
	"slices"
	"strings"

	"github.com/herald-mail/herald/models"
)

// RelayDKIM says the relays of a transport sign the mail with DKIM for the
// sender's domains themselves (every relay marked dkim=relay).
type RelayDKIM struct {
	// Selectors are the selectors the relays sign with, as configured;
	// the check tries commonSelectors too.
	Selectors []string
	// Resolver answers the TXT questions; nil means the system's first
	// nameserver.
	Resolver *Resolver
}

// relayDKIMs is a transport that may sign through its relays: Relay, and
// the wrappers around it.
type relayDKIMs interface {
	RelayDKIM() *RelayDKIM
}

// commonSelectors are the selectors relays and providers sign with when
// the user named none: their records are looked for in DNS.
var commonSelectors = []string{"default", "dkim", "mail", "s1", "s2", "k1", "k2", "k3", "selector1", "selector2",
	"google", "mandrill", "mailjet", "pm", "smtp", "mx", "key1", "key2", "sig1"}

// RelayDKIM is how the relays sign: non-nil when every relay is marked
// dkim=relay (one that does not would send the mail unsigned).
func (r *Relay) RelayDKIM() *RelayDKIM {
	d := &RelayDKIM{Resolver: r.o.Resolver}
	for _, h := range r.hosts {
		if !h.SignsDKIM {
			return nil
		}
		for _, s := range h.DKIMSelectors {
			if !slices.Contains(d.Selectors, s) {
				d.Selectors = append(d.Selectors, s)
			}
		}
	}
	return d
}

// RelaySigning returns how t's relays sign (looking through wrappers), or
// nil when Herald's own key is what signs.
func RelaySigning(t Transport) *RelayDKIM {
	if rd, ok := t.(relayDKIMs); ok {
		return rd.RelayDKIM()
	}
	return nil
}

// relayDKIMCheck is the DKIM rule of a campaign whose relay signs for its
// From domain and for which Herald has no key: the From domain must
// publish a DKIM record at a selector the user named (or a common one).
// It only warns: Herald cannot see the relay's signature.
func (r *Readiness) relayDKIMCheck(ctx context.Context, from string) Check {
	c := Check{ID: "campaign.dkim", Title: "The relay signs the From domain with DKIM"}
	res := r.RelaySigns.Resolver
	if res == nil {
		res = NewResolver("")
	}
	sels := append(slices.Clone(r.RelaySigns.Selectors), commonSelectors...)
	for _, sel := range sels {
		name := sel + "._domainkey." + from
		txts, err := res.LookupTXT(ctx, name)
		if err != nil {
			continue
		}
		for _, t := range txts {
			if strings.Contains(strings.ReplaceAll(t, " ", ""), "p=") {
				c.OK = true
				c.Detail = "The relay signs (dkim=relay); " + from + " publishes a DKIM key at " + name + "."
				return c
			}
		}
	}
	c.Detail = "The relay signs (dkim=relay), but no DKIM record was found for " + from + " at the selectors " +
		strings.Join(sels, ", ") + ": unless the relay signs with another one, its mail may fail DMARC."
	c.FixHint = "Publish the DKIM records your relay gives for " + from + ", and name their selectors in the relay URL (dkim_selectors=s1,s2)."
	return c
}

// relaySignsFor reports whether the rule for cp is the relay's: the relays
// sign and the campaign uses the default transport.
func (r *Readiness) relaySignsFor(cp *models.Campaign) bool {
	return r.RelaySigns != nil && cp.Transport == ""
}

// RelaySigning is how the default transport's relays sign, if they do
// (for Readiness.RelaySigns).
func (e *Engine) RelaySigning() *RelayDKIM { return RelaySigning(e.defaultTransport()) }
