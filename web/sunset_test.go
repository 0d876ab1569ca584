package web

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/internal/token"
	"github.com/herald-mail/herald/models"
)

func ledgerRows(t *testing.T, s *models.Store) int64 {
	t.Helper()
	var n int64
	if err := s.DB().Raw("SELECT COUNT(*) FROM consents").Scan(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

// The coverage page drafts a re-permission campaign to the people lacking
// a basis, after asking: a snapshot list with exactly them, no consent
// rows written, left out of coverage, and an audit entry.
func TestRepermissionCampaign(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		app := newTestApp(t, s)
		_, news := compliancePerson(t, s, "ada@example.com")
		for _, e := range []string{"x1@example.com", "x2@example.com"} {
			if err := s.CreateSubscriber(ctx, &models.Subscriber{Email: e}, map[int64]string{news: models.SubConfirmed},
				models.Evidence{Source: models.SourceAdmin, Actor: "someone"}); err != nil {
				t.Fatal(err)
			}
		}
		for _, role := range []string{models.RoleViewer, models.RoleMarketer} {
			if p := app.user(role).get("/compliance/coverage/repermission"); p.StatusCode != http.StatusForbidden {
				t.Errorf("%s: %d, want 403", role, p.StatusCode)
			}
		}
		m := app.user(models.RoleAdmin)
		href, ok := m.get("/compliance/coverage").Doc.Find(`[data-testid="repermission-all"]`).Attr("href")
		if !ok {
			t.Fatal("no re-permission button on the coverage page")
		}
		confirm := m.get(href)
		if confirm.Doc.Find(`[data-testid="confirm-action"]`).Length() != 1 || !strings.Contains(confirm.Body, "the 2 people lacking a basis") {
			t.Fatalf("confirmation: %d %s", confirm.StatusCode, confirm.Doc.Find("h1").Text())
		}
		before := ledgerRows(t, s)
		done := m.postForm(href, url.Values{})
		if done.StatusCode != 200 || !strings.Contains(done.Doc.Find(`[data-testid="flash"]`).Text(), "for 2 people") {
			t.Fatalf("create: %d %q", done.StatusCode, done.Doc.Find(`[data-testid="flash"]`).Text())
		}
		if after := ledgerRows(t, s); after != before {
			t.Errorf("consent rows %d → %d: a snapshot list must write none", before, after)
		}
		cs, err := s.CampaignsByStatus(ctx, models.CampaignDraft)
		if err != nil || len(cs) != 1 {
			t.Fatalf("drafts = %+v, %v", cs, err)
		}
		lists, _ := s.CampaignLists(ctx, cs[0].ID)
		if len(lists) != 1 {
			t.Fatalf("campaign lists = %v", lists)
		}
		l, err := s.List(ctx, lists[0])
		if err != nil || l.Kind != models.ListKindSnapshot || l.Confirmed != 2 {
			t.Fatalf("snapshot list = %+v, %v", l, err)
		}
		if n, err := s.CountEligibleRecipients(ctx, lists); err != nil || n != 2 {
			t.Errorf("recipients = %d, %v; want 2", n, err)
		}
		var who []string
		s.DB().Raw("SELECT b.email FROM subscriptions m JOIN subscribers b ON b.id = m.subscriber_id WHERE m.list_id = ? ORDER BY b.email", l.ID).Scan(&who)
		if strings.Join(who, ",") != "x1@example.com,x2@example.com" {
			t.Errorf("snapshot = %v", who)
		}
		if b := m.get("/lists").Doc.Find(`[data-testid="snapshot-badge"]`).Length(); b != 1 {
			t.Errorf("lists page shows %d snapshot badges, want 1", b)
		}
		cov := m.get("/compliance/coverage")
		if cov.Doc.Find(fmt.Sprintf(`[data-testid="coverage-%d"]`, l.ID)).Length() != 0 {
			t.Error("the snapshot list shows on the coverage page")
		}
		if a := auditCount(t, s, "consent.repermission"); len(a) != 1 || a[0].ObjectID != fmt.Sprint(cs[0].ID) {
			t.Errorf("audit = %+v", a)
		}
		// Per list, and nobody left to ask once they all have a basis.
		if p := m.get(fmt.Sprintf("/compliance/coverage/%d/repermission", news)); !strings.Contains(p.Body, "the 2 people lacking a basis on “News”") {
			t.Errorf("per-list confirmation: %s", p.Doc.Find("h1").Text())
		}
		if _, err := s.UnsubscribeLacking(ctx, news, models.Evidence{Source: models.SourceAdmin, Actor: "t"}); err != nil {
			t.Fatal(err)
		}
		if p := m.postForm(href, url.Values{}); p.StatusCode != http.StatusConflict || !strings.Contains(p.Body, "no one to ask") {
			t.Errorf("nobody lacking: %d", p.StatusCode)
		}
	})
}

// sunsetFixture subscribes quiet@ and reader@ to a list, sends them eight
// campaigns a year ago, and records a click by reader@ three days ago.
func sunsetFixture(t *testing.T, s *models.Store) map[string]int64 {
	t.Helper()
	ctx := context.Background()
	l := &models.List{Name: "News", Optin: models.OptinSingle, Visibility: models.ListPublic}
	if err := s.CreateList(ctx, l); err != nil {
		t.Fatal(err)
	}
	ids := map[string]int64{}
	for _, e := range []string{"quiet@example.com", "reader@example.com"} {
		sub := &models.Subscriber{Email: e}
		if err := s.CreateSubscriber(ctx, sub, map[int64]string{l.ID: models.SubConfirmed}, models.Evidence{Source: models.SourceForm, Page: "p"}); err != nil {
			t.Fatal(err)
		}
		ids[e] = sub.ID
	}
	long := time.Now().UTC().AddDate(-1, 0, 0)
	for i := range 8 {
		c := &models.Campaign{Name: fmt.Sprint("old ", i), FromEmail: "n@example.com"}
		if err := s.CreateCampaign(ctx, c, []int64{l.ID}); err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			if err := s.DB().Exec(`INSERT INTO deliveries (campaign_id, subscriber_id, list_id, domain, status, attempts, next_attempt_at, created_at)
				VALUES (?, ?, ?, 'example.com', 'sent', 1, ?, ?)`, c.ID, id, l.ID, long, long).Error; err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.InsertEvents(ctx, []models.Event{{DeliveryID: 1, SubscriberID: ids["reader@example.com"], Kind: models.EventClick,
		CreatedAt: time.Now().UTC().AddDate(0, 0, -3)}}); err != nil {
		t.Fatal(err)
	}
	return ids
}

// The sunset page counts the matching people as the rule is typed,
// refuses bad numbers with a message, drafts the re-engagement round, and
// lets only an admin run the rule, after a dry-run count.
func TestSunsetPage(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		app := newTestApp(t, s)
		ids := sunsetFixture(t, s)
		if p := app.user(models.RoleViewer).get("/subscribers/sunset"); p.StatusCode != http.StatusForbidden {
			t.Errorf("viewer: %d, want 403", p.StatusCode)
		}
		m := app.user(models.RoleMarketer)
		p := m.get("/subscribers/sunset")
		if got := p.Doc.Find(`[data-testid="sunset-count"]`).Text(); got != "1" || !strings.Contains(p.Doc.Find(`[data-testid="sunset-preview"]`).Text(), "quiet@example.com") {
			t.Fatalf("count = %q, preview %q", got, p.Doc.Find(`[data-testid="sunset-preview"]`).Text())
		}
		if p.Doc.Find(`[data-testid="start-round"]`).Length() != 0 {
			t.Error("a round offered before the rule was saved")
		}
		form := url.Values{"months": {"6"}, "min_campaigns": {"9"}, "grace_days": {"14"}}
		if got := m.postForm("/subscribers/sunset/preview", form).Doc.Find(`[data-testid="sunset-count"]`).Text(); got != "0" {
			t.Errorf("preview with 9 campaigns = %q, want 0", got)
		}
		form.Set("min_campaigns", "eight")
		if bad := m.postForm("/subscribers/sunset", form); bad.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(bad.Body, "is not a whole number") {
			t.Errorf("bad number: %d", bad.StatusCode)
		}
		// A marketer cannot choose suppression: the admin's choice stays.
		form.Set("min_campaigns", "8")
		form.Set("action", models.SunsetSuppress)
		if saved := m.postForm("/subscribers/sunset", form); saved.StatusCode != 200 {
			t.Fatalf("save: %d", saved.StatusCode)
		}
		if r, _ := s.SunsetRule(ctx); r.Action != models.SunsetUnsubscribe || r.MinCampaigns != 8 || r.UpdatedAt.IsZero() {
			t.Errorf("saved rule = %+v", r)
		}
		round := m.postForm("/subscribers/sunset/round", url.Values{})
		if round.StatusCode != 200 || !strings.Contains(round.Doc.Find(`[data-testid="flash"]`).Text(), "for 1 people") {
			t.Fatalf("round: %d %q", round.StatusCode, round.Doc.Find(`[data-testid="flash"]`).Text())
		}
		if a := auditCount(t, s, "sunset."); len(a) != 2 {
			t.Errorf("audit = %+v, want the save and the round", a)
		}
		if p := m.get("/subscribers/sunset/run"); p.StatusCode != http.StatusForbidden {
			t.Errorf("marketer run: %d, want 403", p.StatusCode)
		}
		admin := app.user(models.RoleAdmin)
		confirm := admin.get("/subscribers/sunset/run")
		if confirm.Doc.Find(`[data-testid="confirm-action"]`).Length() != 1 || !strings.Contains(confirm.Doc.Find("h1").Text(), "on 1 people") {
			t.Fatalf("run confirmation: %q", confirm.Doc.Find("h1").Text())
		}
		ran := admin.postForm("/subscribers/sunset/run", url.Values{})
		if !strings.Contains(ran.Doc.Find(`[data-testid="flash"]`).Text(), "1 inactive people were unsubscribed") {
			t.Fatalf("run: %d %q", ran.StatusCode, ran.Doc.Find(`[data-testid="flash"]`).Text())
		}
		subs, _ := s.SubscriptionsOf(ctx, ids["quiet@example.com"])
		for _, x := range subs {
			if x.ListKind == models.ListKindList && x.Status != models.SubUnsubscribed {
				t.Errorf("quiet still %s on %s", x.Status, x.ListName)
			}
		}
		w, _, _ := s.ConsentPage(ctx, models.ConsentQuery{Action: models.ConsentWithdrawn})
		if len(w) != 1 || w[0].Source != models.SourceSunset || w[0].Actor != "admin@example.com" {
			t.Errorf("withdrawals = %+v", w)
		}
	})
}

// The unsubscribe link of a campaign to a snapshot list (here a
// re-permission campaign) leaves every list the person joined, not the
// snapshot alone.
func TestSnapshotCampaignUnsubscribesEverywhere(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		f := newTrackFixture(t, s, TrackingOptions{})
		offers := &models.List{Name: "Offers", Optin: models.OptinSingle, Visibility: models.ListPrivate}
		if err := s.CreateList(ctx, offers); err != nil {
			t.Fatal(err)
		}
		if err := s.SetSubscriptions(ctx, f.subs[0], map[int64]string{offers.ID: models.SubConfirmed}, models.Evidence{Source: models.SourceAdmin}); err != nil {
			t.Fatal(err)
		}
		res, err := s.CreateRepermissionCampaign(ctx, 0, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		var mine int64
		for _, d := range f.materialize(res.Campaign.ID) {
			if d.SubscriberID != nil && *d.SubscriberID == f.subs[0] {
				mine = d.ID
			}
		}
		if mine == 0 {
			t.Fatal("no delivery to a@ in the re-permission campaign")
		}
		path := "/u/" + f.keys.Sign(token.Unsubscribe, mine)
		if _, body := f.request("GET", path, "", nil); !strings.Contains(body, "News") || !strings.Contains(body, "Offers") || strings.Contains(body, res.List.Name) {
			t.Errorf("unsubscribe page does not name News and Offers alone")
		}
		resp, _ := f.request("POST", path, "List-Unsubscribe=One-Click", map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
		if resp.StatusCode != 200 {
			t.Fatalf("one-click = %d", resp.StatusCode)
		}
		for _, l := range []int64{f.list, offers.ID} {
			if got := subStatus(t, s, f.subs[0], l); got != models.SubUnsubscribed {
				t.Errorf("list %d: %q, want unsubscribed", l, got)
			}
		}
		if got := subStatus(t, s, f.subs[1], f.list); got != models.SubConfirmed {
			t.Errorf("b@ changed to %q", got)
		}
	})
}

// The campaign form's send-time option: a zone that is not one is
// refused with a message and the typed values kept; a valid one is saved
// on create and on edit, and the campaign page says it.
func TestCampaignSendTimeForm(t *testing.T) {
	app := newTestApp(t, nil)
	ctx := context.Background()
	list, tmpl := composeFixture(t, app.store, 3)
	m := app.user(models.RoleMarketer)
	form := url.Values{"name": {"By zone"}, "template_id": {fmt.Sprint(tmpl)}, "from_email": {"news@acme.test"}, "from_name": {"Acme"},
		"lists": {fmt.Sprint(list)}, "send_mode": {"local"}, "local_send_at": {"25:00"}, "tz_attribute": {"timezone"}, "tz_default": {"Europe/Atlantis"}}
	p := m.postForm("/campaigns", form)
	if p.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("bad send time: %d", p.StatusCode)
	}
	if !strings.Contains(p.Doc.Find(`[data-testid="err-tz_default"]`).Text(), "Europe/Atlantis") ||
		!strings.Contains(p.Doc.Find(`[data-testid="err-local_send_at"]`).Text(), "HH:MM") {
		t.Errorf("messages: %q / %q", p.Doc.Find(`[data-testid="err-tz_default"]`).Text(), p.Doc.Find(`[data-testid="err-local_send_at"]`).Text())
	}
	if v, _ := p.Doc.Find(`input[name="tz_default"]`).Attr("value"); v != "Europe/Atlantis" {
		t.Errorf("typed zone not kept: %q", v)
	}
	form.Set("local_send_at", "09:00")
	form.Set("tz_default", "Europe/Paris")
	p = m.postForm("/campaigns", form)
	if p.StatusCode != 200 || !strings.Contains(p.Doc.Find(`[data-testid="send-time"]`).Text(), "at 09:00 in each subscriber's time zone") {
		t.Fatalf("create: %d %q", p.StatusCode, p.Doc.Find(`[data-testid="send-time"]`).Text())
	}
	var id int64
	fmt.Sscanf(p.Request.URL.Path, "/campaigns/%d", &id)
	cp, err := app.store.Campaign(ctx, id)
	if err != nil || cp.LocalSendAt != "09:00" || cp.TZAttribute != "timezone" || cp.TZDefault != "Europe/Paris" {
		t.Fatalf("stored = %+v, %v", cp.SendTime, err)
	}
	form.Set("send_mode", "now")
	form.Set("html", cp.HTML) // the edit form carries the campaign's own body
	if p := m.postForm(fmt.Sprintf("/campaigns/%d", id), form); p.StatusCode != 200 {
		t.Fatalf("edit: %d", p.StatusCode)
	}
	if cp, _ := app.store.Campaign(ctx, id); cp.ByZone() {
		t.Errorf("after choosing now: %+v", cp.SendTime)
	}
	if a := auditCount(t, app.store, "campaign.update"); len(a) != 1 {
		t.Errorf("edit audit = %+v", a)
	}

	// The same option through the API.
	u, _ := app.store.CreateUser(ctx, "api@example.com", "", "correct horse battery", models.RoleMarketer)
	tok, _, _ := app.store.CreateAPIToken(ctx, u.ID, "test")
	body := fmt.Sprintf(`{"name":"API zone","template_id":%d,"from_email":"news@acme.test","lists":[%d],"local_send_at":"08:30","tz_attribute":"tz","tz_default":"Mars/Base"}`, tmpl, list)
	if p := app.api("POST", "/api/v1/campaigns", tok, body); p.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(p.Body, "Mars/Base") {
		t.Errorf("API with a bad zone: %d %s", p.StatusCode, p.Body)
	}
	body = strings.Replace(body, "Mars/Base", "Asia/Tokyo", 1)
	if p := app.api("POST", "/api/v1/campaigns", tok, body); p.StatusCode != http.StatusCreated || !strings.Contains(p.Body, `"local_send_at":"08:30"`) {
		t.Errorf("API create: %d %s", p.StatusCode, p.Body)
	}
}
