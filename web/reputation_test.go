package web

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/herald-mail/herald/internal/config"
	"github.com/herald-mail/herald/internal/e2e"
	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

// Viewers read the Reputation page; only admins check or change lists;
// bad list settings come back as 422 with the fields' messages, an
// unknown list as 404; a saved change is audited.
func TestReputationPages(t *testing.T) {
	dns := e2e.StartDNS(t)
	dns.Add(t, "10.2.0.192.zen.spamhaus.org. 60 IN A 127.0.0.2")
	app := newTestAppWith(t, testdb.SQLite(t), func(c *config.Config) { c.DNSServer = dns.Addr })
	ctx := context.Background()
	pool := &models.IPPool{Name: "main"}
	if err := app.store.CreateIPPool(ctx, pool); err != nil {
		t.Fatal(err)
	}
	if err := app.store.AddSendingIP(ctx, &models.SendingIP{PoolID: pool.ID, Address: "192.0.2.10", Active: true}); err != nil {
		t.Fatal(err)
	}
	viewer, admin := app.user("viewer"), app.user("admin")
	if p := viewer.get("/deliverability/reputation"); p.StatusCode != 200 || p.Doc.Find(`[data-testid="check-now"]`).Length() != 0 ||
		p.Doc.Find(`[data-testid="edit-list"]`).Length() != 0 {
		t.Fatalf("viewer's page: status %d, or admin controls shown", p.StatusCode)
	}
	if p := viewer.postForm("/deliverability/reputation/check", nil); p.StatusCode != 403 {
		t.Errorf("viewer's check now = %d, want 403", p.StatusCode)
	}
	p := admin.postForm("/deliverability/reputation/check", nil)
	if p.StatusCode != 200 || !strings.Contains(p.Body, "Checked: 1 listings") {
		t.Fatalf("admin's check now = %d: %s", p.StatusCode, p.Doc.Find(".flash").Text())
	}
	if got := p.Doc.Find(`[data-testid="result-192.0.2.10-zen.spamhaus.org"]`).AttrOr("data-status", ""); got != "listed" {
		t.Errorf("192.0.2.10 on ZEN = %q, want listed", got)
	}
	p = admin.postForm("/deliverability/reputation/lists", url.Values{"name": {""}, "zone": {"x"}, "kind": {"ip"}, "codes": {"127.0.0.2"}, "delist_url": {"ftp://x"}})
	if p.StatusCode != 422 {
		t.Fatalf("bad list = %d, want 422", p.StatusCode)
	}
	for _, f := range []string{"name", "zone", "codes", "delist_url"} {
		if p.Doc.Find(`[data-testid="err-`+f+`"]`).Length() != 1 {
			t.Errorf("no message beside %s", f)
		}
	}
	if p := admin.postForm("/deliverability/reputation/lists", url.Values{"name": {"Dup"}, "zone": {"zen.spamhaus.org"}, "kind": {"ip"}}); p.StatusCode != 422 ||
		p.Doc.Find(`[data-testid="err-zone"]`).Length() != 1 {
		t.Errorf("a second list with ZEN's zone = %d, want 422 with a message at the zone", p.StatusCode)
	}
	if p := admin.get("/deliverability/reputation/lists/99999/edit"); p.StatusCode != 404 {
		t.Errorf("unknown list = %d, want 404", p.StatusCode)
	}
	p = admin.postForm("/deliverability/reputation/lists", url.Values{"name": {"Mine"}, "zone": {"dnsbl.example.net"}, "kind": {"domain"},
		"codes": {"127.0.0.2 ours\n127.0.0.3 !refused"}, "enabled": {"1"}})
	if p.StatusCode != 200 || p.Doc.Find(`[data-testid="list-dnsbl.example.net"]`).Length() != 1 {
		t.Fatalf("add list = %d", p.StatusCode)
	}
	if !auditHas(t, app.store, "blocklist.create", "Mine (dnsbl.example.net, domain)") || !auditHas(t, app.store, "blocklists.check", "1 listed") {
		t.Errorf("the change or the check is not in the audit log")
	}
}
