package web

import (
	"bytes"
	"context"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/internal/token"
	"github.com/herald-mail/herald/mailer"
	"github.com/herald-mail/herald/models"
)

// upload posts a multipart form with one file.
func (c *client) uploadFile(path, field, name, content string, fields url.Values) *page {
	c.t.Helper()
	if c.csrf == "" {
		c.get("/login")
	}
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	mw.WriteField("_csrf", c.csrf)
	for k, vs := range fields {
		for _, v := range vs {
			mw.WriteField(k, v)
		}
	}
	fw, _ := mw.CreateFormFile(field, name)
	fw.Write([]byte(content))
	mw.Close()
	req, _ := http.NewRequest("POST", c.app.http.URL+path, &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return c.do(req)
}

func auditHas(t *testing.T, s *models.Store, action, contains string) bool {
	t.Helper()
	log, _, err := s.AuditPage(context.Background(), models.AuditQuery{Limit: 200})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range log {
		if e.Action == action && strings.Contains(e.Summary+" "+e.ObjectID, contains) {
			return true
		}
	}
	return false
}

func TestSuppressionListPage(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		app := newTestApp(t, s)
		viewer, marketer := app.user(models.RoleViewer), app.user(models.RoleMarketer)

		p := viewer.get("/deliverability/suppressions")
		if p.StatusCode != 200 || p.Doc.Find(`[data-testid="empty"]`).Length() != 1 {
			t.Fatalf("empty list: status %d, empty state %d", p.StatusCode, p.Doc.Find(`[data-testid="empty"]`).Length())
		}
		if p.Doc.Find(`form[data-testid="add-suppression"]`).Length() != 0 {
			t.Error("a viewer sees the add form")
		}
		if p := viewer.postForm("/deliverability/suppressions", url.Values{"value": {"x@example.com"}}); p.StatusCode != 403 {
			t.Errorf("viewer adds: status %d, want 403", p.StatusCode)
		}

		// Single address, domain, and bad input.
		if p := marketer.postForm("/deliverability/suppressions", url.Values{"kind": {"address"}, "value": {"Someone@Example.COM"}, "note": {"asked by phone"}}); p.StatusCode != 200 {
			t.Fatalf("add address: status %d", p.StatusCode)
		}
		if p := marketer.postForm("/deliverability/suppressions", url.Values{"kind": {"domain"}, "value": {"spamtrap.example"}}); p.StatusCode != 200 {
			t.Fatalf("add domain: status %d", p.StatusCode)
		}
		p = marketer.postForm("/deliverability/suppressions", url.Values{"kind": {"address"}, "value": {"no-at-sign"}})
		if p.StatusCode != 422 || p.Doc.Find(`[data-testid="err-value"]`).Length() != 1 {
			t.Errorf("bad address: status %d, want 422 with a field message", p.StatusCode)
		}
		p = marketer.postForm("/deliverability/suppressions", url.Values{"kind": {"domain"}, "value": {"nodot"}})
		if p.StatusCode != 422 || !strings.Contains(p.Doc.Find(`[data-testid="err-value"]`).Text(), "not a valid domain") {
			t.Errorf("bad domain: status %d, message %q", p.StatusCode, p.Doc.Find(`[data-testid="err-value"]`).Text())
		}
		sub := &models.Subscriber{Email: "user@spamtrap.example"}
		if err := s.CreateSubscriber(ctx, sub, nil, models.Evidence{Source: models.SourceAdmin}); err != models.ErrSuppressed && !strings.Contains(fmt.Sprint(err), "suppression") {
			t.Errorf("CreateSubscriber on a suppressed domain = %v, want ErrSuppressed", err)
		}
		if !auditHas(t, s, "suppression.add", "someone@example.com") || !auditHas(t, s, "suppression.add", "@spamtrap.example") {
			t.Error("additions not audited")
		}

		// CSV upload: accepted and rejected rows are reported, valid ones kept.
		csv := "email\nalpha@example.org\n@blocked.example\nnot an address\nbeta@example.org\n,\nalpha@example.org\nfoo@bar\n"
		p = marketer.uploadFile("/deliverability/suppressions/upload", "file", "old.csv", csv, nil)
		if p.StatusCode != 200 {
			t.Fatalf("upload: status %d: %.300s", p.StatusCode, p.Body)
		}
		acc, rej, ex := p.Doc.Find(`[data-testid="accepted"]`).Text(), p.Doc.Find(`[data-testid="rejected"]`).Text(), p.Doc.Find(`[data-testid="existing"]`).Text()
		if acc != "3" || rej != "2" || ex != "1" {
			t.Errorf("upload result accepted/rejected/existing = %s/%s/%s, want 3/2/1", acc, rej, ex)
		}
		if rows := p.Doc.Find(`[data-testid="rejected-rows"] tbody tr`); rows.Length() != 2 || !strings.Contains(rows.First().Text(), "4") {
			t.Errorf("rejected rows = %d (%q), want 2 starting at line 4", rows.Length(), rows.First().Text())
		}

		// Erased entries show as a hash and cannot be removed.
		if err := s.AddSuppression(ctx, "gone@example.net", models.SuppressErased, ""); err != nil {
			t.Fatal(err)
		}
		p = viewer.get("/deliverability/suppressions")
		if n := p.Doc.Find(`[data-testid="suppressions-table"] tbody tr`).Length(); n != 6 {
			t.Errorf("table rows = %d, want 6", n)
		}
		first := p.Doc.Find(`[data-testid="suppressions-table"] tbody tr`).First()
		if v := first.Find(`[data-testid="value"]`).Text(); !strings.Contains(v, "sha256:") || strings.Contains(p.Body, "gone@example.net") {
			t.Errorf("erased entry shows %q; want a hash and never the address", v)
		}
		if first.Find(`[data-testid="remove"]`).Length() != 0 {
			t.Error("erased entry offers Remove")
		}

		// Search by prefix.
		p = viewer.get("/deliverability/suppressions?q=" + url.QueryEscape("@"))
		if n := p.Doc.Find(`[data-testid="suppressions-table"] tbody tr`).Length(); n != 2 {
			t.Errorf("search @ found %d rows, want the 2 domains", n)
		}
		p = viewer.get("/deliverability/suppressions?q=zzz")
		if p.Doc.Find(`[data-testid="no-results"]`).Length() != 1 {
			t.Error("no-match search shows no 'no results' message")
		}

		// Removal needs a reason and is audited.
		page, _ := s.SearchSuppressions(ctx, models.SuppressionQuery{Search: "someone@"})
		if len(page.Rows) != 1 {
			t.Fatalf("search someone@ = %d rows", len(page.Rows))
		}
		id := page.Rows[0].ID
		rm := fmt.Sprintf("/deliverability/suppressions/%d/remove", id)
		if p := marketer.get(rm); p.StatusCode != 200 || p.Doc.Find(`[data-testid="confirm-remove"]`).Length() != 1 {
			t.Fatalf("remove page: status %d", p.StatusCode)
		}
		if p := marketer.postForm(rm, url.Values{"reason": {"  "}}); p.StatusCode != 422 || p.Doc.Find(`[data-testid="err-reason"]`).Length() != 1 {
			t.Errorf("remove without reason: status %d, want 422 with a message", p.StatusCode)
		}
		if p := viewer.postForm(rm, url.Values{"reason": {"x"}}); p.StatusCode != 403 {
			t.Errorf("viewer removes: status %d, want 403", p.StatusCode)
		}
		if p := marketer.postForm(rm, url.Values{"reason": {"re-subscribed in person"}}); p.StatusCode != 200 {
			t.Fatalf("remove: status %d", p.StatusCode)
		}
		if _, err := s.Suppression(ctx, id); err == nil {
			t.Error("entry still there after removal")
		}
		if !auditHas(t, s, "suppression.remove", "re-subscribed in person") {
			t.Error("removal not audited with its reason")
		}
		erased, _ := s.SearchSuppressions(ctx, models.SuppressionQuery{Limit: 1})
		if p := marketer.postForm(fmt.Sprintf("/deliverability/suppressions/%d/remove", erased.Rows[0].ID), url.Values{"reason": {"try"}}); p.StatusCode != 409 {
			t.Errorf("removing an erased entry: status %d, want 409", p.StatusCode)
		}

		// Export.
		resp, err := viewer.hc.Get(app.http.URL + "/deliverability/suppressions/export.csv")
		if err != nil {
			t.Fatal(err)
		}
		var body bytes.Buffer
		body.ReadFrom(resp.Body)
		resp.Body.Close()
		out := body.String()
		if !strings.HasPrefix(out, "value,kind,reason,note,created_at\n") || !strings.Contains(out, "@blocked.example,domain,manual") ||
			!strings.Contains(out, "sha256:"+models.SuppressionHash("gone@example.net")) || strings.Contains(out, "someone@example.com") {
			t.Errorf("export:\n%s", out)
		}
	})
}

func TestSuppressionListPaginates(t *testing.T) {
	app := newTestApp(t, nil)
	ctx := context.Background()
	var b strings.Builder
	for i := range 75 {
		fmt.Fprintf(&b, "p%03d@example.com\n", i)
	}
	if res, err := app.store.ImportSuppressions(ctx, strings.NewReader(b.String()), models.SuppressManual, ""); err != nil || res.Added != 75 {
		t.Fatalf("ImportSuppressions() = %+v, %v", res, err)
	}
	viewer := app.user(models.RoleViewer)
	p := viewer.get("/deliverability/suppressions")
	if n := p.Doc.Find(`[data-testid="suppressions-table"] tbody tr`).Length(); n != 50 {
		t.Fatalf("first page has %d rows, want 50", n)
	}
	next, ok := p.Doc.Find(`[data-testid="next-page"]`).Attr("href")
	if !ok {
		t.Fatal("no next-page link")
	}
	p = viewer.get(next)
	rows := p.Doc.Find(`[data-testid="suppressions-table"] tbody tr`)
	if rows.Length() != 25 || p.Doc.Find(`[data-testid="next-page"]`).Length() != 0 {
		t.Fatalf("second page has %d rows (next link %d), want 25 and none", rows.Length(), p.Doc.Find(`[data-testid="next-page"]`).Length())
	}
	if v := strings.TrimSpace(rows.Last().Find(`[data-testid="value"]`).Text()); v != "p000@example.com" {
		t.Errorf("last row = %q, want the oldest entry", v)
	}
}

// sendTo makes n campaigns to one list holding emails, each sent to everyone,
// and returns the deliveries by address.
func sendTo(t *testing.T, s *models.Store, emails []string, n int) map[string][]int64 {
	t.Helper()
	ctx := context.Background()
	l := &models.List{Name: fmt.Sprint("list ", time.Now().UnixNano()), Optin: models.OptinSingle, Visibility: models.ListPrivate}
	if err := s.CreateList(ctx, l); err != nil {
		t.Fatal(err)
	}
	for _, e := range emails {
		if err := s.CreateSubscriber(ctx, &models.Subscriber{Email: e}, map[int64]string{l.ID: models.SubConfirmed}, models.Evidence{Source: models.SourceAdmin}); err != nil {
			t.Fatal(err)
		}
	}
	out := map[string][]int64{}
	for i := range n {
		c := &models.Campaign{Name: fmt.Sprint("c", i), FromEmail: "news@example.com"}
		if err := s.CreateCampaign(ctx, c, []int64{l.ID}); err != nil {
			t.Fatal(err)
		}
		if err := s.StartCampaign(ctx, c.ID); err != nil {
			t.Fatal(err)
		}
		for done := false; !done; {
			var err error
			if done, err = s.MaterializeCampaign(ctx, c.ID, 100); err != nil {
				t.Fatal(err)
			}
		}
		cl, err := s.ClaimDeliveries(ctx, models.ClaimRequest{Node: "t", Lease: time.Minute, Limit: 100, CampaignIDs: []int64{c.ID}})
		if err != nil || len(cl) != len(emails) {
			t.Fatalf("ClaimDeliveries() = %d rows, %v", len(cl), err)
		}
		var outs []models.Outcome
		for _, d := range cl {
			outs = append(outs, models.Outcome{ID: d.ID, LeaseGen: d.LeaseGen, CampaignID: c.ID, Status: models.DeliverySent, Attempted: true, Code: 250,
				MessageID: sentMessageID(d.ID), At: time.Now()})
			out[d.Email] = append(out[d.Email], d.ID)
		}
		if _, err := s.RecordOutcomes(ctx, outs); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// sentMessageID is the Message-ID the test deliveries went out with:
// Herald's signed form, but signed with a secret the server no longer
// holds, so reports about them are matched through the stored copy.
func sentMessageID(deliveryID int64) string {
	return "<" + token.NewKeyring("an earlier secret").Sign(token.MessageID, deliveryID) + "@herald.test>"
}

func TestHygieneSettings(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		app := newTestApp(t, s)
		admin, marketer := app.user(models.RoleAdmin), app.user(models.RoleMarketer)

		p := marketer.get("/deliverability/hygiene")
		if p.StatusCode != 200 || p.Doc.Find(`[data-testid="rule-limit"]`).Text() != "3" || p.Doc.Find(`[data-testid="rule-days"]`).Text() != "30" {
			t.Fatalf("hygiene page: status %d, rule %s in %s", p.StatusCode, p.Doc.Find(`[data-testid="rule-limit"]`).Text(), p.Doc.Find(`[data-testid="rule-days"]`).Text())
		}
		for path, v := range map[string]url.Values{
			"/deliverability/hygiene/rule":    {"limit": {"2"}, "days": {"30"}},
			"/deliverability/hygiene/apply":   {},
			"/deliverability/hygiene/staging": {"staging": {"on"}},
			"/deliverability/hygiene/allow":   {"value": {"a@example.com"}},
		} {
			if p := marketer.postForm(path, v); p.StatusCode != 403 {
				t.Errorf("marketer POST %s: status %d, want 403", path, p.StatusCode)
			}
		}
		if p := admin.postForm("/deliverability/hygiene/rule", url.Values{"limit": {"abc"}, "days": {"999"}}); p.StatusCode != 422 ||
			p.Doc.Find(`[data-testid="err-limit"]`).Length() != 1 || p.Doc.Find(`[data-testid="err-days"]`).Length() != 1 {
			t.Errorf("bad rule: status %d, want 422 with both field messages", p.StatusCode)
		}

		// Two addresses soft-bounced twice; one is allow-listed.
		d := sendTo(t, s, []string{"flaky@example.net", "tester@ourco.example", "fine@example.net"}, 2)
		for _, e := range []string{"flaky@example.net", "tester@ourco.example"} {
			for _, id := range d[e] {
				if _, err := s.RecordBounce(ctx, models.BounceNotice{DeliveryID: id, Kind: models.BounceSoft, Status: "4.2.2"}); err != nil {
					t.Fatal(err)
				}
			}
		}
		if p := admin.postForm("/deliverability/hygiene/allow", url.Values{"value": {"not valid@"}}); p.StatusCode != 422 || p.Doc.Find(`[data-testid="err-value"]`).Length() != 1 {
			t.Errorf("bad allow entry: status %d, want 422", p.StatusCode)
		}
		if p := admin.postForm("/deliverability/hygiene/allow", url.Values{"value": {"@ourco.example"}, "note": {"our team"}}); p.StatusCode != 200 ||
			!strings.Contains(p.Doc.Find(`[data-testid="allow-table"]`).Text(), "@ourco.example") {
			t.Fatalf("add allow entry: status %d", p.StatusCode)
		}
		if p := admin.postForm("/deliverability/hygiene/rule", url.Values{"limit": {"2"}, "days": {"14"}}); p.StatusCode != 200 ||
			p.Doc.Find(`[data-testid="rule-limit"]`).Text() != "2" || p.Doc.Find(`[data-testid="rule-days"]`).Text() != "14" {
			t.Fatalf("save rule: status %d", p.StatusCode)
		}

		// Preview first: nothing changes until confirmed.
		p = admin.postForm("/deliverability/hygiene/preview", nil)
		if got := p.Doc.Find(`[data-testid="preview-count"]`).Text(); got != "1" || !strings.Contains(p.Doc.Find(`[data-testid="preview-list"]`).Text(), "flaky@example.net") {
			t.Fatalf("preview count = %q (%s), want 1: flaky", got, p.Doc.Find(`[data-testid="preview"]`).Text())
		}
		if on, _ := s.IsSuppressed(ctx, "flaky@example.net"); on {
			t.Fatal("the preview suppressed someone")
		}
		if p := admin.postForm("/deliverability/hygiene/apply", url.Values{"expected": {"1"}}); p.StatusCode != 200 || !strings.Contains(p.Body, "1 addresses suppressed") {
			t.Fatalf("apply: status %d", p.StatusCode)
		}
		for e, want := range map[string]bool{"flaky@example.net": true, "tester@ourco.example": false, "fine@example.net": false} {
			if on, _ := s.IsSuppressed(ctx, e); on != want {
				t.Errorf("%s suppressed = %v, want %v", e, on, want)
			}
		}
		if !auditHas(t, s, "hygiene.apply", "1 suppressed") || !auditHas(t, s, "hygiene.rule", "→ 2 in 14 days") || !auditHas(t, s, "allowlist.add", "@ourco.example") {
			t.Error("hygiene changes not audited")
		}

		// Staging switch.
		p = admin.postForm("/deliverability/hygiene/staging", url.Values{"staging": {"on"}})
		if v, _ := s.Setting(ctx, models.SettingStaging); v != "on" || !strings.Contains(p.Doc.Find(`[data-testid="staging-state"]`).Text(), "on") {
			t.Errorf("staging = %q after turning it on", v)
		}
		allowed := mailer.StagingPolicy(s, 0)
		if ok, err := allowed(ctx, "tester@ourco.example"); !ok || err != nil {
			t.Errorf("allowed(allow-listed address) = %v, %v in staging, want true", ok, err)
		}
		if ok, err := allowed(ctx, "fine@example.net"); ok || err != nil {
			t.Errorf("allowed(other address) = %v, %v in staging, want false", ok, err)
		}
		if p := admin.postForm("/deliverability/hygiene/staging", url.Values{"staging": {"maybe"}}); p.StatusCode != 400 {
			t.Errorf("staging=maybe: status %d, want 400", p.StatusCode)
		}
		if !auditHas(t, s, "staging.on", "staging") {
			t.Error("staging switch not audited")
		}
	})
}
