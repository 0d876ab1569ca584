package mailer

import (
	"context"
	"fmt"
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

// VariantContent is what variant v of campaign c sends: the campaign's
// own content (ContentOf) with the variant's subject, preheader and HTML
// where set. A variant's HTML is HTML whatever the campaign's format, and
// its text part is derived from it, so the two parts say the same.
func VariantContent(c *models.Campaign, v models.Variant) Content {
	ct := ContentOf(c)
	if v.Subject != "" {
		ct.Subject = v.Subject
	}
	if v.Preheader != "" {
		ct.Preheader = v.Preheader
	}
	if v.HTML != "" {
		ct.Body, ct.Text, ct.Format = v.HTML, "", models.FormatHTML
	}
	return ct
}

// prepareVariants compiles each A/B variant of a campaign
// (VariantContent), with the campaign's compile options o, and its sender
// where the variant has its own from name.
func (e *Engine) prepareVariants(ctx context.Context, cs *campaignState, c *models.Campaign, sd *models.SendingDomain, o compileOptions) error {
	vs, err := e.store.CampaignVariants(ctx, c.ID)
	if err != nil || len(vs) < models.MinVariants || c.AB.Share == 0 {
		return err
	}
	cs.variants = make(map[int]variantMsg, len(vs))
	for _, v := range vs {
		comp, err := compileContent("campaign"+strconv.FormatInt(c.ID, 10)+"v"+strconv.Itoa(v.Idx), VariantContent(c, v), o)
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
