package mailer_test

import (
	"context"
	"strings"
	"testing"

	"github.com/herald-mail/herald/internal/e2e"
	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/mailer"
	"github.com/herald-mail/herald/models"
)

func TestCheckDomain(t *testing.T) {
	ctx := context.Background()
	s := testdb.SQLite(t)
	sd, err := s.CreateSendingDomain(ctx, "brand.test", "secret", models.SendingDomainOptions{Ed25519: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateSendingDomain(ctx, "brand.test", "secret", models.SendingDomainOptions{}); err == nil {
		t.Errorf("CreateSendingDomain(existing) = nil error, want ErrConflict")
	}
	keys, err := sd.Keys("secret")
	if err != nil || keys.RSA.N.BitLen() != 2048 || keys.Ed25519 == nil {
		t.Fatalf("Keys() = %v, %v; want an RSA-2048 and an Ed25519 key", keys, err)
	}
	if _, err := sd.Keys("wrong"); err == nil {
		t.Errorf("Keys(wrong secret) = nil error, want failure")
	}
	opts := models.DNSRecordOptions{SendingIPs: []string{"192.0.2.10"}, SPFIncludes: []string{"_spf.relay.test"}, InboundHost: "mx.herald.test"}
	ns := startDNS(t)
	ns.publish(t, sd) // both DKIM keys
	ns.add(t,
		`bounces.brand.test. 300 IN TXT "v=spf1 ip4:192.0.2.10 ~all"`, // lacks the include
		"bounces.brand.test. 300 IN MX 10 mx.herald.test.",
	)
	c := mailer.CheckDomain(ctx, mailer.NewResolver(ns.Addr), sd, opts)
	want := map[string]bool{"dkim": true, "dkim-ed25519": true, "spf": false, "dmarc": false, "return-path": true, "tlsrpt": true} // tlsrpt is optional
	if c.OK {
		t.Errorf("CheckDomain().OK = true, want false (SPF and DMARC incomplete)")
	}
	for _, r := range c.Records {
		if r.OK != want[r.Purpose] {
			t.Errorf("record %s %s (%s): OK = %v (%s), want %v", r.Type, r.Name, r.Purpose, r.OK, r.Problem, want[r.Purpose])
		}
	}
	ns.add(t, `_dmarc.brand.test. 300 IN TXT "v=DMARC1; p=none"`)
	if err := s.SaveDNSCheck(ctx, sd.ID, c.OK, c.JSON()); err != nil {
		t.Fatal(err)
	}
}

// Each wrong SPF or DMARC record is marked wrong with its own reason, on a
// local DNS server holding the domain's other records as advised.
func TestCheckDomainWrongRecords(t *testing.T) {
	ctx := context.Background()
	s := testdb.SQLite(t)
	sd, err := s.CreateSendingDomain(ctx, "brand.test", "secret", models.SendingDomainOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := s.CreateSendingDomain(ctx, "news.brand.test", "secret", models.SendingDomainOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pool := models.DNSRecordOptions{SendingIPs: []string{"192.0.2.10"}, InboundHost: "mx.herald.test"}
	noPool := models.DNSRecordOptions{InboundHost: "mx.herald.test"}
	goodSPF := `bounces.brand.test. 300 IN TXT "v=spf1 ip4:192.0.2.10 ~all"`
	goodDMARC := `_dmarc.brand.test. 300 IN TXT "v=DMARC1; p=none; rua=mailto:dmarc@brand.test"`
	deep := []string{`bounces.brand.test. 300 IN TXT "v=spf1 ip4:192.0.2.10 include:a.deep.test include:b.deep.test include:c.deep.test -all"`}
	for _, n := range []string{"a", "b", "c"} {
		deep = append(deep, n+`.deep.test. 300 IN TXT "v=spf1 a:h.deep.test mx:deep.test a:h.deep.test -all"`)
	}
	deep = append(deep, "h.deep.test. 300 IN A 10.0.0.1", "deep.test. 300 IN MX 10 h.deep.test.", goodDMARC)

	cases := []struct {
		name    string
		domain  *models.SendingDomain
		opts    models.DNSRecordOptions
		records []string
		purpose string
		state   string
		says    string
	}{
		{"spf -all with a pool", sd, pool, []string{`bounces.brand.test. 300 IN TXT "v=spf1 -all"`, goodDMARC},
			"spf", models.RecordWrong, "authorises no server at all"},
		{"spf -all without a pool", sd, noPool, []string{`bounces.brand.test. 300 IN TXT "v=spf1 -all"`, goodDMARC},
			"spf", models.RecordWrong, "authorises no server at all"},
		{"spf without the pool's address", sd, pool, []string{`bounces.brand.test. 300 IN TXT "v=spf1 ip4:192.0.2.99 -all"`, goodDMARC},
			"spf", models.RecordWrong, "192.0.2.10 gets fail (-all)"},
		{"spf over 10 lookups", sd, pool, deep, "spf", models.RecordWrong, "needs 12 DNS lookups"},
		{"spf syntax", sd, pool, []string{`bounces.brand.test. 300 IN TXT "v=spf1 ip4:192.0.2.300 -all"`, goodDMARC},
			"spf", models.RecordWrong, `"192.0.2.300" is not an IPv4 address`},
		{"spf twice", sd, pool, []string{goodSPF, `bounces.brand.test. 300 IN TXT "v=spf1 include:_spf.other.test -all"`, goodDMARC},
			"spf", models.RecordWrong, "2 SPF records"},
		{"spf +all", sd, pool, []string{`bounces.brand.test. 300 IN TXT "v=spf1 ip4:192.0.2.10 +all"`, goodDMARC},
			"spf", models.RecordWrong, "+all"},
		{"spf void lookups", sd, pool, []string{`bounces.brand.test. 300 IN TXT "v=spf1 a:x1.brand.test a:x2.brand.test a:x3.brand.test ip4:192.0.2.10 -all"`, goodDMARC},
			"spf", models.RecordWrong, "void lookups"},
		{"spf unknown sources", sd, noPool, []string{`bounces.brand.test. 300 IN TXT "v=spf1 ip4:203.0.113.1 -all"`, goodDMARC},
			"spf", models.RecordIncomplete, "cannot tell whether it covers"},
		{"dmarc without p=", sd, pool, []string{goodSPF, `_dmarc.brand.test. 300 IN TXT "v=DMARC1; rua=mailto:dmarc@brand.test"`},
			"dmarc", models.RecordWrong, "no p= tag"},
		{"dmarc rua not a URI", sd, pool, []string{goodSPF, `_dmarc.brand.test. 300 IN TXT "v=DMARC1; p=none; rua=dmarc@brand.test"`},
			"dmarc", models.RecordWrong, `"dmarc@brand.test" is not a URI (write rua=mailto:dmarc@brand.test)`},
		{"dmarc ruf not mailto", sd, pool, []string{goodSPF, `_dmarc.brand.test. 300 IN TXT "v=DMARC1; p=none; ruf=https://brand.test/r"`},
			"dmarc", models.RecordWrong, "not a mailto: URI"},
		{"dmarc version not first", sd, pool, []string{goodSPF, `_dmarc.brand.test. 300 IN TXT "p=reject; v=DMARC1"`},
			"dmarc", models.RecordWrong, "does not start with v=DMARC1"},
		{"dmarc twice", sd, pool, []string{goodSPF, goodDMARC, `_dmarc.brand.test. 300 IN TXT "v=DMARC1; p=reject"`},
			"dmarc", models.RecordWrong, "2 DMARC records"},
		{"dmarc bad alignment mode", sd, pool, []string{goodSPF, `_dmarc.brand.test. 300 IN TXT "v=DMARC1; p=none; adkim=x"`},
			"dmarc", models.RecordWrong, "adkim=x is not an alignment mode"},
		{"dmarc bad pct", sd, pool, []string{goodSPF, `_dmarc.brand.test. 300 IN TXT "v=DMARC1; p=quarantine; pct=150"`},
			"dmarc", models.RecordWrong, "pct=150"},
		{"subdomain weaker than its organisation", sub, pool, []string{
			`bounces.news.brand.test. 300 IN TXT "v=spf1 ip4:192.0.2.10 ~all"`,
			`_dmarc.brand.test. 300 IN TXT "v=DMARC1; p=reject"`,
			`_dmarc.news.brand.test. 300 IN TXT "v=DMARC1; p=none"`,
		}, "dmarc", models.RecordWrong, "p=none here is weaker than the policy brand.test sets for its subdomains (p=reject)"},
		{"organisation's record invalid", sub, pool, []string{
			`bounces.news.brand.test. 300 IN TXT "v=spf1 ip4:192.0.2.10 ~all"`,
			`_dmarc.brand.test. 300 IN TXT "v=DMARC1; rua=mailto:d@brand.test"`,
		}, "dmarc", models.RecordWrong, "the one at _dmarc.brand.test that applies to it is invalid: it has no p= tag"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ns := e2e.StartDNS(t)
			ns.Records(t, dkimRecords(c.domain)...)
			ns.Add(t, "bounces."+c.domain.Domain+". 300 IN MX 10 mx.herald.test.")
			ns.Add(t, c.records...)
			chk := mailer.CheckDomain(ctx, mailer.NewResolver(ns.Addr), c.domain, c.opts)
			if chk.OK {
				t.Errorf("CheckDomain().OK = true, want false")
			}
			for _, r := range chk.Records {
				switch {
				case r.Purpose == c.purpose:
					if r.State != c.state || !strings.Contains(r.Problem, c.says) {
						t.Errorf("%s: state %s, problem %q; want %s saying %q", r.Purpose, r.State, r.Problem, c.state, c.says)
					}
					if r.Fix == "" {
						t.Errorf("%s: no fix hint", r.Purpose)
					}
				case !r.OK && r.Purpose != "spf" || r.Purpose == "spf" && r.State != models.RecordOK && !r.Incomplete:
					t.Errorf("%s (not under test): state %s (%s), want ok", r.Purpose, r.State, r.Problem)
				}
			}
		})
	}
}

// A subdomain without its own DMARC record is covered by its
// organisational domain's (and its sp=); the advice there never asks for a
// weaker policy; alignment follows the published adkim/aspf.
func TestCheckDomainDMARCDiscoveryAndAlignment(t *testing.T) {
	ctx := context.Background()
	s := testdb.SQLite(t)
	sub, err := s.CreateSendingDomain(ctx, "news.brand.test", "secret", models.SendingDomainOptions{})
	if err != nil {
		t.Fatal(err)
	}
	opts := models.DNSRecordOptions{SendingIPs: []string{"192.0.2.10"}, InboundHost: "mx.herald.test"}
	ns := e2e.StartDNS(t)
	ns.Records(t, dkimRecords(sub)...)
	ns.Add(t,
		"bounces.news.brand.test. 300 IN MX 10 mx.herald.test.",
		`bounces.news.brand.test. 300 IN TXT "v=spf1 ip4:192.0.2.10 ~all"`,
		`_dmarc.brand.test. 300 IN TXT "v=DMARC1; p=none; sp=quarantine; aspf=s; rua=mailto:dmarc@brand.test"`,
	)
	chk := mailer.CheckDomain(ctx, mailer.NewResolver(ns.Addr), sub, opts)
	if !chk.OK {
		t.Errorf("CheckDomain().OK = false, want true: %+v", chk.Records)
	}
	if chk.OrgDomain != "brand.test" || chk.OrgDMARC == nil || chk.OrgDMARC.Policy != "quarantine" || chk.OrgDMARC.ASPF != "s" {
		t.Errorf("organisational domain %q, policy %+v; want brand.test with sp=quarantine, aspf=s", chk.OrgDomain, chk.OrgDMARC)
	}
	var dmarc models.DNSRecordCheck
	for _, r := range chk.Records {
		if r.Purpose == "dmarc" {
			dmarc = r
		}
	}
	if !dmarc.OK || !strings.Contains(strings.Join(dmarc.Notes, " "), "the policy of the organisational domain brand.test applies (p=quarantine for subdomains)") {
		t.Errorf("dmarc = %s %q notes %q; want ok, inherited from brand.test", dmarc.State, dmarc.Problem, dmarc.Notes)
	}
	if !strings.HasPrefix(dmarc.Value, "v=DMARC1; p=quarantine;") || !strings.Contains(dmarc.Value, "aspf=s") || !strings.Contains(dmarc.Note, "Optional") {
		t.Errorf("advised DMARC record for the subdomain = %q (%s); want p=quarantine, aspf=s, optional", dmarc.Value, dmarc.Note)
	}
	a := chk.Alignment
	if a == nil || !a.DKIM || a.SPF || a.PolicyDomain != "brand.test" || a.Policy != "quarantine" || a.ASPF != "s" {
		t.Fatalf("alignment = %+v; want DKIM aligned, SPF not (aspf=s, bounces.news.brand.test), policy quarantine from brand.test", a)
	}
	// The page's records, made from the stored check, are the records checked.
	recs := sub.DNSRecords(models.DNSRecordOptions{SendingIPs: opts.SendingIPs, InboundHost: opts.InboundHost, OrgDMARC: chk.OrgDMARC})
	for i, r := range recs {
		if r != chk.Records[i].DNSRecord {
			t.Errorf("record %d on the page %+v differs from the one checked %+v", i, r, chk.Records[i].DNSRecord)
		}
	}
}

func TestParseDMARCAndAlign(t *testing.T) {
	good := []string{"v=DMARC1; p=none", "v=DMARC1;p=reject;sp=none;adkim=s;aspf=r;pct=50;rua=mailto:a@x.example,mailto:b@y.example!10m;ruf=mailto:f@x.example;fo=1:d;ri=3600;rf=afrf;foo=bar"}
	for _, g := range good {
		if _, err := mailer.ParseDMARC(g); err != nil {
			t.Errorf("ParseDMARC(%q) = %v, want valid", g, err)
		}
	}
	bad := []struct{ rec, says string }{
		{"v=DMARC1", "no p= tag"},
		{"v=dmarc1; p=none", "v=DMARC1"},
		{"v=DMARC1; p=block", "not a policy"},
		{"v=DMARC1; p=none; sp=maybe", "sp=maybe"},
		{"v=DMARC1; p=none; p=reject", "appears twice"},
		{"v=DMARC1; p=none; rua=mailto:not-an-address", "not a valid mail address"},
		{"v=DMARC1; p=none; rua=mailto:a@x.example!10q", "size limit"},
		{"v=DMARC1; p=none; fo=2", "failure options"},
		{"v=DMARC1; p=none; ri=soon", "ri=soon"},
		{"v=DMARC1; p=none; garbage", "not a tag=value"},
	}
	for _, b := range bad {
		if _, err := mailer.ParseDMARC(b.rec); err == nil || !strings.Contains(err.Error(), b.says) {
			t.Errorf("ParseDMARC(%q) = %v, want an error saying %q", b.rec, err, b.says)
		}
	}
	for _, c := range []struct{ in, want string }{
		{"news.example.co.uk", "example.co.uk"}, {"a.b.example.com", "example.com"}, {"example.com", "example.com"}, {"x.brand.test", "brand.test"},
	} {
		if got := mailer.OrgDomain(c.in); got != c.want {
			t.Errorf("OrgDomain(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	strict, _ := mailer.ParseDMARC("v=DMARC1; p=reject; adkim=s; aspf=s")
	for _, c := range []struct {
		from, d, env string
		rec          *mailer.DMARCRecord
		dkim, spf    bool
	}{
		{"news.example.com", "example.com", "bounces.example.com", nil, true, true},
		{"news.example.com", "example.com", "bounces.example.com", strict, false, false},
		{"example.com", "example.com", "example.com", strict, true, true},
		{"example.com", "example.org", "bounces.example.com", nil, false, true},
		{"shop.example.co.uk", "other.co.uk", "b.example.co.uk", nil, false, true},
	} {
		a := mailer.Align(c.from, c.d, c.env, c.rec)
		if a.DKIM != c.dkim || a.SPF != c.spf {
			t.Errorf("Align(%s, d=%s, env=%s) = DKIM %v SPF %v, want %v %v", c.from, c.d, c.env, a.DKIM, a.SPF, c.dkim, c.spf)
		}
	}
}
