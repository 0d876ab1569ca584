package web

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/herald-mail/herald/models"
)

// Segments through the API: create, count, preview, a campaign to one
// minus a list, bad conditions refused with where and what, a segment in
// use not deleted, a viewer's token read-only.
func TestAPISegments(t *testing.T) {
	app := newTestApp(t, nil)
	ctx := context.Background()
	u, _ := app.store.CreateUser(ctx, "api@example.com", "", "correct horse battery", models.RoleMarketer)
	tok, _, _ := app.store.CreateAPIToken(ctx, u.ID, "test")
	v, _ := app.store.CreateUser(ctx, "viewer@example.com", "", "correct horse battery", models.RoleViewer)
	vtok, _, _ := app.store.CreateAPIToken(ctx, v.ID, "read")
	call := func(method, path, token, body string, status int, out any) string {
		t.Helper()
		p := app.api(method, path, token, body)
		if p.StatusCode != status {
			t.Fatalf("%s %s: %d %s, want %d", method, path, p.StatusCode, p.Body, status)
		}
		if out != nil {
			if err := json.Unmarshal([]byte(p.Body), out); err != nil {
				t.Fatal(err)
			}
		}
		return p.Body
	}
	var list, vip struct{ Data struct{ ID int64 } }
	call("POST", "/api/v1/lists", tok, `{"name":"News","optin":"single"}`, 201, &list)
	call("POST", "/api/v1/lists", tok, `{"name":"VIP","optin":"single"}`, 201, &vip)
	for i, city := range []string{"Oslo", "Oslo", "Rome", "Oslo"} {
		lists := fmt.Sprint(list.Data.ID)
		if i == 1 {
			lists += fmt.Sprintf(",%d", vip.Data.ID)
		}
		call("POST", "/api/v1/subscribers", tok, fmt.Sprintf(`{"email":"p%d@example.org","attributes":{"city":%q,"age":%d},"lists":[%s]}`, i, city, 20+i*10, lists), 201, nil)
	}
	var seg struct {
		Data struct {
			ID         int64
			Conditions models.Conditions
		}
	}
	call("POST", "/api/v1/segments", tok, `{"name":"Oslo","conditions":{"match":"all","groups":[{"match":"all","conditions":[
		{"field":"attribute","key":"city","op":"equals","value":"oslo"},{"field":"attribute","key":"age","op":"greater_than","value":"25"}]}]}}`, 201, &seg)
	if seg.Data.Conditions.Count() != 2 {
		t.Errorf("conditions read back: %+v", seg.Data.Conditions)
	}
	var count struct{ Data struct{ Count int64 } }
	call("GET", fmt.Sprintf("/api/v1/segments/%d/count", seg.Data.ID), vtok, "", 200, &count)
	if count.Data.Count != 2 {
		t.Errorf("count = %d, want 2 (p1, p3)", count.Data.Count)
	}
	var prev struct{ Data []struct{ Email string } }
	call("GET", fmt.Sprintf("/api/v1/segments/%d/preview?limit=1", seg.Data.ID), vtok, "", 200, &prev)
	if len(prev.Data) != 1 || prev.Data[0].Email != "p1@example.org" {
		t.Errorf("preview = %+v", prev.Data)
	}
	body := call("POST", "/api/v1/segments", tok, `{"name":"Bad","conditions":{"groups":[{"conditions":[{"field":"attribute","key":"age","op":"greater_than","value":"ten"}]}]}}`, 422, nil)
	if !strings.Contains(body, `Group 1, condition 1: \"ten\" is not a number`) {
		t.Errorf("bad number: %s", body)
	}
	call("POST", "/api/v1/segments", vtok, `{"name":"Viewer's","conditions":{"groups":[{"conditions":[{"field":"opened","op":"ever"}]}]}}`, 403, nil)

	// A campaign to the segment minus VIP: p3 only.
	tpl := &models.Template{Kind: models.TemplateCampaign, Name: "t", Subject: "Hi", HTML: goodHTML}
	if err := app.store.CreateTemplate(ctx, tpl); err != nil {
		t.Fatal(err)
	}
	var cp struct {
		Data struct {
			ID           int64
			Segments     []int64
			ExcludeLists []int64 `json:"exclude_lists"`
		}
	}
	call("POST", "/api/v1/campaigns", tok, fmt.Sprintf(`{"name":"Oslo","template_id":%d,"from_email":"news@acme.test","segments":[%d],"exclude_lists":[%d]}`,
		tpl.ID, seg.Data.ID, vip.Data.ID), 201, &cp)
	if len(cp.Data.Segments) != 1 || len(cp.Data.ExcludeLists) != 1 {
		t.Errorf("campaign audience read back: %+v", cp.Data)
	}
	if n, err := app.store.CountCampaignAudience(ctx, cp.Data.ID); err != nil || n != 1 {
		t.Errorf("campaign audience count = %d, %v; want 1", n, err)
	}
	call("POST", "/api/v1/campaigns", tok, fmt.Sprintf(`{"name":"None","template_id":%d,"from_email":"news@acme.test"}`, tpl.ID), 422, nil)
	body = call("DELETE", fmt.Sprintf("/api/v1/segments/%d", seg.Data.ID), tok, "", 409, nil)
	if !strings.Contains(body, "Oslo") {
		t.Errorf("delete in use: %s", body)
	}
}
