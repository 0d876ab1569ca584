package mailer_test

import (
	"context"
	"testing"

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
	want := map[string]bool{"dkim": true, "dkim-ed25519": true, "spf": false, "dmarc": false, "return-path": true}
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
