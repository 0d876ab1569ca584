package views

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/herald-mail/herald/models"
)

// BounceRow is one line of a bounce breakdown: bounces of one kind and
// category, from one source.
type BounceRow struct {
	Kind     string // hard, soft or complaint
	Category string
	SMTP     bool // refused during sending rather than reported later
	Sample   string
	N        int64
}

// CampaignReportData is what the campaign report shows.
type CampaignReportData struct {
	R       *models.CampaignReport
	Bounces []BounceRow
	Live    bool // the campaign is still sending: the page refreshes itself
	// AB is the campaign's A/B test, nil when it runs none; CanPick lets
	// the viewer pick its winner (with CSRF, the form's token).
	AB      *models.ABReport
	CanPick bool
	CSRF    string
}

// DashboardData is what the home page shows.
type DashboardData struct {
	Lists        []models.List
	Subscribed   int64 // live subscriptions over all lists
	HasCampaigns bool
	Running      []models.CampaignRates
	Recent       []models.CampaignRates
	Growth       []models.DayCount
	Warnings     []models.Warning
}

// BouncesData is what the bounces and complaints report shows.
type BouncesData struct {
	Campaigns   []models.CampaignRates
	Next        int64 // cursor of the next page of campaigns; 0: none
	Providers   []models.ProviderStats
	Days        []models.DayRates
	Categories  []BounceRow
	Diagnostics []models.DiagnosticCount
	Warnings    []models.Warning
	// Recent are the latest bounces, each with the reason the classifier
	// gave, so a user can see why an address was suppressed.
	Recent []RecentBounceRow
}

// RecentBounceRow is one bounce on the bounces page.
type RecentBounceRow struct {
	models.RecentBounce
	// Why is the classifier's rule and reason: as recorded with the
	// bounce, or for a refusal during sending, as the classifier reads
	// the reply. Empty for bounces recorded before reasons were kept.
	Why string
}

// pct formats a percentage: two decimals below 1% (complaint rates live
// there), one above.
func pct(p float64) string {
	if p > 0 && p < 1 {
		return strconv.FormatFloat(p, 'f', 2, 64) + "%"
	}
	return strconv.FormatFloat(p, 'f', 1, 64) + "%"
}

// limitPct formats a threshold as people quote it: 2%, 0.1%.
func limitPct(p float64) string { return strconv.FormatFloat(p, 'f', -1, 64) + "%" }

func num(n int64) string {
	s := strconv.FormatInt(n, 10)
	if n < 0 {
		return "-" + num(-n)
	}
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func when(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2 Jan 2006 15:04 UTC")
}

func campaignHref(id int64, suffix string) string {
	return "/campaigns/" + strconv.FormatInt(id, 10) + suffix
}

// rateClass marks a rate against its warning and limit lines.
func rateClass(p, warn, limit float64) string {
	switch {
	case p >= limit:
		return "rate bad"
	case p > warn:
		return "rate warn"
	}
	return "rate"
}

func bounceClass(p float64) string {
	return rateClass(p, models.HardBounceWarnPct, 2*models.HardBounceWarnPct)
}

func complaintClass(p float64) string {
	return rateClass(p, models.ComplaintWarnPct, models.ComplaintLimitPct)
}

// Series is one line of a chart.
type Series struct {
	Label  string
	Class  string // CSS class: its colour
	Values []float64
}

// Chart is a small server-drawn line chart: points in a fixed viewBox the
// browser scales to its box.
type Chart struct {
	ID     string // data-testid
	Title  string // what the chart shows, for screen readers
	Labels []string
	Series []Series
	Unit   string // "%" or ""
	// Ceiling is the least top of the y axis (a limit line must show).
	Ceiling float64
	// Lines are horizontal reference lines, e.g. the 0.3% complaint limit.
	Lines []RefLine
}

// RefLine is a labelled horizontal line across a chart.
type RefLine struct {
	Value float64
	Label string
}

const (
	chartW, chartH          = 720.0, 200.0
	chartLeft, chartBottom  = 48.0, 24.0
	chartTop, chartRightPad = 10.0, 10.0
)

func (c Chart) max() float64 {
	m := c.Ceiling
	for _, s := range c.Series {
		for _, v := range s.Values {
			m = max(m, v)
		}
	}
	for _, l := range c.Lines {
		m = max(m, l.Value*1.2)
	}
	if m == 0 {
		return 1
	}
	return m
}

func (c Chart) n() int {
	n := 0
	for _, s := range c.Series {
		n = max(n, len(s.Values))
	}
	return n
}

func (c Chart) x(i int) float64 {
	n := c.n()
	if n <= 1 {
		return chartLeft + (chartW-chartLeft-chartRightPad)/2
	}
	return chartLeft + float64(i)*(chartW-chartLeft-chartRightPad)/float64(n-1)
}

func (c Chart) y(v float64) float64 {
	return chartTop + (chartH-chartTop-chartBottom)*(1-v/c.max())
}

// Points is the polyline of series i.
func (c Chart) Points(i int) string {
	var b strings.Builder
	for j, v := range c.Series[i].Values {
		if j > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%.1f,%.1f", c.x(j), c.y(v))
	}
	return b.String()
}

// ViewBox is the chart's SVG viewBox.
func (c Chart) ViewBox() string { return fmt.Sprintf("0 0 %.0f %.0f", chartW, chartH) }

// Tick is a label on an axis at a position.
type Tick struct {
	X, Y   float64
	Label  string
	Anchor string // SVG text-anchor: the first and last x labels stay inside
}

// XTicks labels at most about eight points along the x axis.
func (c Chart) XTicks() []Tick {
	n := len(c.Labels)
	if n == 0 {
		return nil
	}
	step := max(1, (n+7)/8)
	var out []Tick
	for i := 0; i < n; i += step {
		a := "middle"
		switch {
		case n == 1:
		case i == 0:
			a = "start"
		case i == n-1:
			a = "end"
		}
		out = append(out, Tick{X: c.x(i), Y: chartH - 6, Label: c.Labels[i], Anchor: a})
	}
	return out
}

// YTicks labels zero, half and the top of the y axis.
func (c Chart) YTicks() []Tick {
	m := c.max()
	var out []Tick
	for _, f := range []float64{0, 0.5, 1} {
		v := m * f
		label := strconv.FormatFloat(v, 'f', 0, 64)
		if c.Unit == "%" {
			label = pct(v)
			if v == 0 {
				label = "0%"
			}
		} else if m < 4 && v != 0 {
			label = strconv.FormatFloat(v, 'f', 1, 64)
		}
		out = append(out, Tick{X: chartLeft - 6, Y: c.y(v), Label: label})
	}
	return out
}

// Left and Right are the x extent of the plot area.
func (c Chart) Left() float64  { return chartLeft }
func (c Chart) Right() float64 { return chartW - chartRightPad }

// Y is the y position of a value, for reference lines.
func (c Chart) Y(v float64) float64 { return c.y(v) }

// Bottom is the y position of the x axis.
func (c Chart) Bottom() float64 { return c.y(0) }

// TimelineChart is the hourly opens-and-clicks chart of a campaign.
func TimelineChart(tl []models.HourCount) Chart {
	c := Chart{ID: "timeline-chart", Title: "Opens and clicks per hour (UTC)"}
	var opens, human, clicks, humanClicks []float64
	for _, h := range tl {
		c.Labels = append(c.Labels, h.Hour.UTC().Format("2 Jan 15h"))
		opens = append(opens, float64(h.Opens))
		human = append(human, float64(h.HumanOpens))
		clicks = append(clicks, float64(h.Clicks))
		humanClicks = append(humanClicks, float64(h.HumanClicks))
	}
	c.Series = []Series{
		{"Opens (all)", "s-open-all", opens},
		{"Opens by people", "s-open", human},
		{"Clicks (all)", "s-click-all", clicks},
		{"Clicks by people", "s-click", humanClicks},
	}
	return c
}

// GrowthChart is the live-subscriptions chart of the dashboard.
func GrowthChart(days []models.DayCount) Chart {
	c := Chart{ID: "growth-chart", Title: "Live subscriptions over the last 30 days"}
	var v []float64
	for _, d := range days {
		c.Labels = append(c.Labels, d.Day.Format("2 Jan"))
		v = append(v, float64(d.N))
	}
	c.Series = []Series{{"Live subscriptions", "s-open", v}}
	return c
}

// DailyRatesChart is the daily bounce and complaint rate chart.
func DailyRatesChart(days []models.DayRates) Chart {
	c := Chart{ID: "daily-chart", Title: "Hard bounce and complaint rates per day", Unit: "%",
		Lines: []RefLine{{models.ComplaintLimitPct, "0.3% complaint line (Gmail, Yahoo)"}}}
	var b, comp []float64
	for _, d := range days {
		c.Labels = append(c.Labels, d.Day.Format("2 Jan"))
		b = append(b, d.BouncePct())
		comp = append(comp, d.ComplaintPct())
	}
	c.Series = []Series{{"Hard bounces", "s-bounce", b}, {"Complaints", "s-complaint", comp}}
	return c
}

var categoryLabels = map[string]string{
	"user_unknown": "Unknown user", "mailbox_full": "Mailbox full", "domain_not_found": "Domain not found",
	"policy_block": "Policy or content block", "reputation_block": "Reputation block", "rate_limited": "Rate limited",
	"message_too_big": "Message too big", "expired": "Expired (gave up)", "network": "Network", "other": "Other",
	"abuse": "Marked as spam", "fraud": "Reported as fraud", "virus": "Reported as virus", "": "Unclassified",
}

// categoryLabel names a bounce category (or ARF feedback type) for people.
func categoryLabel(c string) string {
	if l, ok := categoryLabels[c]; ok {
		return l
	}
	return c
}

func abWait(secs int64) string {
	d := time.Duration(secs) * time.Second
	switch {
	case d%(24*time.Hour) == 0:
		return fmt.Sprintf("%d days", d/(24*time.Hour))
	case d%time.Hour == 0:
		return fmt.Sprintf("%d hours", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%d minutes", d/time.Minute)
	}
	return d.String()
}

func capitalise(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func ptr[T any](v T) *T { return &v }

func variantLabel(vs []models.Variant, idx int) string {
	for _, v := range vs {
		if v.Idx == idx {
			return v.Label
		}
	}
	return fmt.Sprint(idx)
}

// variantSummary says what a variant changes.
func variantSummary(vs []models.Variant, idx int) string {
	for _, v := range vs {
		if v.Idx != idx {
			continue
		}
		var parts []string
		if v.Subject != "" {
			parts = append(parts, "subject “"+v.Subject+"”")
		}
		if v.FromName != "" {
			parts = append(parts, "from “"+v.FromName+"”")
		}
		if v.Preheader != "" {
			parts = append(parts, "preheader “"+v.Preheader+"”")
		}
		if v.HTML != "" {
			parts = append(parts, "its own content")
		}
		if len(parts) == 0 {
			return "the campaign as it is"
		}
		return strings.Join(parts, ", ")
	}
	return ""
}

func abErrors(errs map[string]string) bool {
	for k := range errs {
		if strings.HasPrefix(k, "ab_") || strings.HasPrefix(k, "variant") {
			return true
		}
	}
	return false
}

func variantAt(vs []models.Variant, i int) models.Variant {
	if i-1 < len(vs) {
		v := vs[i-1]
		v.ID, v.CampaignID, v.Idx = 0, 0, 0
		return v
	}
	return models.Variant{}
}

func abShare(c models.Campaign) string {
	if c.AB.Share == 0 {
		return "20"
	}
	return strconv.Itoa(c.AB.Share)
}

func abWaitValue(c models.Campaign) string {
	switch s := c.AB.WaitSeconds; {
	case s == 0:
		return "4h"
	case s < 0:
		return ""
	case s%86400 == 0:
		return fmt.Sprintf("%dd", s/86400)
	case s%3600 == 0:
		return fmt.Sprintf("%dh", s/3600)
	case s%60 == 0:
		return fmt.Sprintf("%dm", s/60)
	default:
		return fmt.Sprintf("%ds", s)
	}
}

// abTested says whether the best and the runner-up both have trials, so
// their test means something.
func abTested(a models.ABAnalysis) bool {
	n := 0
	for _, v := range a.Variants {
		if (v.Idx == a.Best || v.Idx == a.RunnerUp) && v.Trials > 0 {
			n++
		}
	}
	return a.Best != 0 && a.RunnerUp != 0 && n == 2
}
