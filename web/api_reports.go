package web

import (
	"time"

	"github.com/labstack/echo/v4"

	"github.com/herald-mail/herald/models"
)

// The campaign report through the API: the figures the report page shows
// (reports.go), from the same models.CampaignReport.

type apiRates struct {
	Total     int64 `json:"total"`
	Attempted int64 `json:"attempted"`
	apiCounters
	HardBounces  int64   `json:"hard_bounces"`
	SoftBounces  int64   `json:"soft_bounces"`
	Complaints   int64   `json:"complaints"`
	Opens        int64   `json:"opens"`
	HumanOpens   int64   `json:"human_opens"`
	Clicks       int64   `json:"clicks"`
	HumanClicks  int64   `json:"human_clicks"`
	ProgressPct  float64 `json:"progress_pct"`
	DeliveredPct float64 `json:"delivered_pct"`
	BouncePct    float64 `json:"bounce_pct"`
	ComplaintPct float64 `json:"complaint_pct"`
	OpenPct      float64 `json:"open_pct"`
	ClickPct     float64 `json:"click_pct"`
}

type apiEventCounts struct {
	Total       int64 `json:"total"`
	Human       int64 `json:"human"`
	Unique      int64 `json:"unique"`
	UniqueHuman int64 `json:"unique_human"`
}

func toAPIEventCounts(e models.EventCounts) apiEventCounts {
	return apiEventCounts{e.Total, e.Human, e.Unique, e.UniqueHuman}
}

type apiLinkStats struct {
	LinkID int64  `json:"link_id"`
	URL    string `json:"url"`
	apiEventCounts
}

type apiBounceGroup struct {
	Kind     string `json:"kind"`
	Category string `json:"category"`
	SMTP     bool   `json:"smtp"`
	Sample   string `json:"sample"`
	Count    int64  `json:"count"`
}

type apiProviderStats struct {
	Provider       string  `json:"provider"`
	Total          int64   `json:"total"`
	Sent           int64   `json:"sent"`
	Bounced        int64   `json:"bounced"`
	Failed         int64   `json:"failed"`
	Complaints     int64   `json:"complaints"`
	Deferred       int64   `json:"deferred"`
	Waiting        int64   `json:"waiting"`
	DeliveredPct   float64 `json:"delivered_pct"`
	BouncePct      float64 `json:"bounce_pct"`
	ComplaintPct   float64 `json:"complaint_pct"`
	DeferralPct    float64 `json:"deferral_pct"`
	TLSKnown       int64   `json:"tls_known"`
	TLSPct         float64 `json:"tls_pct"`
	VerifiedTLSPct float64 `json:"verified_tls_pct"`
}

type apiHour struct {
	Hour        time.Time `json:"hour"`
	Opens       int64     `json:"opens"`
	HumanOpens  int64     `json:"human_opens"`
	Clicks      int64     `json:"clicks"`
	HumanClicks int64     `json:"human_clicks"`
}

type apiWarning struct {
	Severe bool   `json:"severe"`
	Text   string `json:"text"`
}

type apiReport struct {
	Campaign  apiCampaignJS      `json:"campaign"`
	Rates     apiRates           `json:"rates"`
	Warnings  []apiWarning       `json:"warnings"`
	Opens     apiEventCounts     `json:"opens"`
	Clicks    apiEventCounts     `json:"clicks"`
	Unsubs    apiEventCounts     `json:"unsubscribes"`
	Links     []apiLinkStats     `json:"links"`
	Bounces   []apiBounceGroup   `json:"bounces"`
	Providers []apiProviderStats `json:"providers"`
	Timeline  []apiHour          `json:"timeline"`
}

func (s *apiHandlers) apiCampaignReport(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	r, err := s.store.CampaignReport(c.Request().Context(), id)
	if err != nil {
		return err
	}
	cp, err := s.campaignWithLists(c.Request().Context(), r.Campaign)
	if err != nil {
		return err
	}
	k := r.Rates
	out := apiReport{
		Campaign: cp,
		Rates: apiRates{k.Total(), k.Attempted(), toAPICounters(k.Counters),
			k.HardBounces, k.SoftBounces, k.Complaints, k.Opens, k.HumanOpens, k.Clicks, k.HumanClicks,
			k.ProgressPct(), k.DeliveredPct(), k.BouncePct(), k.ComplaintPct(), k.OpenPct(), k.ClickPct()},
		Warnings:  []apiWarning{},
		Opens:     toAPIEventCounts(r.Events.Opens),
		Clicks:    toAPIEventCounts(r.Events.Clicks),
		Unsubs:    toAPIEventCounts(r.Events.Unsubscribes),
		Links:     make([]apiLinkStats, len(r.Links)),
		Bounces:   []apiBounceGroup{},
		Providers: make([]apiProviderStats, len(r.Providers)),
		Timeline:  make([]apiHour, len(r.Timeline)),
	}
	for _, w := range k.Warnings() {
		out.Warnings = append(out.Warnings, apiWarning{w.Severe, w.Text})
	}
	for i, l := range r.Links {
		out.Links[i] = apiLinkStats{l.LinkID, l.URL, toAPIEventCounts(l.EventCounts)}
	}
	// Merged by kind and category as the report page shows them.
	for _, b := range bounceRows(r.Bounces) {
		out.Bounces = append(out.Bounces, apiBounceGroup{b.Kind, b.Category, b.SMTP, b.Sample, b.N})
	}
	for i, p := range r.Providers {
		out.Providers[i] = apiProviderStats{p.Provider, p.Total, p.Sent, p.Bounced, p.Failed, p.Complaints, p.Deferred, p.Waiting,
			p.DeliveredPct(), p.BouncePct(), p.ComplaintPct(), p.DeferralPct(), p.TLSKnown, p.TLSPct(), p.VerifiedTLSPct()}
	}
	for i, h := range r.Timeline {
		out.Timeline[i] = apiHour{h.Hour, h.Opens, h.HumanOpens, h.Clicks, h.HumanClicks}
	}
	return c.JSON(200, map[string]any{"data": out})
}
