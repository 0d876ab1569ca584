package web

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/e2e"
	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

// The SPF record the domain page tells users to publish names the real
// sending sources: the pool's addresses, the relay's documented include,
// and when Herald cannot know them it says so instead of v=spf1 ~all.
func TestDomainPageAdvisedSPF(t *testing.T) {
	ctx := context.Background()
	app := newTestApp(t, nil)
	s := app.store
	admin := app.user(models.RoleAdmin)
	sd, err := s.CreateSendingDomain(ctx, "brand.example", app.srv.cfg.Secret, models.SendingDomainOptions{})
	if err != nil {
		t.Fatal(err)
	}
	path := fmt.Sprintf("/deliverability/domains/%d", sd.ID)
	spf := func() (string, string) {
		p := admin.get(path)
		row := p.Doc.Find(`[data-testid="record-spf"]`)
		return strings.TrimSpace(row.Find(`[data-testid="value"]`).Text()), strings.TrimSpace(row.Find(`[data-testid="incomplete"]`).Text())
	}
	app.srv.cfg.Transport, app.srv.cfg.Hostname = "direct", "out.brand.example"
	v, inc := spf()
	if v == "v=spf1 ~all" || inc != "incomplete" || v != "v=spf1 a:out.brand.example ~all" {
		t.Errorf("direct, no pool: SPF %q (%s); want the EHLO name's address, marked incomplete", v, inc)
	}
	if err := s.AddSendingIP(ctx, &models.SendingIP{PoolID: mustPool(t, s, "main"), Address: "192.0.2.10", Active: true}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddSendingIP(ctx, &models.SendingIP{PoolID: mustPool(t, s, "v6"), Address: "2001:db8::10", Active: true}); err != nil {
		t.Fatal(err)
	}
	if v, inc := spf(); v != "v=spf1 ip4:192.0.2.10 ip6:2001:db8::10 ~all" || inc != "" {
		t.Errorf("direct with a pool: SPF %q (%s); want both pool addresses, complete", v, inc)
	}
	app.srv.cfg.Transport, app.srv.cfg.Relay = "relay", "smtp://u:p@smtp.sendgrid.net:587"
	if v, _ := spf(); v != "v=spf1 ip4:192.0.2.10 ip6:2001:db8::10 include:sendgrid.net ~all" {
		t.Errorf("relay through SendGrid: SPF %q, want its documented include", v)
	}
	app.srv.cfg.Relay = "smtp://u:p@mail.unknown-relay.example:587"
	if v, inc := spf(); inc != "incomplete" || strings.Contains(v, "include:") {
		t.Errorf("unknown relay: SPF %q (%s); want it marked incomplete", v, inc)
	}
}

// A campaign on the direct transport cannot start while its From
// domain's DNS check never ran or fails; an admin (only) may override
// that for the campaign, with a reason, audited and shown in the
// checklist.
func TestDirectStartNeedsDNSOrOverride(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		app := newTestApp(t, s)
		app.srv.cfg.Transport = "direct"
		ns := e2e.StartDNS(t)
		app.srv.cfg.DNSServer = ns.Addr
		admin, marketer := app.user(models.RoleAdmin), app.user(models.RoleMarketer)
		list, tmpl := composeFixture(t, s, 2)
		sd, err := s.CreateSendingDomain(ctx, "acme.test", app.srv.cfg.Secret, models.SendingDomainOptions{})
		if err != nil {
			t.Fatal(err)
		}
		id := newCampaign(t, s, tmpl, []int64{list}, nil)
		base := fmt.Sprintf("/campaigns/%d", id)

		p := admin.get(base)
		if st := p.Doc.Find(`[data-testid="check-campaign.dns"]`).AttrOr("data-state", ""); st != "bad" {
			t.Errorf("checklist DNS rule before any check = %q, want bad", st)
		}
		if p.Doc.Find(`[data-testid="dns-override"]`).Length() != 1 {
			t.Errorf("admin sees no override form")
		}
		if marketer.get(base).Doc.Find(`[data-testid="dns-override"]`).Length() != 0 {
			t.Errorf("marketer sees the override form")
		}
		p = marketer.postForm(base+"/start", url.Values{"confirm": {"yes"}})
		if msg := p.Doc.Find(`[data-testid="start-error"]`).Text(); p.StatusCode != 422 || !strings.Contains(msg, "DNS of acme.test was never checked") {
			t.Errorf("start, never checked = %d %q", p.StatusCode, msg)
		}

		// A failing check blocks too, naming the record and why.
		ns.Add(t, `_dmarc.acme.test. 300 IN TXT "v=DMARC1; rua=mailto:dmarc@acme.test"`)
		admin.postForm(fmt.Sprintf("/deliverability/domains/%d/check", sd.ID), url.Values{})
		p = marketer.postForm(base+"/start", url.Values{"confirm": {"yes"}})
		if msg := p.Doc.Find(`[data-testid="start-error"]`).Text(); p.StatusCode != 422 || !strings.Contains(msg, "no p= tag") || !strings.Contains(msg, "admin can let this campaign start") {
			t.Errorf("start, failing check = %d %q", p.StatusCode, msg)
		}

		// Only admins override, and only with a reason.
		if p := marketer.postForm(base+"/dns-override", url.Values{"reason": {"trust me"}}); p.StatusCode != 403 {
			t.Errorf("marketer overrides: status %d, want 403", p.StatusCode)
		}
		p = admin.postForm(base+"/dns-override", url.Values{"reason": {"  "}})
		if p.StatusCode != 422 || !strings.Contains(p.Doc.Find(`[data-testid="err-dns_override"]`).Text(), "Say why") {
			t.Errorf("override without a reason: status %d, message %q", p.StatusCode, p.Doc.Find(`[data-testid="err-dns_override"]`).Text())
		}
		if n := countAction(auditActions(t, s), "campaign.dns_override"); n != 0 {
			t.Errorf("refused overrides wrote %d audit rows", n)
		}
		p = admin.postForm(base+"/dns-override", url.Values{"reason": {"DMARC is being fixed by the DNS team today"}})
		check := p.Doc.Find(`[data-testid="check-campaign.dns"]`)
		if p.StatusCode != 200 || check.AttrOr("data-state", "") != "ok" || !strings.Contains(check.Text(), "Overridden by admin@example.com") ||
			!strings.Contains(check.Text(), "DMARC is being fixed") {
			t.Errorf("after override: status %d, DNS rule %q: %q", p.StatusCode, check.AttrOr("data-state", ""), check.Text())
		}
		es, _, err := s.AuditPage(ctx, models.AuditQuery{Limit: 50})
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, e := range es {
			if e.Action == "campaign.dns_override" && e.Actor == "admin@example.com" && e.ObjectID == fmt.Sprint(id) &&
				strings.Contains(e.Summary, "acme.test") && strings.Contains(e.Summary, "DMARC is being fixed") {
				found = true
			}
		}
		if !found {
			t.Errorf("no audit entry for the override by admin@example.com: %+v", es)
		}
		if p := marketer.postForm(base+"/start", url.Values{"confirm": {"yes"}}); p.StatusCode != 200 || p.Request.URL.Path != base {
			t.Errorf("start after override: status %d at %s", p.StatusCode, p.Request.URL.Path)
		}
		waitFor(t, "the campaign to start", 10*time.Second, func() bool {
			cp, _ := s.Campaign(ctx, id)
			return cp.Status != models.CampaignDraft
		})

		// The API: admins' tokens only, with a reason.
		id3 := newCampaign(t, s, tmpl, []int64{list}, nil)
		token := func(email, role string) string {
			u, err := s.CreateUser(ctx, email, "", "correct horse battery", role)
			if err != nil {
				t.Fatal(err)
			}
			tok, _, err := s.CreateAPIToken(ctx, u.ID, "test")
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}
		adminTok, marketerTok := token("ops@example.com", models.RoleAdmin), token("api@example.com", models.RoleMarketer)
		path := fmt.Sprintf("/api/v1/campaigns/%d/dns-override", id3)
		if p := app.api("POST", path, marketerTok, `{"reason":"please"}`); p.StatusCode != 403 {
			t.Errorf("API override with a marketer's token = %d, want 403", p.StatusCode)
		}
		if p := app.api("POST", path, adminTok, `{"reason":""}`); p.StatusCode != 422 || !strings.Contains(p.Body, "Say why") {
			t.Errorf("API override without a reason = %d %s", p.StatusCode, p.Body)
		}
		if p := app.api("POST", path, adminTok, `{"reason":"scripted: DNS host is slow"}`); p.StatusCode != 200 {
			t.Errorf("API override = %d %s", p.StatusCode, p.Body)
		}
		if p := app.api("POST", fmt.Sprintf("/api/v1/campaigns/%d/start", id3), marketerTok, ""); p.StatusCode != 200 {
			t.Errorf("API start after the API override = %d %s", p.StatusCode, p.Body)
		}
		if o, err := s.CampaignDNSOverride(ctx, id3); err != nil || o.UserEmail != "ops@example.com" || o.Domain != "acme.test" {
			t.Errorf("stored API override = %+v, %v", o, err)
		}
		if n := countAction(auditActions(t, s), "campaign.dns_override"); n != 2 {
			t.Errorf("%d override audit entries, want 2 (dashboard and API)", n)
		}

		// A second campaign, with the records right: it starts without an override.
		id2 := newCampaign(t, s, tmpl, []int64{list}, nil)
		if err := s.AddSendingIP(ctx, &models.SendingIP{PoolID: mustPool(t, s, "main"), Address: "192.0.2.10", Active: true}); err != nil {
			t.Fatal(err)
		}
		v, _, err := (&sendingPages{app.srv.app}).domainView(ctx, sd.ID)
		if err != nil {
			t.Fatal(err)
		}
		ns.Remove("_dmarc.acme.test", "TXT")
		for _, r := range v.Records {
			ns.Records(t, r)
		}
		admin.postForm(fmt.Sprintf("/deliverability/domains/%d/check", sd.ID), url.Values{})
		p = admin.get(fmt.Sprintf("/campaigns/%d", id2))
		if st := p.Doc.Find(`[data-testid="check-campaign.dns"]`).AttrOr("data-state", ""); st != "ok" {
			t.Errorf("DNS rule with the records published = %q: %q", st, p.Doc.Find(`[data-testid="check-campaign.dns"]`).Text())
		}
		// A sending address added after the check: the check no longer
		// covers it, and the rule says so.
		if err := s.AddSendingIP(ctx, &models.SendingIP{PoolID: mustPool(t, s, "extra"), Address: "192.0.2.11", Active: true}); err != nil {
			t.Fatal(err)
		}
		p = marketer.postForm(fmt.Sprintf("/campaigns/%d/start", id2), url.Values{"confirm": {"yes"}})
		if msg := p.Doc.Find(`[data-testid="start-error"]`).Text(); p.StatusCode != 422 || !strings.Contains(msg, "192.0.2.11") {
			t.Errorf("start after a new address = %d %q, want 422 naming 192.0.2.11", p.StatusCode, msg)
		}
		v, _, err = (&sendingPages{app.srv.app}).domainView(ctx, sd.ID)
		if err != nil {
			t.Fatal(err)
		}
		ns.Remove("bounces.acme.test", "TXT")
		for _, r := range v.Records {
			if r.Purpose == "spf" {
				ns.Records(t, r)
			}
		}
		admin.postForm(fmt.Sprintf("/deliverability/domains/%d/check", sd.ID), url.Values{})
		if p := marketer.postForm(fmt.Sprintf("/campaigns/%d/start", id2), url.Values{"confirm": {"yes"}}); p.StatusCode != 200 {
			t.Errorf("start with DNS right: status %d %q", p.StatusCode, p.Doc.Find(`[data-testid="start-error"]`).Text())
		}
	})
}
