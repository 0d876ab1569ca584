package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"github.com/herald-mail/herald/models"
)

// Organisation sets the organisation's name and postal address, which
// every campaign must show (the readiness rules block a start without
// them). Start calls it before the process starts, so that no cached
// setting is stale.
func (h *Herald) organisation(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	s := h.Store(t)
	for k, v := range map[string]string{models.SettingOrgName: "Herald E2E", models.SettingPostalAddress: "1 Test Street, 75001 Paris, France"} {
		if err := s.SetSetting(ctx, k, v); err != nil {
			t.Fatal(err)
		}
	}
}

// DNSRecord is one record as the sending-domain page shows it.
type DNSRecord struct {
	Purpose, Type, Name, Value string
}

// SendingDomain adds domain through the dashboard, publishes into dns
// exactly the records the domain's page then shows, runs the page's DNS
// check, and returns the domain's id and those records.
func (h *Herald) SendingDomain(t testing.TB, dns *DNS, domain string) (int64, []DNSRecord) {
	t.Helper()
	d := h.Dashboard(t)
	code, loc := d.Post(t, "/deliverability/domains", url.Values{"domain": {domain}})
	if code != http.StatusSeeOther {
		t.Fatalf("e2e: add sending domain %s = %d: %s", domain, code, tail(loc, 20))
	}
	id, err := strconv.ParseInt(loc[strings.LastIndexByte(loc, '/')+1:], 10, 64)
	if err != nil {
		t.Fatalf("e2e: sending domain redirect %q", loc)
	}
	recs := h.DomainRecords(t, d, id)
	for _, r := range recs {
		dns.Records(t, models.DNSRecord{Type: r.Type, Name: r.Name, Value: r.Value})
	}
	if code, body := d.Post(t, fmt.Sprintf("/deliverability/domains/%d/check", id), nil); code >= 400 {
		t.Fatalf("e2e: check DNS of %s = %d: %s", domain, code, tail(body, 20))
	}
	return id, recs
}

// DomainRecords reads the records table of a sending domain's page.
func (h *Herald) DomainRecords(t testing.TB, d *Dashboard, id int64) []DNSRecord {
	t.Helper()
	code, body := d.Get(t, fmt.Sprintf("/deliverability/domains/%d", id))
	if code != 200 {
		t.Fatalf("e2e: domain page %d = %d", id, code)
	}
	doc, err := goquery.NewDocumentFromReader(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var recs []DNSRecord
	doc.Find(`[data-testid="records-table"] tbody tr`).Each(func(_ int, tr *goquery.Selection) {
		td := tr.Find("td")
		recs = append(recs, DNSRecord{
			Purpose: strings.TrimSpace(td.Eq(0).Text()),
			Type:    strings.TrimSpace(td.Eq(1).Text()),
			Name:    strings.TrimSpace(tr.Find(`[data-testid="name"]`).Text()),
			Value:   strings.TrimSpace(tr.Find(`[data-testid="value"]`).Text()),
		})
	})
	if len(recs) == 0 {
		t.Fatalf("e2e: no DNS records on the page of domain %d", id)
	}
	return recs
}

// List creates a single opt-in list and subscribes emails to it (confirmed),
// returning the list's id.
func (h *Herald) List(t testing.TB, name string, emails ...string) int64 {
	t.Helper()
	var l created
	h.MustAPI(t, http.StatusCreated, "POST", "/lists", map[string]any{"name": name, "optin": "single"}, &l)
	h.Subscribe(t, l.Data.ID, emails...)
	return l.Data.ID
}

// Subscribe adds subscribers (new or existing) to a list.
func (h *Herald) Subscribe(t testing.TB, list int64, emails ...string) {
	t.Helper()
	for i, e := range emails {
		in := map[string]any{"email": e, "name": fmt.Sprintf("Reader %d", i+1), "lists": []int64{list},
			"attributes": map[string]any{"city": "Paris"}}
		if code := h.API(t, "POST", "/subscribers", in, nil); code == http.StatusConflict {
			var s struct {
				Data []struct {
					ID    int64  `json:"id"`
					Email string `json:"email"`
				} `json:"data"`
			}
			// The search finds the address anywhere (jo@… also finds
			// ajo@…): take the exact one.
			h.MustAPI(t, 200, "GET", "/subscribers?q="+url.QueryEscape(e), nil, &s)
			var id int64
			for _, r := range s.Data {
				if strings.EqualFold(r.Email, e) {
					id = r.ID
				}
			}
			if id == 0 {
				t.Fatalf("e2e: subscriber %s exists but is not found", e)
			}
			h.MustAPI(t, 200, "PUT", fmt.Sprintf("/subscribers/%d/lists/%d", id, list), map[string]any{}, nil)
		} else if code != http.StatusCreated {
			t.Fatalf("e2e: create subscriber %s = %d", e, code)
		}
	}
}

// Campaign describes a campaign for NewCampaign; zero fields get defaults.
type Campaign struct {
	Name, Subject, FromName, FromEmail, ReplyTo string
	// HTML is the template's body; "" means a short newsletter with the
	// unsubscribe link and postal address the readiness rules require.
	HTML, Text string
	Lists      []int64
	// Transport overrides the server's for this campaign ("" keeps it).
	Transport string
}

// DefaultHTML is a small newsletter that passes the readiness rules.
const DefaultHTML = `<!doctype html><html><body>
<h1>Hello {{.Subscriber.Name}}</h1>
<p>News for {{.Subscriber.Attributes.city}} from {{.Org.Name}}. <a href="https://example.org/read">Read more</a>.</p>
<p>{{.Org.PostalAddress}} · <a href="{{.UnsubscribeURL}}">Unsubscribe</a></p>
</body></html>`

// NewCampaign creates a template and a draft campaign, returning its id.
func (h *Herald) NewCampaign(t testing.TB, c Campaign) int64 {
	t.Helper()
	if c.HTML == "" {
		c.HTML = DefaultHTML
	}
	if c.Name == "" {
		c.Name = "E2E " + randomHex(3)
	}
	if c.Subject == "" {
		c.Subject = "News for {{.Subscriber.Name}}"
	}
	if c.FromName == "" {
		c.FromName = "Herald E2E"
	}
	var tpl created
	h.MustAPI(t, http.StatusCreated, "POST", "/templates", map[string]any{"kind": "campaign", "name": c.Name + " template",
		"subject": c.Subject, "html": c.HTML, "text": c.Text}, &tpl)
	var cp created
	h.MustAPI(t, http.StatusCreated, "POST", "/campaigns", map[string]any{"name": c.Name, "template_id": tpl.Data.ID,
		"subject": c.Subject, "from_name": c.FromName, "from_email": c.FromEmail, "reply_to": c.ReplyTo,
		"lists": c.Lists, "transport": c.Transport}, &cp)
	return cp.Data.ID
}

// StartCampaign starts a draft campaign through the API (the readiness
// rules decide, as for the dashboard's Send now).
func (h *Herald) StartCampaign(t testing.TB, id int64) {
	t.Helper()
	h.MustAPI(t, http.StatusOK, "POST", fmt.Sprintf("/campaigns/%d/start", id), nil, nil)
}

// created is the API's answer to a POST that created something.
type created struct {
	Data struct {
		ID int64 `json:"id"`
	} `json:"data"`
}

// CampaignState is the API's view of a campaign.
type CampaignState struct {
	ID       int64            `json:"id"`
	Status   string           `json:"status"`
	Counters map[string]int64 `json:"counters"`
}

// WaitCampaign polls the campaign until its status is one of want (e.g.
// "finished"), failing after timeout, and returns its last state.
func (h *Herald) WaitCampaign(t testing.TB, id int64, timeout time.Duration, want ...string) CampaignState {
	t.Helper()
	var st CampaignState
	Eventually(t, timeout, fmt.Sprintf("campaign %d to be %v", id, want), func() bool {
		var got struct {
			Data CampaignState `json:"data"`
		}
		if h.API(t, "GET", fmt.Sprintf("/campaigns/%d", id), nil, &got) != 200 {
			return false
		}
		st = got.Data
		for _, w := range want {
			if st.Status == w {
				return true
			}
		}
		return false
	})
	return st
}
