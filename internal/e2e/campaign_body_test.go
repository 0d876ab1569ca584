package e2e_test

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/e2e"
	"github.com/herald-mail/herald/models"
)

// TestCampaignBodyOfItsOwn, as a new user would: a template saved from the
// dashboard's default, two campaigns started from it, one's message
// rewritten. The template and the other campaign keep the default; the
// untouched one is refused for its placeholder; the edited one goes out
// through capture with a text part derived from its HTML: its words, and
// its links as numbered footnotes that are the tracked URLs leading to the
// links' targets, and no placeholder text.
func TestCampaignBodyOfItsOwn(t *testing.T) {
	t.Parallel() // functional: no rate or clock is measured, so it may share the machine
	if testing.Short() {
		t.Skip("starts the built binary")
	}
	for _, db := range []string{"sqlite", "postgres"} {
		t.Run(db, func(t *testing.T) {
			url := ""
			if db == "postgres" {
				url = e2e.PostgresURL(t)
			}
			campaignBodyOfItsOwn(t, e2e.Start(t, e2e.Options{DatabaseURL: url}))
		})
	}
}

func campaignBodyOfItsOwn(t *testing.T, h *e2e.Herald) {
	d := h.Dashboard(t)
	list := h.List(t, "Readers", "ann@readers.test", "bob@readers.test")

	_, page := d.Get(t, "/templates/new")
	m := regexp.MustCompile(`(?s)<textarea[^>]*name="html"[^>]*>(.*?)</textarea>`).FindStringSubmatch(page)
	if m == nil {
		t.Fatal("the new-template page has no HTML field")
	}
	defaultHTML := html.UnescapeString(strings.TrimPrefix(m[1], "\n"))
	if !strings.Contains(defaultHTML, "Write your message here.") {
		t.Fatalf("the default template changed; its placeholder is gone:\n%s", defaultHTML)
	}
	code, loc := d.Post(t, "/templates", url.Values{"kind": {"campaign"}, "name": {"Newsletter"}, "subject": {"News from {{.Org.Name}}"},
		"html": {defaultHTML}, "text": {""}})
	var tplID int64
	if _, err := fmt.Sscanf(loc, "/templates/%d/edit", &tplID); code != http.StatusSeeOther || err != nil {
		t.Fatalf("save template = %d %s", code, loc)
	}

	newCampaign := func(name string) int64 {
		code, loc := d.Post(t, "/campaigns", url.Values{"name": {name}, "template_id": {fmt.Sprint(tplID)},
			"from_email": {"news@sender.example"}, "from_name": {"Sender"}, "lists": {fmt.Sprint(list)}, "track_clicks": {"on"}})
		var id int64
		if _, err := fmt.Sscanf(loc, "/campaigns/%d", &id); code != http.StatusSeeOther || err != nil {
			t.Fatalf("create campaign %s = %d %s", name, code, loc)
		}
		return id
	}
	a, b := newCampaign("Spring"), newCampaign("Summer")

	edited := strings.Replace(defaultHTML,
		`<p style="margin:0 0 16px;">Write your message here. Keep it short, say one thing well, and end with one clear next step.</p>`,
		`<p style="margin:0 0 16px;">The spring fair opens on Saturday &amp; runs all weekend.</p>
            <h2>What is on</h2>
            <ul><li>Music at <a href="https://fair.example/stage">the stage</a></li><li>Food stalls</li></ul>
            <p>See the <a href="https://fair.example/map">map</a> before you come.</p>`, 1)
	edited = strings.Replace(edited, `href="https://example.com/"`, `href="https://fair.example/tickets"`, 1)
	if edited == defaultHTML {
		t.Fatal("the edit changed nothing")
	}
	code, loc = d.Post(t, fmt.Sprintf("/campaigns/%d", a), url.Values{"name": {"Spring"}, "from_email": {"news@sender.example"},
		"from_name": {"Sender"}, "lists": {fmt.Sprint(list)}, "track_clicks": {"on"}, "subject": {"The spring fair"},
		"preheader": {"Saturday and Sunday"}, "format": {"html"}, "html": {edited}, "text": {""}})
	if code != http.StatusSeeOther {
		t.Fatalf("edit campaign = %d %s", code, loc)
	}

	var tpl struct {
		Data struct{ Subject, HTML, Text string } `json:"data"`
	}
	h.MustAPI(t, http.StatusOK, "GET", fmt.Sprintf("/templates/%d", tplID), nil, &tpl)
	if tpl.Data.HTML != defaultHTML || tpl.Data.Text != "" || tpl.Data.Subject != "News from {{.Org.Name}}" {
		t.Errorf("the template changed: %+v", tpl.Data)
	}
	type apiCampaign struct {
		Data struct {
			Subject, Preheader, HTML, Text, Format string
			TextDerived                            bool `json:"text_derived"`
		} `json:"data"`
	}
	var cb, ca apiCampaign
	h.MustAPI(t, http.StatusOK, "GET", fmt.Sprintf("/campaigns/%d", b), nil, &cb)
	if cb.Data.HTML != defaultHTML || cb.Data.Subject != "News from {{.Org.Name}}" || cb.Data.Preheader != "" || !cb.Data.TextDerived {
		t.Errorf("the other campaign changed: %+v", cb.Data)
	}
	h.MustAPI(t, http.StatusOK, "GET", fmt.Sprintf("/campaigns/%d", a), nil, &ca)
	if ca.Data.HTML != edited || ca.Data.Subject != "The spring fair" || ca.Data.Preheader != "Saturday and Sunday" || ca.Data.Format != "html" {
		t.Errorf("the edited campaign = %+v", ca.Data)
	}

	// The untouched campaign still says the placeholder: refused.
	var refusal struct {
		Error struct{ Message string } `json:"error"`
	}
	if code := h.API(t, "POST", fmt.Sprintf("/campaigns/%d/start", b), nil, &refusal); code != http.StatusUnprocessableEntity ||
		!strings.Contains(refusal.Error.Message, "Write your message here") {
		t.Errorf("start of the untouched campaign = %d %q, want 422 naming the placeholder", code, refusal.Error.Message)
	}
	_, campaignPage := d.Get(t, fmt.Sprintf("/campaigns/%d", a))
	if !strings.Contains(campaignPage, "Derived from the HTML") {
		t.Error("the checklist does not say the text part is derived")
	}

	h.StartCampaign(t, a)
	h.WaitCampaign(t, a, 60*time.Second, "finished")
	s := h.Store(t)
	ctx := context.Background()
	msgs, err := s.Outbox(ctx, models.OutboxQuery{CampaignID: a})
	if err != nil || len(msgs) != 2 {
		t.Fatalf("outbox = %d messages, %v; want 2", len(msgs), err)
	}
	msg, err := s.OutboxMessage(ctx, msgs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(msg.Text, "\r\n", "\n")
	for _, want := range []string{"The spring fair opens on Saturday & runs all weekend.", "What is on\n----------",
		"- Music at the stage [", "- Food stalls", "See the map [", "Read more [", "Unsubscribe [", "Thank you for reading."} {
		if !strings.Contains(text, want) {
			t.Errorf("text part lacks %q:\n%s", want, text)
		}
	}
	for _, bad := range []string{"Write your message here", "<p", "&amp;", "{{", "Saturday and Sunday"} {
		if strings.Contains(text, bad) {
			t.Errorf("text part holds %q:\n%s", bad, text)
		}
	}
	if !strings.Contains(msg.HTML, "Saturday and Sunday") || strings.Contains(msg.HTML, "Write your message here") {
		t.Error("the HTML part lacks the preheader or keeps the placeholder")
	}
	// Each footnote is the HTML's tracked link, and leads to its target.
	notes := regexp.MustCompile(`(?m)^\[(\d+)\] (\S+)$`).FindAllStringSubmatch(text, -1)
	targets := map[string]bool{}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }, Timeout: 10 * time.Second}
	for _, n := range notes {
		u := n[2]
		if !strings.Contains(msg.HTML, `href="`+u+`"`) {
			t.Errorf("footnote [%s] %s is not a link of the HTML part", n[1], u)
		}
		if !strings.Contains(u, "/t/c/") {
			continue // unsubscribe and preferences
		}
		resp, err := noRedirect.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		targets[resp.Header.Get("Location")] = true
	}
	for _, want := range []string{"https://fair.example/stage", "https://fair.example/map", "https://fair.example/tickets"} {
		if !targets[want] {
			t.Errorf("no footnote leads to %s (footnotes lead to %v)", want, targets)
		}
	}
}
