package mailer

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/herald-mail/herald/models"
)

// DNS errors that decide a message's fate.
var (
	// ErrNullMX: the domain publishes a null MX (RFC 7505) and accepts no mail.
	ErrNullMX = errors.New("domain accepts no mail (null MX)")
	// ErrNoDomain: the domain does not exist (NXDOMAIN).
	ErrNoDomain = errors.New("domain does not exist")
	// ErrNoAddress: the host has neither A nor AAAA records.
	ErrNoAddress = errors.New("host has no address")
)

// Resolver answers the DNS questions of the mailer (MX, A/AAAA, TXT) from
// one DNS server, with a small TTL-bound cache. It is safe for concurrent
// use.
type Resolver struct {
	server  string
	timeout time.Duration

	mu    sync.Mutex
	cache map[string]cached
}

type cached struct {
	vals    []string
	err     error
	expires time.Time
}

// NewResolver returns a resolver asking server ("host:port"; "" means the
// first nameserver of /etc/resolv.conf, or 127.0.0.1:53).
func NewResolver(server string) *Resolver {
	if server == "" {
		server = "127.0.0.1:53"
		if cfg, err := dns.ClientConfigFromFile("/etc/resolv.conf"); err == nil && len(cfg.Servers) > 0 {
			server = net.JoinHostPort(cfg.Servers[0], cfg.Port)
		}
	} else if _, _, err := net.SplitHostPort(server); err != nil {
		server = net.JoinHostPort(server, "53")
	}
	return &Resolver{server: server, timeout: 5 * time.Second, cache: map[string]cached{}}
}

// query asks one question and returns its answers as strings: MX as
// "pref host", A/AAAA as addresses, TXT as joined strings.
func (r *Resolver) query(ctx context.Context, name string, qtype uint16) ([]string, error) {
	key := dns.TypeToString[qtype] + " " + name
	r.mu.Lock()
	if c, ok := r.cache[key]; ok && time.Now().Before(c.expires) {
		r.mu.Unlock()
		return c.vals, c.err
	}
	r.mu.Unlock()

	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = true
	// EDNS0: a 2048-bit DKIM key does not fit the 512 bytes of plain DNS
	// over UDP; 1232 bytes is the size that avoids IP fragmentation (DNS
	// flag day 2020). Larger answers come truncated and are asked again
	// over TCP.
	m.SetEdns0(1232, false)
	c := &dns.Client{Timeout: r.timeout}
	in, _, err := c.ExchangeContext(ctx, m, r.server)
	if err == nil && in.Truncated {
		c.Net = "tcp"
		in, _, err = c.ExchangeContext(ctx, m, r.server)
	}
	if err != nil {
		return nil, fmt.Errorf("dns %s %s: %w", dns.TypeToString[qtype], name, err)
	}
	var (
		vals []string
		ttl  uint32 = 300
	)
	switch in.Rcode {
	case dns.RcodeSuccess:
	case dns.RcodeNameError:
		err = ErrNoDomain
	default:
		return nil, fmt.Errorf("dns %s %s: %s", dns.TypeToString[qtype], name, dns.RcodeToString[in.Rcode])
	}
	for _, rr := range in.Answer {
		ttl = min(ttl, rr.Header().Ttl)
		switch v := rr.(type) {
		case *dns.MX:
			vals = append(vals, fmt.Sprintf("%d %s", v.Preference, strings.TrimSuffix(strings.ToLower(v.Mx), ".")))
		case *dns.A:
			if qtype == dns.TypeA {
				vals = append(vals, v.A.String())
			}
		case *dns.AAAA:
			if qtype == dns.TypeAAAA {
				vals = append(vals, v.AAAA.String())
			}
		case *dns.TXT:
			vals = append(vals, strings.Join(v.Txt, ""))
		case *dns.CNAME:
			if qtype == dns.TypeCNAME {
				vals = append(vals, strings.TrimSuffix(strings.ToLower(v.Target), "."))
			}
		}
	}
	ttl = max(ttl, 30)
	r.mu.Lock()
	r.cache[key] = cached{vals, err, time.Now().Add(time.Duration(ttl) * time.Second)}
	r.mu.Unlock()
	return vals, err
}

// LookupMX returns a domain's mail exchangers in preference order (random
// among equals). A domain without MX records yields itself (the implicit
// MX of RFC 5321); a null MX yields ErrNullMX, NXDOMAIN ErrNoDomain.
func (r *Resolver) LookupMX(ctx context.Context, domain string) ([]string, error) {
	vals, err := r.query(ctx, domain, dns.TypeMX)
	if err != nil {
		return nil, err
	}
	type mx struct {
		pref int
		host string
		tie  int
	}
	var list []mx
	for _, v := range vals {
		var m mx
		if _, err := fmt.Sscanf(v, "%d %s", &m.pref, &m.host); err != nil {
			continue
		}
		if m.host == "" || m.host == "." {
			if len(vals) == 1 {
				return nil, ErrNullMX
			}
			continue
		}
		m.tie = rand.IntN(1 << 20)
		list = append(list, m)
	}
	if len(vals) == 1 && len(list) == 0 {
		return nil, ErrNullMX
	}
	if len(list) == 0 {
		return []string{strings.ToLower(domain)}, nil
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].pref != list[j].pref {
			return list[i].pref < list[j].pref
		}
		return list[i].tie < list[j].tie
	})
	hosts := make([]string, len(list))
	for i, m := range list {
		hosts[i] = m.host
	}
	return hosts, nil
}

// LookupHost returns a host's IPv4 then IPv6 addresses.
func (r *Resolver) LookupHost(ctx context.Context, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a}, nil
	}
	var out []netip.Addr
	var firstErr error
	for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
		vals, err := r.query(ctx, host, t)
		if err != nil && firstErr == nil {
			firstErr = err
		}
		for _, v := range vals {
			if a, err := netip.ParseAddr(v); err == nil {
				out = append(out, a)
			}
		}
	}
	if len(out) == 0 {
		if firstErr != nil && !errors.Is(firstErr, ErrNoDomain) {
			return nil, firstErr
		}
		return nil, ErrNoAddress
	}
	return out, nil
}

// LookupTXT returns a name's TXT records, each joined into one string.
func (r *Resolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	vals, err := r.query(ctx, name, dns.TypeTXT)
	if errors.Is(err, ErrNoDomain) {
		return nil, nil
	}
	return vals, err
}

// LookupRaw returns the answers of one question as the resolver formats them
// (MX "pref host", CNAME target); the DNS check uses it.
func (r *Resolver) LookupRaw(ctx context.Context, name string, qtype uint16) ([]string, error) {
	vals, err := r.query(ctx, name, qtype)
	if errors.Is(err, ErrNoDomain) {
		return nil, nil
	}
	return vals, err
}

// rule is a domain rule the router can hand out.
type rule struct {
	models.DomainRule
}

// routeInfo is where a recipient domain's mail goes.
type routeInfo struct {
	key     string // destination key: "rule:google", "mx:mx.example.net", "domain:example.org"
	rule    *rule
	mx      []string
	err     error // permanent routing failure (null MX, no such domain)
	tempErr error // transient DNS failure
	expires time.Time
}

// router maps recipient domains to destinations through the rules and,
// for direct delivery, their MX hosts.
type router struct {
	resolver *Resolver // nil: route by domain rules only
	mu       sync.Mutex
	rules    map[string]*rule  // by name
	match    *models.Providers // the matching the reports use too
	deflt    *rule
	cache    map[string]*routeInfo
}

func newRouter(res *Resolver) *router {
	return &router{resolver: res, cache: map[string]*routeInfo{}}
}

func (rt *router) setRules(rules []models.DomainRule) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.rules, rt.deflt, rt.match = map[string]*rule{}, nil, models.NewProviders(rules)
	for _, r := range rules {
		rr := &rule{DomainRule: r}
		if r.IsDefault {
			rt.deflt = rr
			continue
		}
		rt.rules[r.Name] = rr
	}
	if rt.deflt == nil {
		rt.deflt = &rule{DomainRule: models.DomainRule{Name: "default", IsDefault: true, BackoffMinSeconds: 60, BackoffMaxSeconds: 3600}}
	}
	rt.cache = map[string]*routeInfo{}
}

func (rt *router) byDomain(domain string) *rule { return rt.rules[rt.match.ByDomain(domain)] }

func (rt *router) byMX(host string) *rule { return rt.rules[rt.match.ByMX(host)] }

// cachedRoute returns a known route without blocking.
func (rt *router) cachedRoute(domain string) *routeInfo {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if ri, ok := rt.cache[domain]; ok && time.Now().Before(ri.expires) {
		return ri
	}
	return nil
}

// route resolves a recipient domain to its destination, looking up MX
// records when the router has a resolver.
func (rt *router) route(ctx context.Context, domain string) *routeInfo {
	if ri := rt.cachedRoute(domain); ri != nil {
		return ri
	}
	rt.mu.Lock()
	r := rt.byDomain(domain)
	rt.mu.Unlock()
	ri := &routeInfo{expires: time.Now().Add(10 * time.Minute)}
	switch {
	case rt.resolver == nil:
		if r != nil {
			ri.key, ri.rule = "rule:"+r.Name, r
		} else {
			ri.key, ri.rule = "domain:"+domain, rt.deflt
		}
	default:
		mx, err := rt.resolver.LookupMX(ctx, domain)
		switch {
		case errors.Is(err, ErrNullMX), errors.Is(err, ErrNoDomain):
			ri.err = err
		case err != nil:
			ri.tempErr = err
			ri.expires = time.Now().Add(30 * time.Second)
		}
		ri.mx = mx
		rt.mu.Lock()
		if r == nil && len(mx) > 0 {
			r = rt.byMX(mx[0])
		}
		rt.mu.Unlock()
		switch {
		case r != nil:
			ri.key, ri.rule = "rule:"+r.Name, r
		case len(mx) > 0:
			ri.key, ri.rule = "mx:"+mx[0], rt.deflt
		default:
			ri.key, ri.rule = "domain:"+domain, rt.deflt
		}
	}
	if ri.tempErr == nil || ri.err != nil {
		rt.mu.Lock()
		rt.cache[domain] = ri
		rt.mu.Unlock()
	}
	return ri
}
