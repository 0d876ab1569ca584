package web

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/herald-mail/herald/views"
)

// domainReports loads what a domain's Reports page and its API show over
// the last days days (7, 30, 90 or 365; anything else reads as 30).
func (s *sendingPages) domainReports(ctx context.Context, id int64, days int) (*views.DomainReportsView, error) {
	d, err := s.store.SendingDomain(ctx, id)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(views.ReportPeriods, days) {
		days = 30
	}
	since := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -days)
	v := &views.DomainReportsView{Domain: d, Days: days,
		DMARCAddress: d.ReportAddress("dmarc", false), TLSAddress: d.ReportAddress("tlsrpt", false)}
	if v.DMARC, err = s.store.DMARCSummary(ctx, d.Domain, since); err != nil {
		return nil, err
	}
	if v.TLS, err = s.store.TLSSummary(ctx, []string{d.Domain, d.ReturnPathDomain}, since); err != nil {
		return nil, err
	}
	own, err := s.store.SPFAddresses(ctx)
	if err != nil {
		return nil, err
	}
	v.Judge(own, []string{d.Selector, d.Ed25519Selector})
	return v, nil
}

// domainReportsPage shows a sending domain's DMARC aggregate and TLS
// reports over the chosen period (?days=7|30|90|365, default 30).
func (s *sendingPages) domainReportsPage(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	days, _ := strconv.Atoi(c.QueryParam("days"))
	v, err := s.domainReports(c.Request().Context(), id, days)
	if err != nil {
		return err
	}
	return s.render(c, 200, views.DomainReportsPage(s.page(c, "Reports for "+v.Domain.Domain, "deliverability"), *v))
}

// apiDomainReports is the Reports page as JSON.
func (s *apiHandlers) apiDomainReports(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	days, _ := strconv.Atoi(c.QueryParam("days"))
	v, err := s.sending().domainReports(c.Request().Context(), id, days)
	if err != nil {
		return err
	}
	type source struct {
		IP          string   `json:"ip"`
		ReverseName string   `json:"reverse_name"`
		Messages    int64    `json:"messages"`
		Aligned     int64    `json:"dmarc_pass"`
		DKIMPass    int64    `json:"dkim_aligned_pass"`
		SPFPass     int64    `json:"spf_aligned_pass"`
		Quarantined int64    `json:"quarantined"`
		Rejected    int64    `json:"rejected"`
		Herald      bool     `json:"herald"`
		Flag        string   `json:"flag"`
		Reporters   []string `json:"reporters"`
	}
	type tlsResult struct {
		Reporter     string    `json:"reporter"`
		Begin        time.Time `json:"begin"`
		PolicyType   string    `json:"policy_type"`
		PolicyDomain string    `json:"policy_domain"`
		Success      int64     `json:"success"`
		Failure      int64     `json:"failure"`
		Failures     []string  `json:"failures"`
	}
	out := struct {
		Domain       string      `json:"domain"`
		Days         int         `json:"days"`
		DMARCAddress string      `json:"dmarc_address"`
		TLSAddress   string      `json:"tls_address"`
		Messages     int64       `json:"messages"`
		Aligned      int64       `json:"dmarc_pass"`
		Reports      int         `json:"reports"`
		Sources      []source    `json:"sources"`
		TLSSuccess   int64       `json:"tls_success"`
		TLSFailure   int64       `json:"tls_failure"`
		TLS          []tlsResult `json:"tls"`
	}{Domain: v.Domain.Domain, Days: v.Days, DMARCAddress: v.DMARCAddress, TLSAddress: v.TLSAddress, Messages: v.DMARC.Messages,
		Aligned: v.DMARC.Aligned, Reports: len(v.DMARC.Reports), Sources: []source{}, TLSSuccess: v.TLS.Success, TLSFailure: v.TLS.Failure, TLS: []tlsResult{}}
	for _, r := range v.Sources {
		out.Sources = append(out.Sources, source{IP: r.IP, ReverseName: r.ReverseName, Messages: r.Messages, Aligned: r.Aligned, DKIMPass: r.DKIMPass,
			SPFPass: r.SPFPass, Quarantined: r.Quarantined, Rejected: r.Rejected, Herald: r.Herald, Flag: r.Flag, Reporters: r.Reporters})
	}
	for _, r := range v.TLS.Results {
		f := r.FailureLines()
		if f == nil {
			f = []string{}
		}
		out.TLS = append(out.TLS, tlsResult{Reporter: r.OrgName, Begin: r.DateBegin.UTC(), PolicyType: r.PolicyType, PolicyDomain: r.PolicyDomain,
			Success: r.Success, Failure: r.Failure, Failures: f})
	}
	return c.JSON(http.StatusOK, map[string]any{"data": out})
}
