package e2e_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"

	"github.com/herald-mail/herald/internal/e2e"
)

// TestCheckDNSWrongRecords runs the built binary with -transport direct and
// a sending pool: the DNS page advises an SPF record naming the pool's
// address (never v=spf1 ~all), and Check DNS marks each wrong record as
// wrong with its own reason; a campaign From that domain cannot start
// while the check fails.
func TestCheckDNSWrongRecords(t *testing.T) {
	t.Parallel() // functional: no rate or clock is measured, so it may share the machine
	if testing.Short() {
		t.Skip("starts the built binary")
	}
	dns := e2e.StartDNS(t)
	h := e2e.Start(t, e2e.Options{Transport: "direct", DNS: dns, MXPort: e2e.FreePort(t)})
	d := h.Dashboard(t)
	code, loc := d.Post(t, "/deliverability/pools", url.Values{"name": {"main"}, "strategy": {"round_robin"}})
	if code != http.StatusSeeOther {
		t.Fatalf("create pool = %d %s", code, loc)
	}
	if code, body := d.Post(t, loc+"/ips", url.Values{"address": {"127.0.0.10"}, "weight": {"1"}, "per_second": {"0"}, "active": {"1"}}); code != http.StatusSeeOther {
		t.Fatalf("add sending address = %d %.300s", code, body)
	}
	id, recs := h.SendingDomain(t, dns, "brand.example")
	for _, r := range recs {
		if r.Purpose == "spf" && (r.Value == "v=spf1 ~all" || !strings.Contains(r.Value, "ip4:127.0.0.10")) {
			t.Errorf("advised SPF = %q, want it to name the pool's ip4:127.0.0.10", r.Value)
		}
	}
	page := fmt.Sprintf("/deliverability/domains/%d", id)
	state := func(purpose string) (string, string) {
		t.Helper()
		if code, body := d.Post(t, page+"/check", nil); code != http.StatusSeeOther {
			t.Fatalf("check DNS = %d %.300s", code, body)
		}
		_, body := d.Get(t, page)
		doc, err := goquery.NewDocumentFromReader(strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		row := doc.Find(`[data-testid="record-` + purpose + `"]`)
		return strings.TrimSpace(row.Find(`[data-testid="state-badge"]`).Text()), row.Find(`[data-testid="problem"]`).Text()
	}
	if st, problem := state("spf"); st != "ok" {
		t.Fatalf("SPF as advised: %s (%s), want ok", st, problem)
	}
	setTXT := func(name string, values ...string) {
		dns.Remove(name, "TXT")
		for _, v := range values {
			dns.AddTXT(t, name, v)
		}
	}
	for i := range 4 {
		dns.AddTXT(t, fmt.Sprintf("i%d.deep.example", i), "v=spf1 a:h.deep.example mx:deep.example ip4:10.0.0.0/8 -all")
	}
	dns.Add(t, "h.deep.example. 300 IN A 10.1.1.1", "deep.example. 300 IN MX 10 h.deep.example.")
	cases := []struct {
		name, purpose, record string
		values                []string
		says                  string
	}{
		{"SPF -all", "spf", "bounces.brand.example", []string{"v=spf1 -all"}, "authorises no server at all"},
		{"SPF over 10 lookups", "spf", "bounces.brand.example",
			[]string{"v=spf1 ip4:127.0.0.10 include:i0.deep.example include:i1.deep.example include:i2.deep.example include:i3.deep.example -all"},
			"needs 12 DNS lookups"},
		{"DMARC without p=", "dmarc", "_dmarc.brand.example", []string{"v=DMARC1; rua=mailto:dmarc@brand.example"}, "no p= tag"},
		{"DMARC rua not a URI", "dmarc", "_dmarc.brand.example", []string{"v=DMARC1; p=none; rua=dmarc@brand.example"}, "is not a URI"},
	}
	var spfGood, dmarcGood string
	for _, r := range recs {
		switch r.Purpose {
		case "spf":
			spfGood = r.Value
		case "dmarc":
			dmarcGood = r.Value
		}
	}
	for _, c := range cases {
		setTXT(c.record, c.values...)
		if st, problem := state(c.purpose); st != "wrong" || !strings.Contains(problem, c.says) {
			t.Errorf("%s: %s %q, want wrong saying %q", c.name, st, problem, c.says)
		}
		setTXT("bounces.brand.example", spfGood)
		setTXT("_dmarc.brand.example", dmarcGood)
	}

	// A subdomain: the organisation's policy applies; the advice there is
	// never weaker, and a weaker record at the subdomain is wrong.
	setTXT("_dmarc.brand.example", "v=DMARC1; p=reject; rua=mailto:dmarc@brand.example")
	subID, subRecs := h.SendingDomain(t, dns, "news.brand.example")
	_, body := d.Get(t, fmt.Sprintf("/deliverability/domains/%d", subID))
	doc, _ := goquery.NewDocumentFromReader(strings.NewReader(body))
	advised := doc.Find(`[data-testid="record-dmarc"] [data-testid="value"]`).Text()
	if strings.Contains(advised, "p=none") || !strings.Contains(advised, "p=reject") {
		t.Errorf("advised DMARC for the subdomain after the check = %q, want p=reject (records published then: %v)", advised, subRecs)
	}
	page = fmt.Sprintf("/deliverability/domains/%d", subID)
	setTXT("_dmarc.news.brand.example")
	if st, problem := state("dmarc"); st != "ok" {
		t.Errorf("subdomain without its own DMARC record: %s (%s), want ok (brand.example's applies)", st, problem)
	}
	setTXT("_dmarc.news.brand.example", "v=DMARC1; p=none")
	if st, problem := state("dmarc"); st != "wrong" || !strings.Contains(problem, "weaker than the policy brand.example sets") {
		t.Errorf("subdomain p=none under p=reject: %s %q", st, problem)
	}

	// The failing check stops a direct campaign From the subdomain.
	list := h.List(t, "Readers", "ann@alpha.example")
	cp := h.NewCampaign(t, e2e.Campaign{FromEmail: "hello@news.brand.example", Lists: []int64{list}})
	if code := h.API(t, "POST", fmt.Sprintf("/campaigns/%d/start", cp), nil, nil); code != 422 {
		t.Errorf("start with failing DNS = %d, want 422", code)
	}
	_, body = d.Get(t, fmt.Sprintf("/campaigns/%d", cp))
	doc, _ = goquery.NewDocumentFromReader(strings.NewReader(body))
	rule := doc.Find(`[data-testid="check-campaign.dns"]`)
	if rule.AttrOr("data-state", "") != "bad" || !strings.Contains(rule.Text(), "news.brand.example") || !strings.Contains(rule.Text(), "weaker than the policy") {
		t.Errorf("checklist DNS rule = %s %q, want bad, naming the subdomain's DMARC problem", rule.AttrOr("data-state", ""), rule.Text())
	}
}
