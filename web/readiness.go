package web

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/herald-mail/herald/mailer"
	"github.com/herald-mail/herald/models"
	"github.com/herald-mail/herald/views"
	"github.com/labstack/echo/v4"
)

// readiness is the one implementation of the sending rules, as this
// server's configuration sees them.
func (s *app) readiness() *mailer.Readiness {
	tr := s.delivery().Transport
	r := &mailer.Readiness{Store: s.store, DefaultCaptures: tr == "capture" || tr == "", RootURL: s.cfg.RootURL}
	if tr == "direct" {
		// How direct delivery introduces itself: its EHLO name and the
		// reverse DNS of its addresses.
		r.DirectTransport, r.Hostname, r.Resolver = true, s.cfg.Hostname, mailer.NewResolver(s.cfg.DNSServer)
	}
	if s.mailer != nil {
		r.RelaySigns = s.mailer.RelaySigning()
		r.Spam = s.mailer.SpamScoring()
	}
	return r
}

// toViewChecks shows checks with a link to the page that fixes each; cp
// is the campaign they are about, nil on the readiness panel.
func toViewChecks(cs []mailer.Check, cp *models.Campaign) []views.Check {
	out := make([]views.Check, len(cs))
	for i, c := range cs {
		out[i] = views.Check{ID: c.ID, Title: c.Title, OK: c.OK, Blocking: c.Blocking, Detail: c.Detail, FixHint: c.FixHint}
		if c.Score != nil {
			out[i].Score = strconv.FormatFloat(*c.Score, 'f', 1, 64)
			for _, r := range c.Rules {
				out[i].Rules = append(out[i].Rules, views.SpamRule{Name: r.Name, Points: strconv.FormatFloat(r.Score, 'f', 1, 64),
					Description: r.Description, Hint: r.Hint})
			}
		}
		out[i].FixHref, out[i].FixLabel = fixLink(c.ID, cp)
	}
	return out
}

// fixLink is the page where a failing check is put right, and the words
// of the link to it; "" when no page of Herald fixes it.
func fixLink(id string, cp *models.Campaign) (href, label string) {
	switch {
	case id == "org.postal_address":
		return "/settings", "Open Settings"
	case id == "org.sender_domains" || id == "campaign.dkim" || strings.HasPrefix(id, "org.dns"):
		return "/deliverability/domains", "Open Sending domains"
	case id == "org.template_footers":
		return "/templates", "Open Templates"
	case id == "org.complaints":
		return "/deliverability/bounces", "Open Bounces & complaints"
	case id == "org.blocklists":
		return "/deliverability/reputation", "Open Reputation"
	case id == "org.unsubscribe_honoured":
		return "/deliverability/suppressions", "Open Suppressions"
	case cp == nil:
		return "", ""
	case id == "campaign.template" || id == "campaign.unsubscribe" || id == "campaign.postal_address" ||
		id == "campaign.image_only" || id == "campaign.text_part" || id == "campaign.shorteners":
		if cp.TemplateID != nil {
			return fmt.Sprintf("/templates/%d/edit", *cp.TemplateID), "Edit the template"
		}
		return fmt.Sprintf("/campaigns/%d/edit", cp.ID), "Choose a template"
	case id == "campaign.subject" || id == "campaign.recipients" || id == "campaign.caps" || id == "campaign.spam_score":
		return fmt.Sprintf("/campaigns/%d/edit", cp.ID), "Edit the campaign"
	}
	return "", ""
}

func (s *compliancePages) readinessPage(c echo.Context) error {
	checks, err := s.readiness().OrgChecks(c.Request().Context())
	if err != nil {
		return err
	}
	return s.render(c, 200, views.ReadinessPage(s.page(c, "Readiness", "compliance"), toViewChecks(checks, nil)))
}
