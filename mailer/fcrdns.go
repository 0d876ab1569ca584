package mailer

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// LookupAddr returns the names of an address's PTR records (reverse DNS),
// lower case without the final dot; none when there are none.
func (r *Resolver) LookupAddr(ctx context.Context, ip netip.Addr) ([]string, error) {
	rev, err := dns.ReverseAddr(ip.Unmap().String())
	if err != nil {
		return nil, fmt.Errorf("dns PTR %s: %w", ip, err)
	}
	m := new(dns.Msg)
	m.SetQuestion(rev, dns.TypePTR)
	m.RecursionDesired = true
	c := &dns.Client{Timeout: r.timeout}
	in, _, err := c.ExchangeContext(ctx, m, r.server)
	if err == nil && in.Truncated {
		c.Net = "tcp"
		in, _, err = c.ExchangeContext(ctx, m, r.server)
	}
	if err != nil {
		return nil, fmt.Errorf("dns PTR %s: %w", ip, err)
	}
	if in.Rcode != dns.RcodeSuccess && in.Rcode != dns.RcodeNameError {
		return nil, fmt.Errorf("dns PTR %s: %s", ip, dns.RcodeToString[in.Rcode])
	}
	var out []string
	for _, rr := range in.Answer {
		if p, ok := rr.(*dns.PTR); ok {
			out = append(out, strings.TrimSuffix(strings.ToLower(p.Ptr), "."))
		}
	}
	return out, nil
}

// FCrDNS is the forward-confirmed reverse DNS of one sending address.
type FCrDNS struct {
	IP        string
	Names     []string // the PTR names
	Confirmed string   // the first PTR name whose A/AAAA records include IP; "" when none
	Err       error    // the lookup failed
}

// CheckFCrDNS looks up ip's PTR names and each name's addresses: the
// address passes when one name resolves back to it (mailbox providers
// such as Gmail refuse or junk mail from addresses that do not).
func CheckFCrDNS(ctx context.Context, res *Resolver, ip netip.Addr) FCrDNS {
	out := FCrDNS{IP: ip.String()}
	out.Names, out.Err = res.LookupAddr(ctx, ip)
	for _, n := range out.Names {
		addrs, err := res.LookupHost(ctx, n)
		if err != nil {
			continue
		}
		if slices.Contains(addrs, ip.Unmap()) {
			out.Confirmed = n
			break
		}
	}
	return out
}

// FullyQualified says whether name can be an EHLO name receivers accept:
// a domain of at least two labels, not an address, not a local-only name.
func FullyQualified(name string) bool {
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	if _, err := netip.ParseAddr(strings.Trim(name, "[]")); err == nil || strings.HasPrefix(name, "[") {
		return false
	}
	if !strings.Contains(name, ".") {
		return false
	}
	for _, local := range []string{".local", ".localhost", ".localdomain", ".internal", ".lan", ".home.arpa"} {
		if strings.HasSuffix(name, local) || name == strings.TrimPrefix(local, ".") {
			return false
		}
	}
	return true
}
