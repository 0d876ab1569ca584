package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/herald-mail/herald/models"
)

// The campaign form's A/B section: bad settings come back with messages
// beside the fields; good ones are stored and shown again on edit. On the
// report, a marketer picks the winner of a manual test (a viewer may
// not), and the held deliveries get it.
func TestABTestFormAndPick(t *testing.T) {
	app := newTestApp(t, nil)
	ctx := context.Background()
	list, tmpl := composeFixture(t, app.store, 12)
	m := app.user(models.RoleMarketer)
	form := func(over map[string]string) url.Values {
		v := url.Values{"name": {"Spring"}, "template_id": {fmt.Sprint(tmpl)}, "from_email": {"news@acme.test"},
			"lists": {fmt.Sprint(list)}, "track_opens": {"on"}, "track_clicks": {"on"}, "ab_on": {"on"}, "ab_share": {"50"},
			"ab_metric": {"opens"}, "ab_wait": {"2h"}, "ab_mode": {"manual"},
			"v1_subject": {"Spring is here"}, "v2_subject": {"Spring news inside"}, "v2_from_name": {"Ann at Acme"}}
		for k, x := range over {
			v.Set(k, x)
		}
		return v
	}
	p := m.postForm("/campaigns", form(map[string]string{"ab_wait": "soon", "v2_subject": "Spring is here", "v2_from_name": ""}))
	if p.StatusCode != 422 {
		t.Fatalf("bad A/B settings: %d", p.StatusCode)
	}
	for f, want := range map[string]string{"ab_wait": "4h, 30m or 2d", "variant_2": "the same as variant A"} {
		if got := p.Doc.Find(`[data-testid="err-` + f + `"]`).Text(); !strings.Contains(got, want) {
			t.Errorf("message for %s = %q, want %q", f, got, want)
		}
	}
	p = m.postForm("/campaigns", form(map[string]string{"v2_html": "<p>Hello {{.Subscriber.Name}}</p>", "v3_subject": "Hi {{.Nope}}"}))
	for f, want := range map[string]string{"variant_2": "no unsubscribe link", "variant_3": "Nope"} {
		if got := p.Doc.Find(`[data-testid="err-` + f + `"]`).Text(); p.StatusCode != 422 || !strings.Contains(got, want) {
			t.Errorf("%d: message for %s = %q, want %q", p.StatusCode, f, got, want)
		}
	}
	if v, _ := p.Doc.Find(`input[name="ab_share"]`).Attr("value"); v != "50" {
		t.Errorf("re-rendered share = %q, want what was typed", v)
	}
	p = m.postForm("/campaigns", form(map[string]string{"v3_subject": "Third try"}))
	if p.StatusCode != 200 {
		t.Fatalf("create: %d %s", p.StatusCode, p.Body)
	}
	var id int64
	fmt.Sscanf(p.Request.URL.Path, "/campaigns/%d", &id)
	cp, _ := app.store.Campaign(ctx, id)
	vs, _ := app.store.CampaignVariants(ctx, id)
	if cp.AB.Share != 50 || cp.AB.Metric != models.MetricOpens || cp.AB.WaitSeconds != 7200 || !cp.AB.Manual ||
		len(vs) != 3 || vs[1].FromName != "Ann at Acme" || vs[2].Label != "C" || vs[2].Subject != "Third try" {
		t.Fatalf("stored test = %+v, variants %+v", cp.AB, vs)
	}
	edit := m.get(fmt.Sprintf("/campaigns/%d/edit", id))
	if v, _ := edit.Doc.Find(`input[name="v2_from_name"]`).Attr("value"); v != "Ann at Acme" {
		t.Errorf("edit form variant B from name = %q", v)
	}
	if v, _ := edit.Doc.Find(`input[name="ab_wait"]`).Attr("value"); v != "2h" {
		t.Errorf("edit form wait = %q", v)
	}
	if edit.Doc.Find(`form [data-testid="campaign-content"]`).Length() != 1 || edit.Doc.Find(`form [data-testid="ab-fields"]`).Length() != 1 {
		t.Errorf("edit form lacks the message fieldset or the A/B section")
	}
	// The form saves the campaign's own body and its test together; a
	// local send time with a test is refused.
	body := `<p>Spring is here.</p><a href="{{.UnsubscribeURL}}">Unsubscribe</a>`
	edited := form(map[string]string{"subject": "Spring", "html": body, "format": "html", "v3_subject": "Third try"})
	local := form(map[string]string{"subject": "Spring", "html": body, "format": "html", "send_mode": "local",
		"local_send_at": "09:00", "tz_default": "Europe/Paris"})
	if p := m.postForm(fmt.Sprintf("/campaigns/%d", id), local); p.StatusCode != 422 ||
		!strings.Contains(p.Doc.Find(`[data-testid="err-local_send_at"]`).Text(), "A/B test") {
		t.Errorf("A/B test at a local time: %d, message %q", p.StatusCode, p.Doc.Find(`[data-testid="err-local_send_at"]`).Text())
	}
	if p := m.postForm(fmt.Sprintf("/campaigns/%d", id), edited); p.StatusCode != 200 {
		t.Fatalf("edit: %d %s", p.StatusCode, p.Doc.Find(`[aria-invalid="true"], small[data-testid^="err-"]`).Text())
	}
	cp, _ = app.store.Campaign(ctx, id)
	if vs, _ = app.store.CampaignVariants(ctx, id); cp.HTML != body || cp.LocalSendAt != "" || len(vs) != 3 || vs[2].Subject != "Third try" {
		t.Fatalf("after the edit: html %q, local %q, variants %+v", cp.HTML, cp.LocalSendAt, vs)
	}

	// Sent: the test share goes out, the rest waits for a person.
	if err := app.store.StartCampaign(ctx, id); err != nil {
		t.Fatal(err)
	}
	for done := false; !done; {
		var err error
		if done, err = app.store.MaterializeCampaign(ctx, id, 1000); err != nil {
			t.Fatal(err)
		}
	}
	rep := m.get(fmt.Sprintf("/campaigns/%d/report", id))
	if rep.Doc.Find(`[data-testid="ab-variants"] tbody tr`).Length() != 3 || rep.Doc.Find(`[data-testid="ab-pick-2"]`).Length() != 1 ||
		!strings.Contains(rep.Doc.Find(`[data-testid="ab-held"]`).Text(), "6 held for the winner") {
		t.Fatalf("report before the pick:\n%s", rep.Doc.Find(`[data-testid="ab-test"]`).Text())
	}
	viewer := app.user(models.RoleViewer)
	if p := viewer.postForm(fmt.Sprintf("/campaigns/%d/winner", id), url.Values{"variant": {"2"}}); p.StatusCode != 403 {
		t.Errorf("viewer's pick = %d, want 403", p.StatusCode)
	}
	if p := m.postForm(fmt.Sprintf("/campaigns/%d/winner", id), url.Values{"variant": {"9"}}); p.StatusCode != 404 {
		t.Errorf("pick of no variant = %d, want 404", p.StatusCode)
	}
	p = m.postForm(fmt.Sprintf("/campaigns/%d/winner", id), url.Values{"variant": {"2"}})
	if p.StatusCode != 200 || !strings.Contains(p.Doc.Find(`[data-testid="ab-released"]`).Text(), "not significant") {
		t.Fatalf("after the pick: %d\n%s", p.StatusCode, p.Doc.Find(`[data-testid="ab-test"]`).Text())
	}
	var held, toB int64
	app.store.DB().Raw("SELECT COUNT(*) FROM deliveries WHERE campaign_id = ? AND next_attempt_at > ?", id, time.Now().Add(time.Hour)).Scan(&held)
	app.store.DB().Raw("SELECT COUNT(*) FROM deliveries WHERE campaign_id = ? AND variant = 2", id).Scan(&toB)
	if held != 0 || toB != 2+6 {
		t.Errorf("after the pick: %d still held, %d with variant B; want 0 and 8", held, toB)
	}
	if p := m.postForm(fmt.Sprintf("/campaigns/%d/winner", id), url.Values{"variant": {"1"}}); p.StatusCode != 409 {
		t.Errorf("second pick = %d, want 409", p.StatusCode)
	}
}

// The API takes and shows a campaign's A/B test, refuses a bad one with
// the fields named, updates it, and refuses a winner before the test share
// is out.
func TestAPIABTest(t *testing.T) {
	app := newTestApp(t, nil)
	ctx := context.Background()
	list, tmpl := composeFixture(t, app.store, 4)
	u, _ := app.store.CreateUser(ctx, "api@example.com", "", "correct horse battery", models.RoleMarketer)
	tok, _, _ := app.store.CreateAPIToken(ctx, u.ID, "test")
	body := func(ab string) string {
		return fmt.Sprintf(`{"name":"Spring","template_id":%d,"from_email":"news@acme.test","lists":[%d],"ab_test":%s}`, tmpl, list, ab)
	}
	p := app.api("POST", "/api/v1/campaigns", tok, body(`{"share":0,"metric":"revenue","wait_seconds":3600,"variants":[{"subject":"a"}]}`))
	if p.StatusCode != 422 {
		t.Fatalf("bad test: %d %s", p.StatusCode, p.Body)
	}
	for _, f := range []string{"variants", "ab_share", "ab_metric"} {
		if !strings.Contains(p.Body, `"`+f+`"`) {
			t.Errorf("422 does not name %s: %s", f, p.Body)
		}
	}
	p = app.api("POST", "/api/v1/campaigns", tok, body(`{"share":25,"metric":"cto","wait_seconds":600,"manual":true,
		"variants":[{"subject":"a"},{"label":"Bold","subject":"b","preheader":"p"}]}`))
	if p.StatusCode != 201 {
		t.Fatalf("create: %d %s", p.StatusCode, p.Body)
	}
	var got struct {
		Data struct {
			ID     int64 `json:"id"`
			ABTest struct {
				Share    int    `json:"share"`
				Metric   string `json:"metric"`
				Manual   bool   `json:"manual"`
				Variants []struct {
					Idx   int    `json:"idx"`
					Label string `json:"label"`
				} `json:"variants"`
			} `json:"ab_test"`
		} `json:"data"`
	}
	json.Unmarshal([]byte(p.Body), &got)
	ab := got.Data.ABTest
	if ab.Share != 25 || ab.Metric != "cto" || !ab.Manual || len(ab.Variants) != 2 || ab.Variants[1].Label != "Bold" || ab.Variants[1].Idx != 2 {
		t.Fatalf("created ab_test = %+v", ab)
	}
	id := got.Data.ID
	if p := app.api("POST", fmt.Sprintf("/api/v1/campaigns/%d/winner", id), tok, `{"variant":1}`); p.StatusCode != 409 {
		t.Errorf("winner before the test: %d %s", p.StatusCode, p.Body)
	}
	// An update without ab_test keeps it; a local send time with it is
	// refused; with {"variants":[]} it is removed.
	put := func(body string) *page { return app.api("PUT", fmt.Sprintf("/api/v1/campaigns/%d", id), tok, body) }
	if p := put(`{"name":"Spring 2","preheader":"Spring is here"}`); p.StatusCode != 200 || !strings.Contains(p.Body, `"Bold"`) ||
		!strings.Contains(p.Body, `"name":"Spring 2"`) || !strings.Contains(p.Body, `"preheader":"Spring is here"`) {
		t.Fatalf("update keeping the test: %d %s", p.StatusCode, p.Body)
	}
	if p := put(`{"local_send_at":"09:00","tz_default":"Europe/Paris"}`); p.StatusCode != 422 || !strings.Contains(p.Body, `"local_send_at"`) ||
		!strings.Contains(p.Body, "A/B test") {
		t.Fatalf("local send time with the test: %d %s", p.StatusCode, p.Body)
	}
	if cp, _ := app.store.Campaign(ctx, id); cp.LocalSendAt != "" {
		t.Errorf("refused send time saved: %q", cp.LocalSendAt)
	}
	if p := put(`{"ab_test":{"variants":[]}}`); p.StatusCode != 200 || strings.Contains(p.Body, `"ab_test"`) {
		t.Fatalf("update removing the test: %d %s", p.StatusCode, p.Body)
	}
	if p := put(`{"local_send_at":"09:00","tz_default":"Europe/Paris"}`); p.StatusCode != 200 || !strings.Contains(p.Body, `"local_send_at":"09:00"`) {
		t.Fatalf("local send time without a test: %d %s", p.StatusCode, p.Body)
	}
	if vs, _ := app.store.CampaignVariants(ctx, id); len(vs) != 0 {
		t.Errorf("variants after removal: %+v", vs)
	}
}
