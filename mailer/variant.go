package mailer

import (
	"context"
	"fmt"
	"html"
	"regexp"
	"strconv"

	"github.com/herald-mail/herald/models"
)

// variantMsg is one A/B test variant's compiled message and sender.
type variantMsg struct {
	comp   *compiled
	params *msgParams
}

// forVariant returns what a message of variant v is made of: the
// variant's own, or the campaign's for 0 (no test, or no variant).
func (c *campaignState) forVariant(v int) (*compiled, *msgParams) {
	if m, ok := c.variants[v]; ok {
		return m.comp, m.params
	}
	return c.comp, c.params
}

// prepareVariants compiles each A/B variant of a campaign: its subject,
// from name, preheader and HTML where set, the campaign's (subject, html,
// text as chosen for it) elsewhere. A variant with its own HTML gets its
// text part derived from it, so the two parts say the same.
func (e *Engine) prepareVariants(ctx context.Context, cs *campaignState, c *models.Campaign, sd *models.SendingDomain,
	subject, htmlSrc, textSrc string, o compileOptions) error {
	vs, err := e.store.CampaignVariants(ctx, c.ID)
	if err != nil || len(vs) < models.MinVariants || c.AB.Share == 0 {
		return err
	}
	cs.variants = make(map[int]variantMsg, len(vs))
	for _, v := range vs {
		s, h, t := subject, htmlSrc, textSrc
		if v.Subject != "" {
			s = v.Subject
		}
		if v.HTML != "" {
			h, t = v.HTML, ""
		}
		if v.Preheader != "" {
			h, t = withPreheader(h, v.Preheader), ""
		}
		comp, err := compileTemplate("campaign"+strconv.FormatInt(c.ID, 10)+"v"+strconv.Itoa(v.Idx), s, h, t, o)
		if err != nil {
			return fmt.Errorf("variant %s: %w", v.Label, err)
		}
		if comp.linkIDs, err = e.store.EnsureLinks(ctx, c.ID, comp.links); err != nil {
			return err
		}
		p := cs.params
		if v.FromName != "" {
			if p, err = e.senderParams(ctx, c.FromEmail, v.FromName, c.ReplyTo, sd); err != nil {
				return fmt.Errorf("variant %s: %w", v.Label, err)
			}
			p.campaignID, p.campaignName, p.listHeaders = c.ID, c.Name, true
		}
		cs.variants[v.Idx] = variantMsg{comp, p}
	}
	return nil
}

var bodyOpenRE = regexp.MustCompile(`(?i)<body[^>]*>`)

// withPreheader puts the preheader, the line inboxes show after the
// subject, first in the body, hidden from the message's reader.
func withPreheader(src, pre string) string {
	div := `<div style="display:none;max-height:0;overflow:hidden;mso-hide:all">` + html.EscapeString(pre) + `</div>`
	if loc := bodyOpenRE.FindStringIndex(src); loc != nil {
		return src[:loc[1]] + div + src[loc[1]:]
	}
	return div + src
}
