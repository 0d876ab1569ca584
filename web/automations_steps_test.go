package web

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/herald-mail/herald/models"
)

// The builder offers the list, attribute and segment steps: "add" puts
// an empty one in the form, a missing choice comes back as the field's
// message (422, not a failure), and a filled form is saved with them.
func TestAutomationBuilderMoreSteps(t *testing.T) {
	app := newTestApp(t, nil)
	ctx := context.Background()
	list := &models.List{Name: "Members", Optin: models.OptinSingle, Visibility: models.ListPrivate}
	if err := app.store.CreateList(ctx, list); err != nil {
		t.Fatal(err)
	}
	seg := &models.Segment{Name: "Parisians", Conditions: models.Conditions{Match: "all", Groups: []models.ConditionGroup{{Match: "all",
		Conditions: []models.Condition{{Field: "attribute", Key: "city", Op: "equals", Value: "Paris"}}}}}}
	if err := app.store.CreateSegment(ctx, seg); err != nil {
		t.Fatal(err)
	}
	m := app.user(models.RoleMarketer)
	base := url.Values{"name": {"Onboarding"}, "trigger_kind": {models.TriggerAPI}, "from_email": {"hello@example.com"}, "test_wait_seconds": {"5"}}
	p := m.postForm("/automations", withValues(base, url.Values{"add": {"list_add"}}))
	if p.StatusCode != 200 || p.Doc.Find(`select[name="step_target_list_id"] option[value="`+fmt.Sprint(list.ID)+`"]`).Length() != 1 {
		t.Fatalf("add a list step: status %d, want the form with a list choice", p.StatusCode)
	}
	// Four steps, each form list aligned; the list left unchosen.
	steps := url.Values{
		"step_kind":           {"list_add", "set_attribute", "branch", "list_remove"},
		"step_subject":        {"", "", "", ""},
		"step_html":           {"", "", "", ""},
		"step_wait_days":      {"0", "0", "0", "0"},
		"step_wait_hours":     {"", "", "", ""},
		"step_wait_until":     {"", "", "", ""},
		"step_cond":           {"", "", "segment", ""},
		"step_cond_step":      {"0", "0", "0", "0"},
		"step_cond_key":       {"", "", "", ""},
		"step_cond_value":     {"", "", "", ""},
		"step_then":           {"0", "0", "0", "0"},
		"step_else":           {"0", "0", "-1", "0"},
		"step_segment_id":     {"", "", fmt.Sprint(seg.ID), ""},
		"step_target_list_id": {"", "", "", fmt.Sprint(list.ID)},
		"step_attr_key":       {"", "stage", "", ""},
		"step_attr_value":     {"", "onboarded", "", ""},
	}
	p = m.postForm("/automations", withValues(base, steps))
	if p.StatusCode != 422 || !strings.Contains(p.Body, "Choose the list.") {
		t.Fatalf("list step without its list: status %d, want 422 with the field's message", p.StatusCode)
	}
	steps["step_target_list_id"][0] = fmt.Sprint(list.ID)
	p = m.postForm("/automations", withValues(base, steps))
	if p.StatusCode != 200 || !strings.Contains(p.Request.URL.Path, "/automations/") {
		t.Fatalf("save: status %d at %s", p.StatusCode, p.Request.URL)
	}
	all, err := app.store.Automations(ctx)
	if err != nil || len(all) != 1 {
		t.Fatalf("automations: %d, %v", len(all), err)
	}
	got, err := app.store.AutomationSteps(ctx, all[0].ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 || got[0].Kind != models.StepListAdd || got[0].TargetListID == nil || *got[0].TargetListID != list.ID ||
		got[1].AttrKey != "stage" || got[1].AttrValue != "onboarded" ||
		got[2].Cond != models.CondSegment || got[2].SegmentID == nil || *got[2].SegmentID != seg.ID || got[2].ElseStep != -1 ||
		got[3].Kind != models.StepListRemove || got[3].TargetListID == nil {
		t.Errorf("saved steps: %+v", got)
	}
	if !strings.Contains(p.Body, "Set attribute stage to") || !strings.Contains(p.Body, "Put them on list") {
		t.Error("the automation's page does not say what the new steps do")
	}
	// The edit form shows the choices made.
	e := m.get(fmt.Sprintf("/automations/%d/edit", all[0].ID))
	if v, _ := e.Doc.Find(`select[name="step_segment_id"] option[selected]`).Attr("value"); v != fmt.Sprint(seg.ID) {
		t.Errorf("edit form: segment %q selected, want %d", v, seg.ID)
	}
}

// The builder's trigger settings: entered a segment, and an event on a
// campaign; a missing choice is the field's message.
func TestAutomationBuilderTriggers(t *testing.T) {
	app := newTestApp(t, nil)
	ctx := context.Background()
	list := &models.List{Name: "News", Optin: models.OptinSingle, Visibility: models.ListPublic}
	if err := app.store.CreateList(ctx, list); err != nil {
		t.Fatal(err)
	}
	seg := &models.Segment{Name: "VIP", Conditions: models.Conditions{Match: "all", Groups: []models.ConditionGroup{{Match: "all",
		Conditions: []models.Condition{{Field: "attribute", Key: "tier", Op: "equals", Value: "vip"}}}}}}
	if err := app.store.CreateSegment(ctx, seg); err != nil {
		t.Fatal(err)
	}
	camp := &models.Campaign{Name: "Launch", Subject: "Launch", HTML: "<p>x</p>", FromEmail: "hello@example.com"}
	if err := app.store.CreateCampaign(ctx, camp, []int64{list.ID}); err != nil {
		t.Fatal(err)
	}
	m := app.user(models.RoleMarketer)
	if p := m.get("/automations/new"); p.Doc.Find(`select[name="trigger_campaign_id"] option[value="`+fmt.Sprint(camp.ID)+`"]`).Length() != 1 ||
		p.Doc.Find(`select[name="trigger_segment_id"] option[value="`+fmt.Sprint(seg.ID)+`"]`).Length() != 1 {
		t.Fatal("the builder offers no campaign or segment to trigger on")
	}
	steps := url.Values{"step_kind": {"set_attribute"}, "step_attr_key": {"nudged"}, "step_attr_value": {"yes"}}
	base := url.Values{"name": {"Nudge"}, "trigger_kind": {models.TriggerCampaignEvent}, "from_email": {"hello@example.com"},
		"trigger_campaign_id": {fmt.Sprint(camp.ID)}, "trigger_event": {models.OnNotOpened}, "trigger_days": {""}}
	p := m.postForm("/automations", withValues(base, steps))
	if p.StatusCode != 422 || !strings.Contains(p.Body, "Give the days to wait for an open") {
		t.Fatalf("not opened without days: status %d, want 422 with the field's message", p.StatusCode)
	}
	base.Set("trigger_days", "3")
	if p := m.postForm("/automations", withValues(base, steps)); p.StatusCode != 200 || !strings.Contains(p.Request.URL.Path, "/automations/") {
		t.Fatalf("save the campaign-event automation: status %d at %s", p.StatusCode, p.Request.URL)
	}
	base = url.Values{"name": {"VIP"}, "trigger_kind": {models.TriggerSegment}, "from_email": {"hello@example.com"}, "trigger_segment_id": {fmt.Sprint(seg.ID)}}
	if p := m.postForm("/automations", withValues(base, steps)); p.StatusCode != 200 {
		t.Fatalf("save the segment automation: status %d", p.StatusCode)
	}
	all, err := app.store.Automations(ctx)
	if err != nil || len(all) != 2 {
		t.Fatalf("automations: %d, %v", len(all), err)
	}
	// A webhook step: the form offers the webhooks, the choice is kept.
	hook, err := app.store.CreateWebhook(ctx, "https://crm.example.com/hook", []string{models.HookOpened})
	if err != nil {
		t.Fatal(err)
	}
	api := url.Values{"name": {"CRM"}, "trigger_kind": {models.TriggerAPI}, "from_email": {"hello@example.com"}}
	if p := m.postForm("/automations", withValues(api, url.Values{"add": {"webhook"}})); p.Doc.Find(`select[name="step_webhook_id"] option[value="`+fmt.Sprint(hook.ID)+`"]`).Length() != 1 {
		t.Errorf("add a webhook step: status %d, want the form offering the webhook", p.StatusCode)
	}
	if p := m.postForm("/automations", withValues(api, url.Values{"step_kind": {"webhook"}, "step_webhook_id": {fmt.Sprint(hook.ID)}})); p.StatusCode != 200 ||
		!strings.Contains(p.Body, fmt.Sprintf("Notify webhook %d", hook.ID)) {
		t.Errorf("save a webhook step: status %d, want the page naming the webhook", p.StatusCode)
	}
	up := url.Values{"name": {"Upgraded"}, "trigger_kind": {models.TriggerAttributeChanged}, "from_email": {"hello@example.com"},
		"trigger_attribute": {"plan"}, "trigger_value_set": {"1"}, "trigger_value": {"pro"}}
	if p := m.postForm("/automations", withValues(up, steps)); p.StatusCode != 200 {
		t.Errorf("save the attribute-changed automation: status %d", p.StatusCode)
	}
	if up, err := app.store.Automations(ctx); err != nil || up[0].TriggerAttribute != "plan" || up[0].TriggerValue == nil || *up[0].TriggerValue != "pro" {
		t.Errorf("attribute-changed automation: %+v, %v", up[0], err)
	}
	// An anniversary: a bad hour is answered beside the field, the
	// settings are kept and the page describes them.
	bday := url.Values{"name": {"Renewal"}, "trigger_kind": {models.TriggerAnniversary}, "from_email": {"hello@example.com"},
		"trigger_attribute": {"renewal"}, "trigger_days": {"7"}, "trigger_time": {"25:00"}}
	if p := m.postForm("/automations", withValues(bday, steps)); p.StatusCode != 422 || !strings.Contains(p.Body, "Give the hour as HH:MM") ||
		p.Doc.Find(`input[name="trigger_time"][value="25:00"]`).Length() != 1 {
		t.Errorf("anniversary with a bad hour: status %d, want 422 with the message and the value typed", p.StatusCode)
	}
	bday.Set("trigger_time", "10:30")
	p = m.postForm("/automations", withValues(bday, steps))
	if p.StatusCode != 200 || !strings.Contains(p.Doc.Find(`[data-testid="automation-status"]`).Text(), "the anniversary of renewal, 7 days before, at 10:30") {
		t.Errorf("save the anniversary automation: status %d, status line %q", p.StatusCode, p.Doc.Find(`[data-testid="automation-status"]`).Text())
	}
	if got, err := app.store.Automations(ctx); err != nil || got[0].TriggerKind != models.TriggerAnniversary || got[0].TriggerTime != "10:30" ||
		got[0].TriggerDays != 7 || got[0].TriggerAttribute != "renewal" {
		t.Errorf("anniversary automation: %+v, %v", got[0], err)
	}
	vip, nudge := all[0], all[1]
	if vip.TriggerKind != models.TriggerSegment || vip.TriggerSegmentID == nil || *vip.TriggerSegmentID != seg.ID {
		t.Errorf("segment automation: %+v", vip)
	}
	if nudge.TriggerKind != models.TriggerCampaignEvent || nudge.TriggerCampaignID == nil || *nudge.TriggerCampaignID != camp.ID ||
		nudge.TriggerEvent != models.OnNotOpened || nudge.TriggerDays != 3 {
		t.Errorf("campaign-event automation: %+v", nudge)
	}
}

func withValues(a, b url.Values) url.Values {
	out := url.Values{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}
