package mailer_test

import (
	"context"
	"strings"
	"testing"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/mailer"
	"github.com/herald-mail/herald/models"
)

// The readiness panel checks each active sending address's reverse DNS
// against PTR and A/AAAA records on a local DNS server, and warns about an
// EHLO name that is not fully qualified.
func TestReadinessFCrDNSAndEHLO(t *testing.T) {
	ctx := context.Background()
	s := testdb.SQLite(t)
	pool := &models.IPPool{Name: "main"}
	if err := s.CreateIPPool(ctx, pool); err != nil {
		t.Fatal(err)
	}
	for _, ip := range []models.SendingIP{
		{Address: "192.0.2.10"},                          // PTR and A agree, greets with the default name
		{Address: "192.0.2.11"},                          // no PTR
		{Address: "192.0.2.12"},                          // PTR to a name with another address
		{Address: "192.0.2.13", HELO: "mail.other.test"}, // confirmed, but greets with another name
		{Address: "2001:db8::10", HELO: "v6.brand.test"}, // IPv6, confirmed
		{Address: "192.0.2.99", Active: false},           // inactive: not checked
	} {
		ip.PoolID, ip.Weight = pool.ID, 1
		ip.Active = ip.Address != "192.0.2.99"
		if err := s.AddSendingIP(ctx, &ip); err != nil {
			t.Fatal(err)
		}
	}
	ns := startDNS(t)
	ns.add(t,
		"10.2.0.192.in-addr.arpa. 300 IN PTR out1.brand.test.",
		"out1.brand.test. 300 IN A 192.0.2.10",
		"12.2.0.192.in-addr.arpa. 300 IN PTR out3.brand.test.",
		"out3.brand.test. 300 IN A 198.51.100.3",
		"13.2.0.192.in-addr.arpa. 300 IN PTR out4.brand.test.",
		"out4.brand.test. 300 IN A 192.0.2.13",
		"0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa. 300 IN PTR v6.brand.test.",
		"v6.brand.test. 300 IN AAAA 2001:db8::10",
	)
	find := func(cs []mailer.Check, id string) *mailer.Check {
		for i := range cs {
			if cs[i].ID == id {
				return &cs[i]
			}
		}
		return nil
	}
	r := &mailer.Readiness{Store: s, DirectTransport: true, Hostname: "out1.brand.test", Resolver: mailer.NewResolver(ns.Addr), RootURL: "https://brand.test"}
	cs, err := r.OrgChecks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := find(cs, "org.fcrdns")
	if c == nil || c.OK || c.Blocking || c.FixHint == "" {
		t.Fatalf("org.fcrdns = %+v; want a failing warning with a fix", c)
	}
	for _, want := range []string{
		"192.0.2.11 has no reverse DNS (PTR) record",
		"192.0.2.12's reverse DNS names out3.brand.test, which does not resolve back to 192.0.2.12",
		"192.0.2.13 greets as mail.other.test but its reverse DNS is out4.brand.test",
	} {
		if !strings.Contains(c.Detail, want) {
			t.Errorf("org.fcrdns detail %q lacks %q", c.Detail, want)
		}
	}
	for _, good := range []string{"192.0.2.10", "2001:db8::10", "192.0.2.99"} {
		if strings.Contains(c.Detail, good) {
			t.Errorf("org.fcrdns detail %q names %s, which is right (or inactive)", c.Detail, good)
		}
	}
	if e := find(cs, "org.ehlo"); e == nil || !e.OK {
		t.Errorf("org.ehlo with out1.brand.test = %+v, want ok", e)
	}

	// Only the good addresses left: the check passes and lists them.
	for _, ip := range []string{"192.0.2.11", "192.0.2.12", "192.0.2.13"} {
		all, _ := s.AllSendingIPs(ctx)
		for _, a := range all {
			if a.Address == ip {
				if err := s.DeleteSendingIP(ctx, a.ID); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	r.Hostname = "vm"
	cs, _ = r.OrgChecks(ctx)
	if c := find(cs, "org.fcrdns"); c == nil || c.OK {
		t.Errorf("org.fcrdns with EHLO vm = %+v; want it to fail (192.0.2.10 greets as vm)", c)
	}
	if e := find(cs, "org.ehlo"); e == nil || e.OK || !strings.Contains(e.Detail, "vm") || e.Blocking {
		t.Errorf("org.ehlo with vm = %+v; want a warning naming vm", e)
	}
	r.Hostname = "out1.brand.test"
	cs, _ = r.OrgChecks(ctx)
	if c := find(cs, "org.fcrdns"); c == nil || !c.OK || !strings.Contains(c.Detail, "192.0.2.10 ↔ out1.brand.test") || !strings.Contains(c.Detail, "2001:db8::10 ↔ v6.brand.test") {
		t.Errorf("org.fcrdns, all right = %+v", c)
	}
	for _, n := range []struct {
		name string
		ok   bool
	}{{"mail.example.com", true}, {"vm", false}, {"[192.0.2.1]", false}, {"192.0.2.1", false}, {"box.local", false}, {"localhost", false}} {
		if got := mailer.FullyQualified(n.name); got != n.ok {
			t.Errorf("FullyQualified(%q) = %v, want %v", n.name, got, n.ok)
		}
	}
}
