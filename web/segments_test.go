package web

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/herald-mail/herald/models"
)

// The builder's forms: a condition row added and removed, a bad value
// refused with where and what (never a 500), a good segment saved, a
// viewer kept to reading.
func TestSegmentForms(t *testing.T) {
	app := newTestApp(t, nil)
	ctx := context.Background()
	listID, _ := composeFixture(t, app.store, 3)
	m := app.user(models.RoleMarketer)
	row := func(v url.Values, group, field, op, key, value string) {
		v.Add("c_group", group)
		v.Add("c_field", field)
		v.Add("c_op", op)
		v.Add("c_key", key)
		v.Add("c_value", value)
		for _, k := range []string{"c_value2", "c_list", "c_status", "c_days", "c_count"} {
			v.Add(k, "")
		}
	}
	v := url.Values{"name": {"Bad"}, "match": {"all"}, "g_match": {"all"}}
	row(v, "0", "attribute", "greater_than", "age", "ten")
	p := m.postForm("/segments", v)
	if p.StatusCode != 422 || !strings.Contains(p.Doc.Find(`[data-testid="segment-form"]`).Text(), `Group 1, condition 1: "ten" is not a number.`) {
		t.Errorf("bad value: %d %q", p.StatusCode, p.Doc.Find(`[data-testid="segment-form"]`).Text())
	}
	v.Set("action", "add:0")
	p = m.postForm("/segments/builder", v)
	if p.StatusCode != 200 || p.Doc.Find(`[data-testid="condition-1"]`).Length() != 1 {
		t.Errorf("add a condition: %d, rows %d", p.StatusCode, p.Doc.Find(`.segment-row`).Length())
	}
	v.Set("action", "remove:0")
	p = m.postForm("/segments/builder", v)
	if p.StatusCode != 200 || p.Doc.Find(`.segment-row`).Length() != 0 || !strings.Contains(p.Body, "Add a condition") {
		t.Errorf("remove the only condition: %d, rows %d", p.StatusCode, p.Doc.Find(`.segment-row`).Length())
	}
	// Junk in the row fields is no 500.
	junk := url.Values{"g_match": {"sideways"}, "c_group": {"7"}, "c_field": {"x"}}
	if p := m.postForm("/segments/count", junk); p.StatusCode != 200 {
		t.Errorf("junk count: %d", p.StatusCode)
	}
	good := url.Values{"name": {"News readers"}, "match": {"all"}, "g_match": {"all"}}
	row(good, "0", "list", "in", "", "")
	good.Set("c_list", itoa(listID))
	p = m.postForm("/segments/count", good)
	if got := p.Doc.Find(`[data-testid="segment-count"]`).Text(); got != "3" {
		t.Errorf("live count = %q, want 3", got)
	}
	p = m.postForm("/segments", good)
	if p.StatusCode != 200 || !strings.Contains(p.Doc.Find(`[data-testid="flash"]`).Text(), "News readers") {
		t.Fatalf("save: %d %s", p.StatusCode, p.Doc.Find(`[data-testid="flash"]`).Text())
	}
	segs, _ := app.store.Segments(ctx)
	if len(segs) != 1 || segs[0].Conditions.Groups[0].Conditions[0].ListID != listID {
		t.Fatalf("saved: %+v", segs)
	}
	viewer := app.user(models.RoleViewer)
	if p := viewer.postForm("/segments", good); p.StatusCode != 403 {
		t.Errorf("viewer saving: %d", p.StatusCode)
	}
	if p := viewer.get("/segments"); p.StatusCode != 200 || !strings.Contains(p.Doc.Find(`[data-testid="segments-table"]`).Text(), "News readers") {
		t.Errorf("viewer reading: %d", p.StatusCode)
	}
}
