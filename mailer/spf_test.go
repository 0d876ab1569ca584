package mailer_test

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/herald-mail/herald/mailer"
)

func TestParseSPF(t *testing.T) {
	valid := []string{
		"v=spf1 -all",
		"V=SPF1 ip4:192.0.2.0/24 ip6:2001:db8::/32 include:_spf.example.com ~all",
		"v=spf1 a mx a:mail.example.com/28 mx:example.org//64 a/24//48 ?all",
		"v=spf1 exists:%{i}._spf.%{d} redirect=_spf.example.com",
		"v=spf1 ptr:example.com exp=explain.%{d2} custom.mod=x -all",
		"v=spf1",
	}
	for _, s := range valid {
		if _, err := mailer.ParseSPF(s); err != nil {
			t.Errorf("ParseSPF(%q) = %v, want valid", s, err)
		}
	}
	invalid := []struct{ rec, says string }{
		{"spf1 -all", "v=spf1"},
		{"v=spf1 ip4:192.0.2.300 -all", "not an IPv4 address"},
		{"v=spf1 ip4:2001:db8::1 -all", "not an IPv4 address"},
		{"v=spf1 ip4:192.0.2.0/33 -all", "prefix length"},
		{"v=spf1 ip6:2001:db8::/129 -all", "prefix length"},
		{"v=spf1 include -all", "needs a domain"},
		{"v=spf1 include:localhost -all", "not a full domain"},
		{"v=spf1 include:example.123 -all", "top-level label"},
		{"v=spf1 all:x", "no argument"},
		{"v=spf1 foo:bar -all", "not an SPF mechanism"},
		{"v=spf1 ip4 -all", "needs an address"},
		{"v=spf1 redirect=a.example redirect=b.example", "appears twice"},
		{"v=spf1 exists:%{z}.example.com -all", "macro letter"},
		{"v=spf1 exists:%{i.example.com -all", "not closed"},
		{"v=spf1 a:example.com/40 -all", "IPv4 prefix"},
		{"v=spf1 ptr/24 -all", "not an SPF mechanism"},
		{"v=spf1 1bad=x", "modifier name"},
	}
	for _, c := range invalid {
		_, err := mailer.ParseSPF(c.rec)
		if err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("ParseSPF(%q) = %v, want an error saying %q", c.rec, err, c.says)
		}
	}
}

// SPF evaluated as a receiver does, on a local DNS server: results per
// address through include and redirect, the lookup count through every
// include, void lookups.
func TestEvaluateSPF(t *testing.T) {
	ctx := context.Background()
	ns := startDNS(t)
	ns.add(t,
		`ok.test. 300 IN TXT "v=spf1 ip4:192.0.2.10 include:_spf.relay.test a:out.ok.test mx -all"`,
		`_spf.relay.test. 300 IN TXT "v=spf1 ip4:198.51.100.0/24 ~all"`,
		"out.ok.test. 300 IN A 203.0.113.5",
		"ok.test. 300 IN MX 10 mx.ok.test.",
		"mx.ok.test. 300 IN A 203.0.113.25",
		"mx.ok.test. 300 IN AAAA 2001:db8::25",
		`redir.test. 300 IN TXT "v=spf1 redirect=ok.test"`,
		`soft.test. 300 IN TXT "v=spf1 ~all"`,
		`void.test. 300 IN TXT "v=spf1 a:gone1.void.test a:gone2.void.test a:gone3.void.test ip4:192.0.2.10 -all"`,
		`noinc.test. 300 IN TXT "v=spf1 include:nospf.test -all"`,
		`nospf.test. 300 IN TXT "hello"`,
	)
	// A chain of includes that needs 12 lookups in all.
	chain := `deep.test. 300 IN TXT "v=spf1`
	for i := range 4 {
		chain += fmt.Sprintf(" include:d%d.deep.test", i)
		ns.add(t, fmt.Sprintf(`d%d.deep.test. 300 IN TXT "v=spf1 a:h.deep.test mx:deep.test ip4:10.0.%d.0/24 -all"`, i, i))
	}
	ns.add(t, chain+` ip4:192.0.2.10 -all"`, "h.deep.test. 300 IN A 10.9.9.9", "deep.test. 300 IN MX 10 h.deep.test.")

	ip := netip.MustParseAddr
	cases := []struct {
		domain  string
		ips     []netip.Addr
		want    []string // result per address
		lookups int
		err     string // "" for no permerror
	}{
		{"ok.test", []netip.Addr{ip("192.0.2.10"), ip("198.51.100.7"), ip("203.0.113.5"), ip("203.0.113.25"), ip("2001:db8::25"), ip("192.0.2.99")},
			[]string{"pass", "pass", "pass", "pass", "pass", "fail"}, 3, ""},
		{"redir.test", []netip.Addr{ip("192.0.2.10"), ip("192.0.2.99")}, []string{"pass", "fail"}, 4, ""},
		{"soft.test", []netip.Addr{ip("192.0.2.10")}, []string{"softfail"}, 0, ""},
		{"void.test", []netip.Addr{ip("192.0.2.10")}, []string{"permerror"}, 3, "void lookups"},
		{"noinc.test", []netip.Addr{ip("192.0.2.10")}, []string{"permerror"}, 1, "without an SPF record"},
		{"deep.test", []netip.Addr{ip("192.0.2.10")}, []string{"permerror"}, 12, "needs 12 DNS lookups"},
	}
	for _, c := range cases {
		ev := mailer.EvaluateSPF(ctx, mailer.NewResolver(ns.Addr), c.domain, c.ips)
		for i, a := range c.ips {
			if got := ev.Results[a.String()]; got != c.want[i] {
				t.Errorf("%s: result for %s = %s (%s), want %s", c.domain, a, got, ev.Matched[a.String()], c.want[i])
			}
		}
		if ev.Lookups != c.lookups {
			t.Errorf("%s: %d lookups, want %d", c.domain, ev.Lookups, c.lookups)
		}
		switch {
		case c.err == "" && ev.Err != nil:
			t.Errorf("%s: error %v, want none", c.domain, ev.Err)
		case c.err != "" && (ev.Err == nil || !strings.Contains(ev.Err.Error(), c.err)):
			t.Errorf("%s: error %v, want one saying %q", c.domain, ev.Err, c.err)
		}
	}
}
