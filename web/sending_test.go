package web

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"github.com/herald-mail/herald/internal/e2e"
	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

// auditActions returns the actions of the audit log, oldest first.
func auditActions(t *testing.T, s *models.Store) []string {
	t.Helper()
	es, _, err := s.AuditPage(context.Background(), models.AuditQuery{Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(es))
	for i, e := range es {
		out[len(es)-1-i] = e.Action
	}
	return out
}

func countAction(actions []string, a string) int {
	n := 0
	for _, x := range actions {
		if x == a {
			n++
		}
	}
	return n
}

// htmxPost posts a form as htmx does: token in the header, HX-Request set.
func (c *client) htmxPost(path string, v url.Values) *page {
	req, _ := http.NewRequest("POST", c.app.http.URL+path, strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("HX-Request", "true")
	req.Header.Set("X-CSRF-Token", c.csrf)
	return c.do(req)
}

func TestSendingDomainsRolesValidationAndAudit(t *testing.T) {
	app := newTestApp(t, nil)
	admin, marketer, viewer := app.user(models.RoleAdmin), app.user(models.RoleMarketer), app.user(models.RoleViewer)

	p := viewer.get("/deliverability/domains")
	if p.StatusCode != 200 || p.Doc.Find(`[data-testid="empty"]`).Length() != 1 {
		t.Fatalf("viewer, no domains: status %d, empty state %d", p.StatusCode, p.Doc.Find(`[data-testid="empty"]`).Length())
	}
	form := url.Values{"domain": {"News.Example.COM."}, "ed25519": {"1"}, "spf_includes": {"_spf.relay.example"}}
	for _, c := range []*client{viewer, marketer} {
		if p := c.postForm("/deliverability/domains", form); p.StatusCode != 403 {
			t.Errorf("non-admin adds a domain: status %d, want 403", p.StatusCode)
		}
		if p := c.get("/deliverability/domains/new"); p.StatusCode != 403 {
			t.Errorf("non-admin opens the form: status %d, want 403", p.StatusCode)
		}
	}
	bad := []struct {
		form  url.Values
		field string
		says  string
	}{
		{url.Values{"domain": {"localhost"}}, "domain", "no dot"},
		{url.Values{"domain": {"192.0.2.1"}}, "domain", "not an IP address"},
		{url.Values{"domain": {"https://example.com/x"}}, "domain", "leave out"},
		{url.Values{"domain": {"ex ample.com"}}, "domain", "not a domain name"},
		{url.Values{"domain": {"example.com"}, "selector": {"bad selector!"}}, "selector", "letters, digits and hyphens"},
		{url.Values{"domain": {"example.com"}, "return_path_domain": {"bounces.other.org"}}, "return_path_domain", "subdomain"},
		{url.Values{"domain": {"example.com"}, "spf_includes": {"not a domain!"}}, "spf_includes", "SPF include"},
	}
	for _, b := range bad {
		p := admin.postForm("/deliverability/domains", b.form)
		msg := p.Doc.Find(`[data-testid="err-` + b.field + `"]`).Text()
		if p.StatusCode != 422 || !strings.Contains(msg, b.says) {
			t.Errorf("add %v: status %d, %s message %q; want 422 saying %q", b.form, p.StatusCode, b.field, msg, b.says)
		}
		if v, _ := p.Doc.Find(`input[name="domain"]`).Attr("value"); v != b.form.Get("domain") {
			t.Errorf("add %v: form re-rendered with domain %q, want what was typed", b.form, v)
		}
	}
	if n := countAction(auditActions(t, app.store), "sending_domain.create"); n != 0 {
		t.Fatalf("refused forms wrote %d audit rows", n)
	}

	p = admin.postForm("/deliverability/domains", form)
	if p.StatusCode != 200 || !strings.HasPrefix(p.Request.URL.Path, "/deliverability/domains/") {
		t.Fatalf("add domain: status %d at %s", p.StatusCode, p.Request.URL.Path)
	}
	sd, err := app.store.SendingDomainByName(context.Background(), "news.example.com")
	if err != nil {
		t.Fatalf("domain not stored normalised: %v", err)
	}
	if sd.ReturnPathDomain != "bounces.news.example.com" || sd.Ed25519Public == "" || sd.SPFIncludes != "_spf.relay.example" {
		t.Errorf("stored domain = %+v", sd)
	}
	if strings.Contains(p.Body, sd.RSAPrivate) || strings.Contains(p.Body, "PRIVATE") {
		t.Errorf("the domain page shows private key material")
	}
	// The page shows the exact records: DKIM for both keys, SPF with the
	// relay's include, DMARC and the return path.
	wants := map[string]string{
		"dkim":         "v=DKIM1; k=rsa; p=" + sd.RSAPublic,
		"dkim-ed25519": "v=DKIM1; k=ed25519; p=" + sd.Ed25519Public,
		"spf":          "v=spf1 include:_spf.relay.example ~all",
		"return-path":  "10 herald.test",
		"dmarc":        "v=DMARC1; p=none; rua=mailto:dmarc@bounces.news.example.com; adkim=r; aspf=r",
		"tlsrpt":       "v=TLSRPTv1; rua=mailto:tlsrpt@bounces.news.example.com",
	}
	for purpose, want := range wants {
		row := p.Doc.Find(`[data-testid="record-` + purpose + `"]`)
		if got := row.Find(`[data-testid="value"]`).Text(); got != want {
			t.Errorf("record %s value = %q, want %q", purpose, got, want)
		}
		if st := strings.TrimSpace(row.Find(`[data-testid="state-badge"]`).Text()); st != "not checked" {
			t.Errorf("record %s state before any check = %q", purpose, st)
		}
	}
	if name := p.Doc.Find(`[data-testid="record-dkim"] [data-testid="name"]`).Text(); name != sd.Selector+"._domainkey.news.example.com" {
		t.Errorf("DKIM record name = %q", name)
	}

	// Readers see the list and the page; the duplicate is refused.
	if p := viewer.get("/deliverability/domains"); p.StatusCode != 200 || p.Doc.Find(fmt.Sprintf(`[data-testid="domain-%d"]`, sd.ID)).Length() != 1 {
		t.Errorf("viewer list: status %d, row present %d", p.StatusCode, p.Doc.Find(fmt.Sprintf(`[data-testid="domain-%d"]`, sd.ID)).Length())
	}
	if p := marketer.get(fmt.Sprintf("/deliverability/domains/%d", sd.ID)); p.StatusCode != 200 || p.Doc.Find(`[data-testid="check-dns"]`).Length() != 0 {
		t.Errorf("marketer domain page: status %d, check button shown %d times (want read-only)", p.StatusCode, p.Doc.Find(`[data-testid="check-dns"]`).Length())
	}
	if p := admin.postForm("/deliverability/domains", form); p.StatusCode != 422 || !strings.Contains(p.Doc.Find(`[data-testid="err-domain"]`).Text(), "already") {
		t.Errorf("duplicate domain: status %d", p.StatusCode)
	}

	// Rotation: a new key under a new selector, the check cleared.
	path := fmt.Sprintf("/deliverability/domains/%d", sd.ID)
	if p := marketer.postForm(path+"/rotate", url.Values{}); p.StatusCode != 403 {
		t.Errorf("marketer rotates: status %d, want 403", p.StatusCode)
	}
	if p := admin.postForm(path+"/rotate", url.Values{"selector": {sd.Selector}}); p.StatusCode != 422 || !strings.Contains(p.Body, "other than the current") {
		t.Errorf("rotate to the same selector: status %d, want 422", p.StatusCode)
	}
	if err := app.store.SaveDNSCheck(context.Background(), sd.ID, true, `{"OK":true}`); err != nil {
		t.Fatal(err)
	}
	p = admin.postForm(path+"/rotate", url.Values{"selector": {"Spring2027"}})
	after, _ := app.store.SendingDomain(context.Background(), sd.ID)
	if p.StatusCode != 200 || after.Selector != "spring2027" || after.Ed25519Selector != "spring2027e" || after.RSAPublic == sd.RSAPublic || after.Ed25519Public == sd.Ed25519Public {
		t.Fatalf("rotate: status %d, selector %q/%q, RSA changed %v", p.StatusCode, after.Selector, after.Ed25519Selector, after.RSAPublic != sd.RSAPublic)
	}
	if after.DNSCheckedAt != nil || after.DNSOK {
		t.Errorf("rotation kept the old DNS check (checked %v, ok %v)", after.DNSCheckedAt, after.DNSOK)
	}
	if keys, err := after.Keys(app.srv.cfg.Secret); err != nil || keys.Selector != "spring2027" {
		t.Errorf("rotated keys do not open with the server secret: %v", err)
	}

	// Deletion asks first, then removes the domain.
	if p := admin.get(path + "/delete"); p.StatusCode != 200 || p.Doc.Find(`[data-testid="confirm-delete"]`).Length() != 1 {
		t.Errorf("delete confirmation: status %d", p.StatusCode)
	}
	if p := marketer.postForm(path+"/delete", url.Values{}); p.StatusCode != 403 {
		t.Errorf("marketer deletes: status %d", p.StatusCode)
	}
	if p := admin.postForm(path+"/delete", url.Values{}); p.StatusCode != 200 || p.Request.URL.Path != "/deliverability/domains" {
		t.Errorf("delete: status %d at %s", p.StatusCode, p.Request.URL.Path)
	}
	if _, err := app.store.SendingDomain(context.Background(), sd.ID); err == nil {
		t.Errorf("domain still stored after delete")
	}
	if p := admin.get(path); p.StatusCode != 404 {
		t.Errorf("deleted domain page: status %d, want 404", p.StatusCode)
	}
	acts := auditActions(t, app.store)
	for _, a := range []string{"sending_domain.create", "sending_domain.rotate", "sending_domain.delete"} {
		if countAction(acts, a) != 1 {
			t.Errorf("audit log %v: want one %s", acts, a)
		}
	}
}

// The Check DNS button looks the records up on a (local) DNS server, says
// per record what is right, missing or wrong, and stores the result that
// SendingDomainStatuses reports.
func TestCheckDNSButton(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		app := newTestApp(t, s)
		ns := e2e.StartDNS(t)
		app.srv.cfg.DNSServer = ns.Addr
		admin, viewer := app.user(models.RoleAdmin), app.user(models.RoleViewer)
		sd, err := s.CreateSendingDomain(ctx, "brand.example", app.srv.cfg.Secret, models.SendingDomainOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.AddSendingIP(ctx, &models.SendingIP{PoolID: mustPool(t, s, "main"), Address: "192.0.2.10", Active: true}); err != nil {
			t.Fatal(err)
		}
		path := fmt.Sprintf("/deliverability/domains/%d", sd.ID)
		p := admin.get(path)
		recs := map[string]models.DNSRecord{}
		p.Doc.Find(`[data-testid^="record-"]`).Each(func(_ int, row *goquery.Selection) {
			purpose, _ := row.Attr("data-testid")
			purpose = strings.TrimPrefix(purpose, "record-")
			recs[purpose] = models.DNSRecord{Purpose: purpose, Type: strings.TrimSpace(row.Find("td").Eq(1).Text()),
				Name: row.Find(`[data-testid="name"]`).Text(), Value: row.Find(`[data-testid="value"]`).Text()}
		})
		if len(recs) != 5 || !strings.Contains(recs["spf"].Value, "ip4:192.0.2.10") || recs["tlsrpt"].Name != "_smtp._tls.bounces.brand.example" {
			t.Fatalf("records on the page = %+v; want dkim, spf (with the pool's address), dmarc, return-path, tlsrpt", recs)
		}
		// Publish DKIM as shown, an SPF record without our address, nothing
		// for DMARC, and the return-path MX pointing elsewhere.
		ns.Records(t, recs["dkim"])
		ns.Add(t, `bounces.brand.example. 300 IN TXT "v=spf1 include:_spf.other.example ~all"`)
		ns.Add(t, `_spf.other.example. 300 IN TXT "v=spf1 ip4:198.51.100.0/24 -all"`)
		ns.Add(t, `bounces.brand.example. 300 IN MX 10 mx.elsewhere.example.`)

		if p := viewer.htmxPost(path+"/check", url.Values{}); p.StatusCode != 403 {
			t.Errorf("viewer checks DNS: status %d, want 403", p.StatusCode)
		}
		p = admin.htmxPost(path+"/check", url.Values{})
		if p.StatusCode != 200 || p.Doc.Find(`#dns-records`).Length() != 1 || p.Doc.Find(`[data-testid="domain-name"]`).Length() != 0 {
			t.Fatalf("htmx check: status %d; want the records panel alone; body %.300s", p.StatusCode, p.Body)
		}
		wantState := map[string]string{"dkim": "ok", "spf": "wrong", "dmarc": "missing", "return-path": "wrong"}
		for purpose, want := range wantState {
			row := p.Doc.Find(`[data-testid="record-` + purpose + `"]`)
			if got := strings.TrimSpace(row.Find(`[data-testid="state-badge"]`).Text()); got != want {
				t.Errorf("%s: state %q (%s), want %q", purpose, got, row.Find(`[data-testid="problem"]`).Text(), want)
			}
			if want != "ok" && row.Find(`[data-testid="fix"]`).Text() == "" {
				t.Errorf("%s: no fix hint", purpose)
			}
		}
		if got := p.Doc.Find(`[data-testid="record-spf"] [data-testid="problem"]`).Text(); !strings.Contains(got, "ip4:192.0.2.10") {
			t.Errorf("SPF problem = %q, want it to name the missing ip4:192.0.2.10", got)
		}
		st := statusOf(t, s, sd.ID)
		if !st.Checked || st.CheckedAt == nil || st.OK || !st.DKIM || st.SPF || st.DMARC || st.ReturnPath {
			t.Errorf("stored status after a partial check = %+v; want checked, DKIM only", st)
		}

		// Fix everything as the page says: all right, stored as such.
		ns.Remove("bounces.brand.example", "TXT")
		ns.Remove("bounces.brand.example", "MX")
		for _, purpose := range []string{"spf", "dmarc", "return-path"} {
			ns.Records(t, recs[purpose])
		}
		p = admin.postForm(path+"/check", url.Values{}) // without htmx: back to the page with a flash
		if p.StatusCode != 200 || p.Request.URL.Path != path || !strings.Contains(p.Doc.Find(`[data-testid="flash"]`).Text(), "all records right") {
			t.Fatalf("plain check: status %d at %s, flash %q", p.StatusCode, p.Request.URL.Path, p.Doc.Find(`[data-testid="flash"]`).Text())
		}
		// Five: the optional TLS-RPT record, not published, counts as ok.
		if n := p.Doc.Find(`[data-testid="state-badge"]`).FilterFunction(func(_ int, s *goquery.Selection) bool { return strings.TrimSpace(s.Text()) == "ok" }).Length(); n != 5 {
			t.Errorf("%d records shown ok after fixing, want 5", n)
		}
		st = statusOf(t, s, sd.ID)
		if !st.OK || !st.DKIM || !st.SPF || !st.DMARC || !st.ReturnPath || time.Since(*st.CheckedAt) > time.Minute {
			t.Errorf("stored status after a full check = %+v", st)
		}
		if p := viewer.get("/deliverability/domains"); strings.TrimSpace(p.Doc.Find(`[data-testid="status"]`).Text()) != "verified" {
			t.Errorf("list status = %q, want verified", p.Doc.Find(`[data-testid="status"]`).Text())
		}
		if viewer.get(path).Doc.Find(`[data-testid="stale"]`).Length() != 0 {
			t.Errorf("fresh check flagged as stale")
		}
		// A new sending address changes the SPF record: the page says the
		// check no longer covers it.
		if err := s.AddSendingIP(ctx, &models.SendingIP{PoolID: mustPool(t, s, "extra"), Address: "192.0.2.11", Active: true}); err != nil {
			t.Fatal(err)
		}
		p = viewer.get(path)
		if p.Doc.Find(`[data-testid="stale"]`).Length() != 1 || strings.TrimSpace(p.Doc.Find(`[data-testid="record-spf"] [data-testid="state-badge"]`).Text()) != "not checked" {
			t.Errorf("after adding an address: stale note %d, SPF state %q", p.Doc.Find(`[data-testid="stale"]`).Length(), p.Doc.Find(`[data-testid="record-spf"] [data-testid="state-badge"]`).Text())
		}
		if n := countAction(auditActions(t, s), "sending_domain.check"); n != 2 {
			t.Errorf("audit has %d DNS checks, want 2", n)
		}
	})
}

func statusOf(t *testing.T, s *models.Store, id int64) models.SendingDomainStatus {
	t.Helper()
	all, err := s.SendingDomainStatuses(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range all {
		if st.ID == id {
			return st
		}
	}
	t.Fatalf("domain %d missing from SendingDomainStatuses", id)
	return models.SendingDomainStatus{}
}

func mustPool(t *testing.T, s *models.Store, name string) int64 {
	t.Helper()
	p := &models.IPPool{Name: name}
	if err := s.CreateIPPool(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	return p.ID
}

func TestDomainRulesPage(t *testing.T) {
	app := newTestApp(t, nil)
	ctx := context.Background()
	admin, marketer, viewer := app.user(models.RoleAdmin), app.user(models.RoleMarketer), app.user(models.RoleViewer)
	p := viewer.get("/deliverability/rules")
	if p.StatusCode != 200 || p.Doc.Find(`[data-testid="rules-table"] tbody tr`).Length() != 5 {
		t.Fatalf("viewer rules page: status %d, %d rows; want the 5 seeded rules", p.StatusCode, p.Doc.Find(`[data-testid="rules-table"] tbody tr`).Length())
	}
	if p.Doc.Find(`[data-testid="new-rule"]`).Length() != 0 {
		t.Errorf("viewer sees the new-rule button")
	}
	good := url.Values{"name": {"fastmail"}, "domains": {"fastmail.com, FastMail.fm"}, "mx_suffixes": {"messagingengine.com"},
		"per_second": {"2.5"}, "per_minute": {"100"}, "per_hour": {"3000"}, "max_connections": {"2"}, "max_per_connection": {"50"},
		"backoff_min_seconds": {"120"}, "backoff_max_seconds": {"1800"}, "position": {"50"}}
	if p := marketer.postForm("/deliverability/rules", good); p.StatusCode != 403 {
		t.Errorf("marketer adds a rule: status %d, want 403", p.StatusCode)
	}
	with := func(k, v string) url.Values {
		f := url.Values{}
		for kk, vv := range good {
			f[kk] = vv
		}
		f.Set(k, v)
		return f
	}
	bad := []struct {
		form        url.Values
		field, says string
	}{
		{with("name", " "), "name", "Give the rule a name"},
		{with("per_second", "fast"), "per_second", "not a number"},
		{with("per_minute", "-5"), "per_minute", "between 0"},
		{with("max_connections", "1.5"), "max_connections", "not a whole number"},
		{with("backoff_max_seconds", "60"), "backoff_max_seconds", "at least the first"},
		{with("domains", "not a domain!"), "domains", "Recipient domains"},
		{with("per_hour", "50"), "per_hour", "below the per-minute"},
	}
	for _, b := range bad {
		b.form.Set("mx_suffixes", b.form.Get("mx_suffixes"))
		if b.field == "domains" {
			b.form.Set("mx_suffixes", "")
		}
		p := admin.postForm("/deliverability/rules", b.form)
		if msg := p.Doc.Find(`[data-testid="err-` + b.field + `"]`).Text(); p.StatusCode != 422 || !strings.Contains(msg, b.says) {
			t.Errorf("rule with %s=%q: status %d, message %q; want 422 saying %q", b.field, b.form.Get(b.field), p.StatusCode, msg, b.says)
		}
	}
	if p := admin.postForm("/deliverability/rules", with("name", "google")); p.StatusCode != 422 || !strings.Contains(p.Doc.Find(`[data-testid="err-name"]`).Text(), "exists") {
		t.Errorf("duplicate rule name: status %d", p.StatusCode)
	}
	if p := admin.postForm("/deliverability/rules", good); p.StatusCode != 200 || p.Doc.Find(`[data-testid="rule-fastmail"]`).Length() != 1 {
		t.Fatalf("add rule: status %d", p.StatusCode)
	}
	rules, _ := app.store.DomainRules(ctx)
	var fm, def models.DomainRule
	for _, r := range rules {
		switch r.Name {
		case "fastmail":
			fm = r
		case "default":
			def = r
		}
	}
	if fm.Domains != "fastmail.com fastmail.fm" || fm.PerSecond != 2.5 || fm.MaxPerConnection != 50 || fm.IsDefault {
		t.Errorf("stored rule = %+v", fm)
	}
	edit := with("per_second", "4")
	if p := admin.postForm(fmt.Sprintf("/deliverability/rules/%d", fm.ID), edit); p.StatusCode != 200 {
		t.Errorf("edit rule: status %d", p.StatusCode)
	}
	if r, _ := app.store.DomainRule(ctx, fm.ID); r.PerSecond != 4 || r.RequireTLS {
		t.Errorf("edited rule per second = %v, require TLS %v; want 4, false", r.PerSecond, r.RequireTLS)
	}
	// Requiring TLS with a valid certificate: stored, shown in the table
	// and ticked in the form; unticking it turns it off again.
	if p := admin.postForm(fmt.Sprintf("/deliverability/rules/%d", fm.ID), with("require_tls", "1")); p.StatusCode != 200 ||
		strings.TrimSpace(p.Doc.Find(`[data-testid="rule-fastmail"] [data-testid="require-tls"]`).Text()) != "required" {
		t.Errorf("rule requiring TLS: status %d, table says %q", p.StatusCode, p.Doc.Find(`[data-testid="rule-fastmail"] [data-testid="require-tls"]`).Text())
	}
	if r, _ := app.store.DomainRule(ctx, fm.ID); !r.RequireTLS {
		t.Errorf("stored rule does not require TLS after the box was ticked")
	}
	if p := admin.get(fmt.Sprintf("/deliverability/rules/%d/edit", fm.ID)); p.Doc.Find(`[data-testid="require-tls"][checked]`).Length() != 1 {
		t.Errorf("edit form does not show the require-TLS box ticked")
	}
	if admin.postForm(fmt.Sprintf("/deliverability/rules/%d", fm.ID), edit); func() bool { r, _ := app.store.DomainRule(ctx, fm.ID); return r.RequireTLS }() {
		t.Errorf("rule still requires TLS after the box was unticked")
	}
	// The default rule takes no domains and cannot be deleted.
	if p := admin.postForm(fmt.Sprintf("/deliverability/rules/%d", def.ID), with("domains", "x.example")); p.StatusCode != 422 {
		t.Errorf("default rule with domains: status %d, want 422", p.StatusCode)
	}
	if p := admin.postForm(fmt.Sprintf("/deliverability/rules/%d/delete", def.ID), url.Values{}); p.StatusCode != 409 {
		t.Errorf("delete the default rule: status %d, want 409", p.StatusCode)
	}
	if p := admin.get(fmt.Sprintf("/deliverability/rules/%d/delete", fm.ID)); p.Doc.Find(`[data-testid="confirm-delete"]`).Length() != 1 {
		t.Errorf("no delete confirmation")
	}
	if p := admin.postForm(fmt.Sprintf("/deliverability/rules/%d/delete", fm.ID), url.Values{}); p.StatusCode != 200 {
		t.Errorf("delete rule: status %d", p.StatusCode)
	}
	if _, err := app.store.DomainRule(ctx, fm.ID); err == nil {
		t.Errorf("rule still stored after delete")
	}
	// Reset after a change restores the defaults exactly.
	google := rules[0]
	google.PerSecond = 1
	if err := app.store.UpdateDomainRule(ctx, &google); err != nil {
		t.Fatal(err)
	}
	if p := marketer.postForm("/deliverability/rules/reset", url.Values{}); p.StatusCode != 403 {
		t.Errorf("marketer resets: status %d", p.StatusCode)
	}
	if p := admin.get("/deliverability/rules/reset"); p.Doc.Find(`[data-testid="confirm-reset"]`).Length() != 1 {
		t.Errorf("no reset confirmation")
	}
	if p := admin.postForm("/deliverability/rules/reset", url.Values{}); p.StatusCode != 200 {
		t.Errorf("reset: status %d", p.StatusCode)
	}
	got, _ := app.store.DomainRules(ctx)
	if len(got) != len(models.DefaultDomainRules) || got[0].Name != "google" || got[0].PerSecond != 20 {
		t.Errorf("rules after reset = %+v", got)
	}
	acts := auditActions(t, app.store)
	for a, n := range map[string]int{"domain_rule.create": 1, "domain_rule.update": 3, "domain_rule.delete": 1, "domain_rule.reset": 1} {
		if countAction(acts, a) != n {
			t.Errorf("audit log %v: want %d %s", acts, n, a)
		}
	}
}

func TestIPPoolsAndWarmup(t *testing.T) {
	app := newTestApp(t, nil)
	ctx := context.Background()
	admin, marketer, viewer := app.user(models.RoleAdmin), app.user(models.RoleMarketer), app.user(models.RoleViewer)
	if p := viewer.get("/deliverability/rules"); p.Doc.Find(`[data-testid="empty"]`).Length() != 1 {
		t.Errorf("no pools: want an empty state")
	}
	if p := marketer.postForm("/deliverability/pools", url.Values{"name": {"bulk"}}); p.StatusCode != 403 {
		t.Errorf("marketer creates a pool: status %d", p.StatusCode)
	}
	if p := admin.postForm("/deliverability/pools", url.Values{"name": {" "}}); p.StatusCode != 422 || p.Doc.Find(`[data-testid="err-name"]`).Length() != 1 {
		t.Errorf("nameless pool: status %d", p.StatusCode)
	}
	if p := admin.postForm("/deliverability/pools", url.Values{"name": {"bulk"}, "strategy": {"random"}}); p.StatusCode != 422 {
		t.Errorf("bad strategy: status %d", p.StatusCode)
	}
	p := admin.postForm("/deliverability/pools", url.Values{"name": {"bulk"}, "strategy": {"weighted"}})
	if p.StatusCode != 200 || p.Doc.Find(`[data-testid="pool-name"]`).Text() != "bulk" {
		t.Fatalf("create pool: status %d at %s", p.StatusCode, p.Request.URL.Path)
	}
	poolPath := p.Request.URL.Path
	if p := admin.postForm("/deliverability/pools", url.Values{"name": {"bulk"}}); p.StatusCode != 422 {
		t.Errorf("duplicate pool: status %d", p.StatusCode)
	}
	start := time.Now().UTC().AddDate(0, 0, -2).Format("2006-01-02") // third day: cap 200
	ip := url.Values{"address": {"127.0.0.20"}, "helo": {"Out1.Example.com"}, "weight": {"3"}, "per_second": {"5"}, "warmup_start": {start}, "active": {"1"}}
	with := func(k, v string) url.Values {
		f := url.Values{}
		for kk, vv := range ip {
			f[kk] = vv
		}
		f.Set(k, v)
		return f
	}
	for field, f := range map[string]url.Values{
		"address": with("address", "192.0.2.300"), "helo": with("helo", "out1"), "weight": with("weight", "0"),
		"per_second": with("per_second", "-1"), "warmup_start": with("warmup_start", "next week"),
	} {
		p := admin.postForm(poolPath+"/ips", f)
		if p.StatusCode != 422 || p.Doc.Find(`[data-testid="err-`+field+`"]`).Length() != 1 {
			t.Errorf("address with bad %s: status %d", field, p.StatusCode)
		}
	}
	// An address the machine does not have is refused, with the reason.
	if p := admin.postForm(poolPath+"/ips", with("address", "192.0.2.20")); p.StatusCode != 422 ||
		!strings.Contains(p.Doc.Find(`[data-testid="err-address"]`).Text(), "not an address of this machine") {
		t.Errorf("address not on the machine: status %d %q", p.StatusCode, p.Doc.Find(`[data-testid="err-address"]`).Text())
	}
	if p := admin.postForm(poolPath+"/ips", ip); p.StatusCode != 200 {
		t.Fatalf("add address: status %d", p.StatusCode)
	}
	if p := admin.postForm(poolPath+"/ips", ip); p.StatusCode != 422 || !strings.Contains(p.Body, "already in this pool") {
		t.Errorf("duplicate address: status %d", p.StatusCode)
	}
	p = viewer.get(poolPath)
	row := p.Doc.Find(`[data-testid="ip-127.0.0.20"]`)
	if got := strings.TrimSpace(row.Find(`[data-testid="cap"]`).Text()); got != "0 of 200" {
		t.Errorf("today's warm-up cell = %q, want \"0 of 200\" (day 3 of the default schedule)", got)
	}
	ips, _ := app.store.AllSendingIPs(ctx)
	if len(ips) != 1 || ips[0].HELO != "out1.example.com" || ips[0].Weight != 3 || ips[0].PerSecond != 5 || !ips[0].Active {
		t.Fatalf("stored addresses = %+v", ips)
	}
	ipPath := fmt.Sprintf("%s/ips/%d", poolPath, ips[0].ID)
	if p := admin.postForm(ipPath, with("warmup_start", "")); p.StatusCode != 200 {
		t.Errorf("edit address: status %d", p.StatusCode)
	}
	if got := strings.TrimSpace(viewer.get(poolPath).Doc.Find(`[data-testid="cap"]`).Text()); got != "0, no cap" {
		t.Errorf("warmed address cap cell = %q", got)
	}
	if p := admin.postForm(ipPath+"/delete", url.Values{}); p.StatusCode != 200 {
		t.Errorf("remove address: status %d", p.StatusCode)
	}
	if p := admin.postForm(poolPath+"/delete", url.Values{}); p.StatusCode != 200 || p.Request.URL.Path != "/deliverability/rules" {
		t.Errorf("delete pool: status %d", p.StatusCode)
	}
	if pools, _ := app.store.IPPools(ctx); len(pools) != 0 {
		t.Errorf("pools after delete = %v", pools)
	}
	acts := auditActions(t, app.store)
	for _, a := range []string{"ip_pool.create", "sending_ip.create", "sending_ip.update", "sending_ip.delete", "ip_pool.delete"} {
		if countAction(acts, a) != 1 {
			t.Errorf("audit log %v: want one %s", acts, a)
		}
	}
}
