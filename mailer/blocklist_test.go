package mailer_test

import (
	"context"
	"strings"
	"testing"

	"github.com/herald-mail/herald/internal/e2e"
	"github.com/herald-mail/herald/mailer"
	"github.com/herald-mail/herald/models"
)

func TestBlocklistName(t *testing.T) {
	ip := models.Blocklist{Kind: models.BlocklistIP, Zone: "zen.spamhaus.org"}
	dom := models.Blocklist{Kind: models.BlocklistDomain, Zone: "dbl.spamhaus.org"}
	cases := []struct {
		bl     models.Blocklist
		target string
		want   string
	}{
		{ip, "192.0.2.10", "10.2.0.192.zen.spamhaus.org"},
		{ip, "::ffff:192.0.2.10", "10.2.0.192.zen.spamhaus.org"},
		{ip, "2001:db8::1", "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.zen.spamhaus.org"},
		{dom, "News.Example.", "news.example.dbl.spamhaus.org"},
	}
	for _, c := range cases {
		if got, err := mailer.BlocklistName(c.bl, c.target); err != nil || got != c.want {
			t.Errorf("BlocklistName(%s, %q) = %q, %v, want %q", c.bl.Zone, c.target, got, err, c.want)
		}
	}
	if _, err := mailer.BlocklistName(ip, "not-an-ip"); err == nil {
		t.Errorf("BlocklistName of a non-address: no error")
	}
}

// The answers of a local DNS server, read through the resolver Herald's
// DNS checks use: NXDOMAIN is clean, a code is a listing with its
// meaning, Spamhaus's 127.255.255.254 is a check not possible (even
// beside a listing code), and a lookup that fails is an error.
func TestCheckBlocklist(t *testing.T) {
	dns := e2e.StartDNS(t)
	dns.Add(t, "2.2.0.192.zen.spamhaus.org. 60 IN A 127.0.0.2", "2.2.0.192.zen.spamhaus.org. 60 IN A 127.0.0.10",
		"3.2.0.192.zen.spamhaus.org. 60 IN A 127.255.255.254",
		"4.2.0.192.zen.spamhaus.org. 60 IN A 127.0.0.2", "4.2.0.192.zen.spamhaus.org. 60 IN A 127.255.255.255")
	zen := models.Blocklist{Name: "Spamhaus ZEN", Kind: models.BlocklistIP, Zone: "zen.spamhaus.org",
		Codes: "127.0.0.2 SBL: a known spam source\n127.0.0.10 PBL (ISP): an end-user range"}
	r := mailer.NewResolver(dns.Addr)
	ctx := context.Background()
	cases := []struct {
		target, status, meaning string
	}{
		{"192.0.2.1", models.ListingClean, ""},
		{"192.0.2.2", models.ListingListed, "SBL: a known spam source; PBL (ISP): an end-user range"},
		{"192.0.2.3", models.ListingUnavailable, "public or open resolver"},
		{"192.0.2.4", models.ListingUnavailable, "use your own resolver or a DQS key"},
	}
	for _, c := range cases {
		l := r.CheckBlocklist(ctx, zen, c.target)
		if l.Status != c.status || !strings.Contains(l.Meaning, c.meaning) {
			t.Errorf("CheckBlocklist(%s) = %+v, want %s with %q", c.target, l, c.status, c.meaning)
		}
	}
	down := mailer.NewResolver("127.0.0.1:1")
	if l := down.CheckBlocklist(ctx, zen, "192.0.2.2"); l.Status != models.ListingError {
		t.Errorf("CheckBlocklist through no server = %+v, want error", l)
	}
}
