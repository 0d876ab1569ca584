package web

import (
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/herald-mail/herald/views"
)

// domainReportsPage shows a sending domain's DMARC aggregate and TLS
// reports over the chosen period (?days=7|30|90|365, default 30).
func (s *sendingPages) domainReportsPage(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	d, err := s.store.SendingDomain(ctx, id)
	if err != nil {
		return err
	}
	days := 30
	if n, err := strconv.Atoi(c.QueryParam("days")); err == nil {
		for _, p := range views.ReportPeriods {
			if n == p {
				days = n
			}
		}
	}
	since := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -days)
	v := views.DomainReportsView{Domain: d, Days: days,
		DMARCAddress: d.ReportAddress("dmarc", false), TLSAddress: d.ReportAddress("tlsrpt", false)}
	if v.DMARC, err = s.store.DMARCSummary(ctx, d.Domain, since); err != nil {
		return err
	}
	if v.TLS, err = s.store.TLSSummary(ctx, []string{d.Domain, d.ReturnPathDomain}, since); err != nil {
		return err
	}
	own, err := s.store.SPFAddresses(ctx)
	if err != nil {
		return err
	}
	v.Judge(own, []string{d.Selector, d.Ed25519Selector})
	return s.render(c, 200, views.DomainReportsPage(s.page(c, "Reports for "+d.Domain, "deliverability"), v))
}
