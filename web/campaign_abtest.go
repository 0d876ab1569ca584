package web

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/herald-mail/herald/mailer"
	"github.com/herald-mail/herald/models"
)

// abFromForm reads the campaign form's "A/B test" section: with the test
// switched on, variants A and B always (empty fields: the campaign's
// own), C to E when anything is filled in; off, no test.
func abFromForm(c echo.Context, cp *models.Campaign) {
	cp.Variants = []models.Variant{}
	cp.AB = models.ABTest{}
	if c.FormValue("ab_on") != "on" {
		return
	}
	for i := 1; i <= models.MaxVariants; i++ {
		f := func(name string) string { return strings.TrimSpace(c.FormValue(fmt.Sprintf("v%d_%s", i, name))) }
		v := models.Variant{Label: f("label"), Subject: f("subject"), FromName: f("from_name"), Preheader: f("preheader"), HTML: f("html")}
		if i > models.MinVariants && v == (models.Variant{}) {
			continue
		}
		cp.Variants = append(cp.Variants, v)
	}
	cp.AB.Share, _ = strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(c.FormValue("ab_share")), "%"))
	cp.AB.Metric = c.FormValue("ab_metric")
	cp.AB.Manual = c.FormValue("ab_mode") == "manual"
	cp.AB.WaitSeconds = parseWait(c.FormValue("ab_wait"))
}

// parseWait reads a wait such as "4h", "30m" or "1h30m"; a bare number is
// hours. It returns -1 when the text is none of these (the validation
// then says what to write).
func parseWait(s string) int64 {
	s = strings.TrimSpace(strings.ToLower(s))
	if n, err := strconv.ParseFloat(s, 64); err == nil {
		return int64(n * 3600)
	}
	if strings.HasSuffix(s, "d") {
		if n, err := strconv.ParseFloat(strings.TrimSuffix(s, "d"), 64); err == nil {
			return int64(n * 86400)
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return -1
	}
	return int64(d / time.Second)
}

// checkVariants checks each A/B variant's own subject and HTML as a
// template is checked when saved (syntax, unknown fields, with their
// line), and that own HTML keeps the unsubscribe link the campaign's
// template must have.
func checkVariants(cp *models.Campaign, errs map[string]string) {
	for _, v := range cp.Variants {
		key := fmt.Sprintf("variant_%d", v.Idx)
		if errs[key] != "" || (v.Subject == "" && v.HTML == "" && v.Preheader == "") {
			continue
		}
		subject, html := firstNonEmpty(v.Subject, "subject"), firstNonEmpty(v.HTML, "<p></p>")
		if err := mailer.CheckTemplate(subject, html, ""); err != nil {
			errs[key] = fmt.Sprintf("Variant %s: %v", v.Label, err)
		} else if v.HTML != "" && !strings.Contains(v.HTML, ".UnsubscribeURL") {
			errs[key] = fmt.Sprintf("Variant %s's HTML has no unsubscribe link: add <a href=\"{{.UnsubscribeURL}}\">Unsubscribe</a>.", v.Label)
		}
	}
}
