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

// Listing is what one blocklist says about one address or domain.
type Listing struct {
	Status  string // models.ListingClean, ListingListed, ListingUnavailable or ListingError
	Answer  string // the list's answers, comma-separated ("" when clean)
	Meaning string // what they mean, or why the check was not possible
}

// BlocklistName is the DNS name a list is asked about target: the
// reversed octets (nibbles for IPv6) of an address before an IP list's
// zone, the domain before a domain list's.
func BlocklistName(bl models.Blocklist, target string) (string, error) {
	if bl.Kind == models.BlocklistDomain {
		return strings.Trim(strings.ToLower(target), ".") + "." + bl.Zone, nil
	}
	a, err := netip.ParseAddr(target)
	if err != nil {
		return "", fmt.Errorf("%q is not an IP address", target)
	}
	a = a.Unmap()
	var parts []string
	if a.Is4() {
		b := a.As4()
		for i := 3; i >= 0; i-- {
			parts = append(parts, fmt.Sprint(b[i]))
		}
	} else {
		b := a.As16()
		for i := 15; i >= 0; i-- {
			parts = append(parts, fmt.Sprintf("%x", b[i]&0xf), fmt.Sprintf("%x", b[i]>>4))
		}
	}
	return strings.Join(parts, ".") + "." + bl.Zone, nil
}

// CheckBlocklist asks the list about target through r. NXDOMAIN is
// clean; answers are read with the list's codes (models.Blocklist.Meaning),
// and a refusal among them (Spamhaus's 127.255.255.x) makes the check
// not possible rather than a listing.
func (r *Resolver) CheckBlocklist(ctx context.Context, bl models.Blocklist, target string) Listing {
	name, err := BlocklistName(bl, target)
	if err != nil {
		return Listing{Status: models.ListingError, Meaning: err.Error()}
	}
	answers, err := r.query(ctx, name, dns.TypeA)
	switch {
	case errors.Is(err, ErrNoDomain):
		return Listing{Status: models.ListingClean}
	case err != nil:
		return Listing{Status: models.ListingError, Meaning: "the lookup failed: " + err.Error()}
	case len(answers) == 0:
		return Listing{Status: models.ListingClean}
	}
	var listed, refused []string
	for _, a := range answers {
		m, refusal := bl.Meaning(a)
		if refusal {
			refused = append(refused, m)
		} else {
			listed = append(listed, m)
		}
	}
	l := Listing{Answer: strings.Join(answers, ", ")}
	if len(refused) > 0 {
		l.Status = models.ListingUnavailable
		l.Meaning = bl.Name + " answered that " + strings.Join(refused, "; ") + ". Check not possible: use your own resolver or a DQS key."
		return l
	}
	l.Status, l.Meaning = models.ListingListed, strings.Join(listed, "; ")
	return l
}

// blocklistStore reads the blocklist results; *models.Store implements it.
type blocklistStore interface {
	CurrentBlocklistResults(ctx context.Context) ([]models.BlocklistResult, error)
}

var _ blocklistStore = (*models.Store)(nil)

// blocklistCheck is the readiness rule on blocklists: no sending address
// or domain is listed at the last check. ok is false when the store
// keeps no results (one made for tests of the rules alone).
func (r *Readiness) blocklistCheck(ctx context.Context) (Check, bool) {
	bs, ok := r.Store.(blocklistStore)
	if !ok {
		return Check{}, false
	}
	c := Check{ID: "org.blocklists", Title: "No sending address or domain is on a DNS blocklist", OK: true}
	res, err := bs.CurrentBlocklistResults(ctx)
	if err != nil {
		c.OK, c.Detail = false, "The blocklist results could not be read."
		return c, true
	}
	var listed []string
	unavailable := 0
	for _, x := range res {
		switch x.Status {
		case models.ListingListed:
			listed = append(listed, x.Target+" on "+x.Zone)
		case models.ListingUnavailable, models.ListingError:
			unavailable++
		}
	}
	switch {
	case len(res) == 0:
		c.Detail = "No blocklist check has run yet."
	case len(listed) > 0:
		c.OK = false
		c.Detail = "Listed: " + strings.Join(listed, ", ") + "."
		c.FixHint = "Receivers that use these lists refuse or junk the mail: find the cause, then ask for removal through each list's page (Deliverability → Reputation)."
	default:
		c.Detail = fmt.Sprintf("%d checks, none listed.", len(res))
	}
	if unavailable > 0 {
		c.Detail += fmt.Sprintf(" %d checks were not possible (the list refused the resolver or the lookup failed): use your own resolver or a DQS key.", unavailable)
	}
	return c, true
}
