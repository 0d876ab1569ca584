package web

import (
	"context"
	"fmt"
	"sort"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/herald-mail/herald/mailer/bounce"
	"github.com/herald-mail/herald/models"
	"github.com/herald-mail/herald/views"
)

// reportPages serves the dashboard home, campaign reports and the bounce report.
type reportPages struct{ *app }

// reportWindow is how far back the dashboard and the deliverability report
// look.
const reportWindow = 30

func (s *reportPages) dashboard(c echo.Context) error {
	ctx := c.Request().Context()
	var d views.DashboardData
	var err error
	if d.Lists, err = s.store.Lists(ctx); err != nil {
		return err
	}
	some, err := s.store.Campaigns(ctx, 0, 1)
	if err != nil {
		return err
	}
	d.HasCampaigns = len(some) > 0
	if len(d.Lists) > 0 || d.HasCampaigns {
		if err := s.dashboardData(ctx, &d); err != nil {
			return err
		}
	}
	return s.render(c, 200, views.Dashboard(s.page(c, "Dashboard", "dashboard"), d))
}

func (s *reportPages) dashboardData(ctx context.Context, d *views.DashboardData) error {
	for _, l := range d.Lists {
		d.Subscribed += l.Confirmed + l.Unconfirmed
	}
	var err error
	if d.HasCampaigns {
		if d.Running, err = s.store.CampaignRatesList(ctx, models.CampaignRatesQuery{
			Statuses: []string{models.CampaignRunning, models.CampaignPaused}, NoAutomations: true, Limit: 10}); err != nil {
			return err
		}
		if d.Recent, err = s.store.CampaignRatesList(ctx, models.CampaignRatesQuery{Limit: 5, Engagement: true}); err != nil {
			return err
		}
		for _, r := range d.Recent {
			d.Warnings = append(d.Warnings, r.Warnings()...)
		}
	}
	if d.Warnings, err = s.domainWarnings(ctx, d.Warnings); err != nil {
		return err
	}
	if d.Warnings, err = s.blocklistWarnings(ctx, d.Warnings); err != nil {
		return err
	}
	d.Growth, err = s.store.SubscriptionGrowth(ctx, reportWindow)
	return err
}

// domainWarnings adds a warning for each sending domain whose DNS is not
// verified.
func (s *reportPages) domainWarnings(ctx context.Context, ws []models.Warning) ([]models.Warning, error) {
	domains, err := s.store.SendingDomains(ctx)
	if err != nil {
		return nil, err
	}
	for _, sd := range domains {
		if sd.DNSOK {
			continue
		}
		text := "Sending domain " + sd.Domain + " is not verified: publish its DKIM, SPF and DMARC records, then run the DNS check. Gmail and Yahoo reject or junk bulk mail without them."
		if sd.DNSCheckedAt == nil {
			text = "Sending domain " + sd.Domain + " has never been checked: publish its DNS records, then run the DNS check."
		}
		ws = append(ws, models.Warning{Severe: true, Text: text, Href: "/deliverability/domains"})
	}
	return ws, nil
}

func (s *reportPages) campaignReport(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	r, err := s.store.CampaignReport(c.Request().Context(), id)
	if err != nil {
		return err
	}
	d := views.CampaignReportData{R: r, Bounces: bounceRows(r.Bounces),
		Live: r.Campaign.Status == models.CampaignRunning || r.Campaign.Status == models.CampaignPaused}
	if d.AB, err = s.store.CampaignABReport(c.Request().Context(), id); err != nil {
		return err
	}
	// Read here, not through s.page: an htmx refresh must not take the
	// flash meant for the next full page.
	d.CSRF, _ = c.Get(ctxCSRF).(string)
	if u := currentUser(c); u != nil {
		d.CanPick = (views.Page{UserRole: u.Role}).CanEdit() && r.Campaign.Status != models.CampaignCancelled
	}
	if isHTMX(c) {
		return s.render(c, 200, views.CampaignReportBody(d))
	}
	return s.render(c, 200, views.CampaignReport(s.page(c, "Report: "+r.Campaign.Name, "campaigns"), d))
}

func (s *reportPages) campaignReportCSV(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	// Looked up first, so an unknown campaign is a 404 page rather than an
	// empty download.
	if _, err := s.store.CampaignProgress(ctx, id); err != nil {
		return err
	}
	// Recorded before the data leaves: an export that cannot be recorded
	// is not served.
	if err := s.audit(c, "campaign.export", "campaign", strconv.FormatInt(id, 10), "per-recipient report exported"); err != nil {
		return err
	}
	download(c, "text/csv; charset=utf-8", fmt.Sprintf("campaign-%d-recipients.csv", id))
	return s.streamFailed(c, "campaign recipients", s.store.ExportRecipientOutcomes(ctx, id, c.Response()))
}

func (s *reportPages) bouncesReport(c echo.Context) error {
	ctx := c.Request().Context()
	before, _ := strconv.ParseInt(c.QueryParam("before"), 10, 64)
	w, err := s.store.ReportWindow(ctx, reportWindow)
	if err != nil {
		return err
	}
	var d views.BouncesData
	const perPage = 20
	page, err := s.store.CampaignRatesList(ctx, models.CampaignRatesQuery{Before: before, Limit: perPage + 1})
	if err != nil {
		return err
	}
	if len(page) > perPage {
		page = page[:perPage]
		d.Next = page[perPage-1].ID
	}
	d.Campaigns = page
	recent, err := s.store.CampaignRatesList(ctx, models.CampaignRatesQuery{Since: w.From, Limit: 200})
	if err != nil {
		return err
	}
	ids := make([]int64, len(recent))
	for i, r := range recent {
		ids[i] = r.ID
		d.Warnings = append(d.Warnings, r.Warnings()...)
	}
	if d.Warnings, err = s.domainWarnings(ctx, d.Warnings); err != nil {
		return err
	}
	if d.Providers, err = s.store.WindowProviderStats(ctx, w, ids); err != nil {
		return err
	}
	if d.Days, err = s.store.DailyRates(ctx, w); err != nil {
		return err
	}
	groups, err := s.store.WindowBounceGroups(ctx, w, 50)
	if err != nil {
		return err
	}
	d.Categories = bounceRows(groups)
	if len(d.Categories) > 10 {
		d.Categories = d.Categories[:10]
	}
	if d.Diagnostics, err = s.store.TopDiagnostics(ctx, w, 10); err != nil {
		return err
	}
	latest, err := s.store.RecentBounces(ctx, w, 50)
	if err != nil {
		return err
	}
	d.Recent = recentBounceRows(latest)
	return s.render(c, 200, views.BouncesReport(s.page(c, "Bounces & complaints", "deliverability"), d))
}

// bounceRows merges bounce groups into rows by kind, category and source,
// largest first. SMTP refusals recorded before they became bounces rows
// carry no category in the database; the mailer's classifier names it from
// the reply, as it does at send time now.
func bounceRows(groups []models.BounceGroup) []views.BounceRow {
	type key struct {
		kind, category string
		smtp           bool
	}
	idx := map[key]int{}
	var out []views.BounceRow
	for _, g := range groups {
		cat := g.Category
		if g.SMTP && cat == "" {
			cat = string(bounce.ClassifyReply(g.Code, g.Status, g.Sample).Category)
		}
		k := key{g.Kind, cat, g.SMTP}
		if i, ok := idx[k]; ok {
			out[i].N += g.N
			continue
		}
		idx[k] = len(out)
		out = append(out, views.BounceRow{Kind: g.Kind, Category: cat, SMTP: g.SMTP, Sample: g.Sample, N: g.N})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].N > out[j].N })
	return out
}

// recentBounceRows gives each bounce its reason: the one recorded with it,
// or for a refusal during sending recorded without a bounces row (before
// refusals had one), the classifier's reading of the reply.
func recentBounceRows(bs []models.RecentBounce) []views.RecentBounceRow {
	out := make([]views.RecentBounceRow, len(bs))
	for i, b := range bs {
		out[i] = views.RecentBounceRow{RecentBounce: b, Why: b.Reason}
		if b.SMTP && b.BounceID == 0 {
			v := bounce.ClassifyReply(b.Code, b.Status, b.Diagnostic)
			out[i].Category, out[i].Why = string(v.Category), v.Explain()
		}
	}
	return out
}
