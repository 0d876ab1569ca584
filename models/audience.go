package models

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"
)

// Audience is who a campaign goes to: the people of its lists and of its
// segments, minus the live members of its excluded lists and the people
// of its excluded segments.
type Audience struct {
	Lists           []int64 `json:"lists"`
	Segments        []int64 `json:"segments"`
	ExcludeLists    []int64 `json:"exclude_lists"`
	ExcludeSegments []int64 `json:"exclude_segments"`
}

// Empty reports whether the audience includes nobody.
func (a Audience) Empty() bool { return len(a.Lists) == 0 && len(a.Segments) == 0 }

// listsOnly is an audience of lists alone, which materialisation reads
// through the lists' index.
func (a Audience) listsOnly() bool {
	return len(a.Segments) == 0 && len(a.ExcludeLists) == 0 && len(a.ExcludeSegments) == 0
}

// eligibleSub is the rule for a subscription sp of list l that lets its
// subscriber be sent a campaign: confirmed, or unconfirmed on a single
// opt-in list.
const eligibleSub = "(sp.status = 'confirmed' OR (sp.status = 'unconfirmed' AND l.optin = 'single'))"

// eligibleOn is an eligible subscription of s, on the lists bound to its
// placeholder when in is true, on any list otherwise.
func eligibleOn(in bool) string {
	q := "EXISTS (SELECT 1 FROM subscriptions sp JOIN lists l ON l.id = sp.list_id WHERE sp.subscriber_id = s.id"
	if in {
		q += " AND sp.list_id IN ?"
	}
	return q + " AND " + eligibleSub + ")"
}

// audiencePredicate is THE audience rule, a condition over subscribers s
// with its parameters, which the live count (CountAudience) and
// materialisation (MaterializeCampaign) both apply: an active subscriber
// who is eligible on one of the lists, or who matches one of the
// segments and is eligible on some list; and who is neither a live
// member of an excluded list nor matched by an excluded segment.
// Suppressed addresses are taken out afterwards by both.
//
// after limits the rule to subscribers above that id (materialisation's
// cursor), which lets segment conditions cut their sets; 0 is everyone.
//
// Eligibility on some list is a factor of the rule (eligible on one of
// the lists implies eligible on some list), so it is written first:
// active AND eligible somewhere AND (on the lists OR in a segment).
func (s *Store) audiencePredicate(ctx context.Context, a Audience, at time.Time, after int64) (string, []any, error) {
	var (
		incl []string
		args []any
	)
	if len(a.Lists) > 0 {
		incl = append(incl, eligibleOn(true))
		args = append(args, a.Lists)
	}
	if len(a.Segments) > 0 {
		var segs []string
		var segArgs []any
		for _, id := range a.Segments {
			seg, err := s.Segment(ctx, id)
			if err != nil {
				return "", nil, err
			}
			where, sargs, err := s.compileAfter(ctx, seg.Conditions, at, after)
			if err != nil {
				return "", nil, fmt.Errorf("segment %q: %w", seg.Name, err)
			}
			segs = append(segs, "("+where+")")
			segArgs = append(segArgs, sargs...)
		}
		incl = append(incl, segs...)
		args = append(args, segArgs...)
	}
	if len(incl) == 0 {
		return "1 = 0", nil, nil
	}
	where := "s.status = 'active' AND (" + strings.Join(incl, " OR ") + ")"
	if len(a.Segments) > 0 {
		// Only a segment's people need the factor: the lists' term
		// already is eligibility on them.
		where = "s.status = 'active' AND " + eligibleOn(false) + " AND (" + strings.Join(incl, " OR ") + ")"
	}
	if len(a.ExcludeLists) > 0 {
		where += " AND NOT EXISTS (SELECT 1 FROM subscriptions x WHERE x.subscriber_id = s.id AND x.list_id IN ? AND x.status IN ('unconfirmed', 'confirmed'))"
		args = append(args, a.ExcludeLists)
	}
	for _, id := range a.ExcludeSegments {
		seg, err := s.Segment(ctx, id)
		if err != nil {
			return "", nil, err
		}
		w, sargs, err := s.compileAfter(ctx, seg.Conditions, at, after)
		if err != nil {
			return "", nil, fmt.Errorf("segment %q: %w", seg.Name, err)
		}
		where += " AND NOT (" + w + ")"
		args = append(args, sargs...)
	}
	return where, args, nil
}

// CampaignAudience returns the lists, segments and exclusions of a campaign.
func (s *Store) CampaignAudience(ctx context.Context, id int64) (Audience, error) {
	var a Audience
	db := s.conn(ctx)
	err := db.Raw("SELECT list_id FROM campaign_lists WHERE campaign_id = ? ORDER BY list_id", id).Scan(&a.Lists).Error
	if err == nil {
		err = db.Raw("SELECT segment_id FROM campaign_segments WHERE campaign_id = ? ORDER BY segment_id", id).Scan(&a.Segments).Error
	}
	if err == nil {
		err = db.Raw("SELECT list_id FROM campaign_exclusions WHERE campaign_id = ? AND list_id IS NOT NULL ORDER BY list_id", id).Scan(&a.ExcludeLists).Error
	}
	if err == nil {
		err = db.Raw("SELECT segment_id FROM campaign_exclusions WHERE campaign_id = ? AND segment_id IS NOT NULL ORDER BY segment_id", id).Scan(&a.ExcludeSegments).Error
	}
	if err != nil {
		return a, fmt.Errorf("models: audience of campaign %d: %w", id, err)
	}
	return a, nil
}

// ValidateAudience checks that the audience includes someone and that its
// lists and segments exist; it returns a field→message map.
func (s *Store) ValidateAudience(ctx context.Context, a Audience) (map[string]string, error) {
	errs := map[string]string{}
	if a.Empty() {
		errs["lists"] = "Choose at least one list or segment."
	}
	check := func(field, table string, ids []int64, what string) error {
		for _, id := range ids {
			var n int64
			if err := s.conn(ctx).Raw("SELECT COUNT(*) FROM "+table+" WHERE id = ?", id).Scan(&n).Error; err != nil {
				return err
			}
			if n == 0 {
				errs[field] = fmt.Sprintf("%s %d does not exist.", what, id)
			}
		}
		return nil
	}
	for _, c := range []struct {
		field, table string
		ids          []int64
		what         string
	}{{"lists", "lists", a.Lists, "List"}, {"segments", "segments", a.Segments, "Segment"},
		{"exclude_lists", "lists", a.ExcludeLists, "List"}, {"exclude_segments", "segments", a.ExcludeSegments, "Segment"}} {
		if err := check(c.field, c.table, c.ids, c.what); err != nil {
			return nil, fmt.Errorf("models: validate audience: %w", err)
		}
	}
	for _, id := range a.Segments {
		if slices.Contains(a.ExcludeSegments, id) {
			errs["exclude_segments"] = "A segment cannot be both included and excluded."
		}
	}
	for _, id := range a.Lists {
		if slices.Contains(a.ExcludeLists, id) {
			errs["exclude_lists"] = "A list cannot be both included and excluded."
		}
	}
	return errs, nil
}

// SetCampaignAudience replaces a draft or scheduled campaign's lists,
// segments and exclusions.
func (s *Store) SetCampaignAudience(ctx context.Context, id int64, a Audience) error {
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var st []string
		if err := tx.Raw("SELECT status FROM campaigns WHERE id = ?", id).Scan(&st).Error; err != nil {
			return err
		}
		if len(st) == 0 {
			return ErrNotFound
		}
		if st[0] != CampaignDraft && st[0] != CampaignScheduled {
			return &CampaignStateError{id, st[0], "change its audience"}
		}
		if err := setCampaignLists(tx, id, a.Lists); err != nil {
			return err
		}
		for _, q := range []string{"DELETE FROM campaign_segments WHERE campaign_id = ?", "DELETE FROM campaign_exclusions WHERE campaign_id = ?"} {
			if err := tx.Exec(q, id).Error; err != nil {
				return err
			}
		}
		for _, sg := range a.Segments {
			if err := tx.Exec("INSERT INTO campaign_segments (campaign_id, segment_id) VALUES (?, ?) ON CONFLICT DO NOTHING", id, sg).Error; err != nil {
				return err
			}
		}
		for _, l := range a.ExcludeLists {
			if err := tx.Exec("INSERT INTO campaign_exclusions (campaign_id, list_id) VALUES (?, ?) ON CONFLICT DO NOTHING", id, l).Error; err != nil {
				return err
			}
		}
		for _, sg := range a.ExcludeSegments {
			if err := tx.Exec("INSERT INTO campaign_exclusions (campaign_id, segment_id) VALUES (?, ?) ON CONFLICT DO NOTHING", id, sg).Error; err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("models: audience of campaign %d: %w", id, err)
	}
	return nil
}

// CountAudience counts the people a campaign to a would be sent to right
// now: each once, by the rule materialisation applies (audiencePredicate),
// minus suppressed addresses and domains. (Suppressions of erased people
// keep only a hash, but an erased person is no active subscriber, so they
// are never counted either way.)
func (s *Store) CountAudience(ctx context.Context, a Audience) (int64, error) {
	if a.Empty() {
		return 0, nil
	}
	where, args, err := s.audiencePredicate(ctx, a, now(), 0)
	if err != nil {
		return 0, fmt.Errorf("models: count recipients: %w", err)
	}
	from := " FROM subscribers s WHERE " + where
	db := s.conn(ctx)
	var total int64
	if err := db.Raw("SELECT COUNT(*)"+from, args...).Scan(&total).Error; err != nil {
		return 0, fmt.Errorf("models: count recipients: %w", err)
	}
	if total == 0 {
		return 0, nil
	}
	var supp []struct{ Kind, Value string }
	if err := db.Raw("SELECT kind, lower(value) AS value FROM suppressions WHERE value <> ''").Scan(&supp).Error; err != nil {
		return 0, fmt.Errorf("models: count recipients: %w", err)
	}
	var addrs, domains []string
	for _, x := range supp {
		if x.Kind == "domain" {
			domains = append(domains, strings.TrimPrefix(x.Value, "@"))
		} else {
			addrs = append(addrs, x.Value)
		}
	}
	hit := map[int64]bool{}
	for _, q := range []struct {
		expr   string
		values []string
	}{{"lower(s.email)", addrs}, {s.sqlDialect().emailDomain("s.email"), domains}} {
		for v := q.values; len(v) > 0; {
			n := min(len(v), 500)
			var ids []int64
			if err := db.Raw("SELECT s.id"+from+" AND "+q.expr+" IN ?", append(slices.Clone(args), v[:n])...).Scan(&ids).Error; err != nil {
				return 0, fmt.Errorf("models: count recipients: %w", err)
			}
			for _, id := range ids {
				hit[id] = true
			}
			v = v[n:]
		}
	}
	return total - int64(len(hit)), nil
}

// CountCampaignAudience is CountAudience of a campaign's audience.
func (s *Store) CountCampaignAudience(ctx context.Context, id int64) (int64, error) {
	a, err := s.CampaignAudience(ctx, id)
	if err != nil {
		return 0, err
	}
	return s.CountAudience(ctx, a)
}
