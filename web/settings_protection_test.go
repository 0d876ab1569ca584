package web

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

// TestProtectionSettingsForm: on both databases the page shows the
// Gmail/Yahoo defaults; an admin's save is stored with an audit entry;
// bad values come back on their fields with 422 and change nothing;
// viewers and marketers are refused.
func TestProtectionSettingsForm(t *testing.T) {
	testdb.Each(t, func(t *testing.T, store *models.Store) {
		app := newTestApp(t, store)
		ctx := context.Background()
		admin := app.user("admin")
		p := admin.get("/settings/protection")
		if p.StatusCode != 200 {
			t.Fatalf("GET = %d", p.StatusCode)
		}
		if v, _ := p.Doc.Find(`[data-testid="complaint-pause"]`).Attr("value"); v != "0.3" {
			t.Errorf("complaint pause shown as %q, want the default 0.3", v)
		}
		if v, _ := p.Doc.Find(`[data-testid="complaint-warn"]`).Attr("value"); v != "0.1" {
			t.Errorf("complaint warning shown as %q, want the default 0.1", v)
		}
		form := url.Values{"enabled": {"on"}, "complaint_warn_pct": {"0.08"}, "complaint_pause_pct": {"0.25%"}, "hard_bounce_pause_pct": {"1.5"},
			"deferral_pause_pct": {"40"}, "deferral_window_minutes": {"30"}, "min_sent": {"1,000"}}
		p = admin.postForm("/settings/protection", form)
		if p.StatusCode != 200 || !strings.Contains(p.Body, "Protection settings saved") {
			t.Fatalf("save = %d: %s", p.StatusCode, p.Body)
		}
		want := models.Protection{Enabled: true, ComplaintWarnPct: 0.08, ComplaintPausePct: 0.25, HardBouncePausePct: 1.5,
			DeferralPausePct: 40, DeferralWindowMinutes: 30, MinSent: 1000}
		if got, err := store.Protection(ctx); err != nil || got != want {
			t.Errorf("stored %+v, %v; want %+v", got, err, want)
		}
		var n int64
		store.DB().Raw("SELECT COUNT(*) FROM audit_log WHERE action = 'settings.protection' AND summary LIKE '%pause 0.25%'").Scan(&n)
		if n != 1 {
			t.Errorf("%d audit entries for the save, want 1", n)
		}

		for _, tc := range []struct{ field, value, want string }{
			{"complaint_pause_pct", "lots", `"lots" is not a number`},
			{"complaint_warn_pct", "0.5", "must not be above the pause rate"},
			{"hard_bounce_pause_pct", "0", "above 0 and at most 100"},
			{"deferral_window_minutes", "2", "between 5 minutes and 7 days"},
			{"min_sent", "0", "between 1 and 10,000,000"},
		} {
			bad := url.Values{}
			for k, v := range form {
				bad[k] = v
			}
			bad.Set(tc.field, tc.value)
			p := admin.postForm("/settings/protection", bad)
			if p.StatusCode != 422 {
				t.Errorf("%s=%q: status %d, want 422", tc.field, tc.value, p.StatusCode)
				continue
			}
			if got := p.Doc.Find(`[data-testid="err-` + tc.field + `"]`).Text(); !strings.Contains(got, tc.want) {
				t.Errorf("%s=%q: error %q, want %q", tc.field, tc.value, got, tc.want)
			}
			if v, _ := p.Doc.Find(`input[name="` + tc.field + `"]`).Attr("value"); v != tc.value {
				t.Errorf("%s: the form shows %q, want what was typed, %q", tc.field, v, tc.value)
			}
		}
		if got, _ := store.Protection(ctx); got != want {
			t.Errorf("a refused save changed the settings to %+v", got)
		}
		for _, role := range []string{"viewer", "marketer"} {
			c := app.user(role)
			if p := c.get("/settings/protection"); p.StatusCode != 403 {
				t.Errorf("%s GET = %d, want 403", role, p.StatusCode)
			}
			if p := c.postForm("/settings/protection", form); p.StatusCode != 403 {
				t.Errorf("%s POST = %d, want 403", role, p.StatusCode)
			}
		}
	})
}

// TestCampaignPauseReasonBanner: a campaign paused by automatic
// protection shows the reason and, to an admin, the way to the
// thresholds; a resumed one shows no banner.
func TestCampaignPauseReasonBanner(t *testing.T) {
	app := newTestApp(t, nil)
	ctx := context.Background()
	c := &models.Campaign{Name: "Guarded", FromEmail: "news@example.com"}
	if err := app.store.CreateCampaign(ctx, c, nil); err != nil {
		t.Fatal(err)
	}
	if err := app.store.StartCampaign(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	reason := models.Trip{Rule: models.TripComplaints, Scope: "google", Count: 3, Of: 600, Pct: 0.5, Limit: 0.3, Sample: 500}.Reason()
	if err := app.store.PauseCampaignFor(ctx, c.ID, reason); err != nil {
		t.Fatal(err)
	}
	path := "/campaigns/" + itoa(c.ID)
	admin := app.user("admin")
	p := admin.get(path)
	banner := p.Doc.Find(`[data-testid="pause-reason"]`)
	if got := strings.Join(strings.Fields(banner.Text()), " "); !strings.Contains(got, "3 spam complaints for 600 messages sent by this campaign to Gmail (google) (0.5%)") {
		t.Errorf("banner %q lacks the reason", got)
	}
	if banner.Find(`a[href="/settings/protection"]`).Length() != 1 {
		t.Error("the admin's banner has no link to the protection settings")
	}
	if v := app.user("viewer").get(path); v.Doc.Find(`[data-testid="pause-reason"] a`).Length() != 0 ||
		v.Doc.Find(`[data-testid="pause-reason"]`).Length() != 1 {
		t.Error("a viewer should see the banner without the admin's link")
	}
	if err := app.store.ResumeCampaign(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if p := admin.get(path); p.Doc.Find(`[data-testid="pause-reason"]`).Length() != 0 {
		t.Error("a resumed campaign still shows the pause reason")
	}
}

// TestCampaignComplaintWarning: a running campaign whose complaint rate is
// over the warning threshold (0.1%) but under the pause threshold shows
// the warning; under the minimum sample it shows none.
func TestCampaignComplaintWarning(t *testing.T) {
	app := newTestApp(t, nil)
	ctx := context.Background()
	admin := app.user("admin")
	for _, tc := range []struct {
		sent, complaints int64
		want             string
	}{
		{1000, 2, "Complaint rate 0.20% (2 complaints for 1000 messages sent)"},
		{400, 2, ""}, // under the 500-message sample
		{1000, 0, ""},
	} {
		c := &models.Campaign{Name: "Watched", FromEmail: "news@example.com"}
		if err := app.store.CreateCampaign(ctx, c, nil); err != nil {
			t.Fatal(err)
		}
		if err := app.store.StartCampaign(ctx, c.ID); err != nil {
			t.Fatal(err)
		}
		if err := app.store.DB().Exec("UPDATE campaigns SET sent = ?, complaints = ? WHERE id = ?", tc.sent, tc.complaints, c.ID).Error; err != nil {
			t.Fatal(err)
		}
		p := admin.get("/campaigns/" + itoa(c.ID))
		got := strings.Join(strings.Fields(p.Doc.Find(`[data-testid="complaint-warning"]`).Text()), " ")
		if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
			t.Errorf("%d complaints in %d: warning %q, want %q", tc.complaints, tc.sent, got, tc.want)
		}
	}
}
