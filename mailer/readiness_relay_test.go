package mailer_test

import (
	"context"
	"strings"
	"testing"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/mailer"
)

// With relays that sign (dkim=relay), the DKIM rule of a campaign without
// a key in Herald looks for the From domain's record at the named
// selectors: found, it passes; missing, it warns and never blocks.
// Without them the rule blocks as before.
func TestRelayDKIMCheck(t *testing.T) {
	ctx := context.Background()
	s := testdb.SQLite(t)
	ns := startDNS(t)
	ns.add(t, `esk1._domainkey.signed.test. 300 IN TXT "v=DKIM1; k=rsa; p=MIIBIjANBgkq"`)
	list := seed(t, s, 1, []string{"rcpt.test"})
	res := mailer.NewResolver(ns.Addr)
	for _, c := range []struct {
		name, from string
		signs      *mailer.RelayDKIM
		ok, block  bool
		detail     string
	}{
		{"record at a named selector", "news@signed.test", &mailer.RelayDKIM{Selectors: []string{"esk1"}, Resolver: res}, true, false, "esk1._domainkey.signed.test"},
		{"no record", "news@bare.test", &mailer.RelayDKIM{Selectors: []string{"esk1"}, Resolver: res}, false, false, "no DKIM record was found for bare.test"},
		{"Herald signs", "news@signed.test", nil, false, true, "No DKIM key signs for signed.test"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cid := campaign(t, s, list, c.from, nil, nil)
			checks, err := (&mailer.Readiness{Store: s, RelaySigns: c.signs}).CampaignChecks(ctx, cid)
			if err != nil {
				t.Fatal(err)
			}
			for _, ch := range checks {
				if ch.ID != "campaign.dkim" {
					continue
				}
				if ch.OK != c.ok || ch.Blocking != c.block || !strings.Contains(ch.Detail, c.detail) {
					t.Errorf("campaign.dkim = OK %v, blocking %v, %q; want OK %v, blocking %v, mentioning %q", ch.OK, ch.Blocking, ch.Detail, c.ok, c.block, c.detail)
				}
				return
			}
			t.Error("no campaign.dkim check")
		})
	}
}
