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

// attribution is the list a delivery to s is attributed to (the list its
// unsubscribe link leaves): the first of lists s is eligible on, else the
// first list s is eligible on at all; with its parameters.
func attribution(lists []int64) (string, []any) {
	first := func(in bool) string {
		q := "(SELECT MIN(sp.list_id) FROM subscriptions sp JOIN lists l ON l.id = sp.list_id WHERE sp.subscriber_id = s.id"
		if in {
			q += " AND sp.list_id IN ?"
		}
		return q + " AND " + eligibleSub + ")"
	}
	if len(lists) == 0 {
		return first(false), nil
	}
	return "COALESCE(" + first(true) + ", " + first(false) + ")", []any{lists}
}

// eligibleStatuses are the statuses of an eligible subscription on a
// list with the opt-in.
func eligibleStatuses(optin string) []string {
	if optin == OptinSingle {
		return []string{SubConfirmed, SubUnconfirmed}
	}
	return []string{SubConfirmed}
}

// liveStatuses are the statuses of a subscription that is not ended.
var liveStatuses = []string{SubUnconfirmed, SubConfirmed}

// audienceRule is THE audience rule, which the live count (CountAudience)
// and materialisation (MaterializeCampaign) both apply: an active
// subscriber who is eligible on one of the lists, or who matches one of
// the segments and is eligible on some list; and who is neither a live
// member of an excluded list nor matched by an excluded segment.
// Suppressed addresses are taken out afterwards by both.
type audienceRule struct {
	// where is the rule as a condition over subscribers s, with its
	// parameters.
	where string
	args  []any
	// driver, when not 0, is a list on which everyone the rule admits
	// has a live subscription (the audience's list, or one every
	// included segment requires: Conditions.requiredLists). where is
	// then a condition over s beside its subscription sp on the driver,
	// whose status is one of driverStatuses, and materialisation walks
	// the driver's members through the lists' index, as for a list,
	// rather than every subscriber.
	driver         int64
	driverStatuses []string
	// Driven but with no driver, where is evaluated beside each eligible
	// subscription sp of s (eligible: its condition, with its parameters,
	// written out for the lists there are, so that no row looks its list
	// up): a person passes when one of their rows does. When grouped,
	// attr aggregates their rows; otherwise the person's first passing
	// row, in the order of (subscriber_id, list_id), is the attributed
	// one, and the rows after it are left out.
	eligible     string
	eligibleArgs []any
	grouped      bool
	// attr is the list each person's delivery is attributed to
	// (attribution), an expression over s, and sp when driven.
	attr     string
	attrArgs []any
}

// audiencePredicate is the audience rule over subscribers s, undriven
// (audienceRule).
func (s *Store) audiencePredicate(ctx context.Context, a Audience, at time.Time, after int64) (string, []any, error) {
	r, err := s.audienceRule(ctx, a, at, after, 0, false)
	return r.where, r.args, err
}

// audienceRule compiles the rule of audience a at time at.
//
// after and upto limit the rule to subscribers above after, and up to
// upto when it is not 0 (a materialisation batch), which lets segment
// conditions cut their sets; 0 and 0 is everyone. driven lets the rule
// be evaluated beside a driver list's subscription when the audience has
// one.
//
// Eligibility on some list is a factor of the rule (eligible on one of
// the lists implies eligible on some list), so it is written first:
// active AND eligible somewhere AND (on the lists OR in a segment).
func (s *Store) audienceRule(ctx context.Context, a Audience, at time.Time, after, upto int64, driven bool) (audienceRule, error) {
	var r audienceRule
	segs := make([]*Segment, len(a.Segments))
	for i, id := range a.Segments {
		seg, err := s.Segment(ctx, id)
		if err != nil {
			return r, err
		}
		segs[i] = seg
	}
	var elig []string
	if driven {
		if r.driver = audienceDriver(a, segs); r.driver != 0 {
			var optin []string
			if err := s.conn(ctx).Raw("SELECT optin FROM lists WHERE id = ?", r.driver).Scan(&optin).Error; err != nil {
				return r, err
			}
			if len(optin) == 0 {
				r.driver = 0 // deleted meanwhile: the undriven rule says so
			} else {
				elig = eligibleStatuses(optin[0])
			}
		}
	}
	var (
		where = "s.status = 'active'"
		args  []any
		incl  []string
		iargs []any
	)
	switch {
	case r.driver != 0 && (len(segs) == 0 || len(elig) == len(liveStatuses)):
		// The audience is the list (its eligible members, walked), or
		// every live member of the list is eligible on it (single
		// opt-in): then the driver's sp is eligibility and attribution.
		r.driverStatuses, r.attr = elig, "sp.list_id"
		if len(a.Lists) > 0 && len(segs) > 0 {
			incl = append(incl, "1 = 1")
		}
	case r.driver != 0:
		// sp is live on the driver; eligible on it, it is the list.
		r.driverStatuses = liveStatuses
		where += " AND (sp.status IN ? OR " + eligibleOn(false) + ")"
		args = append(args, elig)
		if len(a.Lists) > 0 {
			incl = append(incl, "sp.status IN ?")
			iargs = append(iargs, elig)
		}
		fallback, fargs := attribution(nil)
		r.attr, r.attrArgs = "CASE WHEN sp.status IN ? THEN sp.list_id ELSE "+fallback+" END", append([]any{elig}, fargs...)
	case driven:
		// Beside each of the person's eligible subscriptions sp, grouped
		// per person: eligibility is the row's, and a person is in when
		// one of their rows passes.
		var single []int64
		if err := s.conn(ctx).Raw("SELECT id FROM lists WHERE optin = ?", OptinSingle).Scan(&single).Error; err != nil {
			return r, err
		}
		r.eligible = "sp.status = 'confirmed'"
		if len(single) > 0 {
			r.eligible = "(sp.status = 'confirmed' OR (sp.status = 'unconfirmed' AND sp.list_id IN ?))"
			r.eligibleArgs = []any{single}
		}
		if len(a.Lists) > 0 {
			incl = append(incl, "sp.list_id IN ?")
			iargs = append(iargs, a.Lists)
		}
		// The attributed list is the lowest passing one, except that
		// lists and segments together prefer the lists' rows: only then
		// is it not the first passing row, and the rows are grouped.
		r.attr = "sp.list_id"
		if r.grouped = len(a.Lists) > 0 && len(segs) > 0; r.grouped {
			r.attr, r.attrArgs = "COALESCE(MIN(CASE WHEN sp.list_id IN ? THEN sp.list_id END), MIN(sp.list_id))", []any{a.Lists}
		}
	default:
		if len(segs) > 0 {
			// Only a segment's people need the factor: the lists' term
			// already is eligibility on them.
			where += " AND " + eligibleOn(false)
		}
		if len(a.Lists) > 0 {
			incl = append(incl, eligibleOn(true))
			iargs = append(iargs, a.Lists)
		}
		r.attr, r.attrArgs = attribution(a.Lists)
	}
	for _, seg := range segs {
		w, sargs, err := s.compileDriven(ctx, seg.Conditions, at, after, upto, r.driver)
		if err != nil {
			return r, fmt.Errorf("segment %q: %w", seg.Name, err)
		}
		incl = append(incl, "("+w+")")
		iargs = append(iargs, sargs...)
	}
	switch {
	case len(incl) > 0:
		where += " AND (" + strings.Join(incl, " OR ") + ")"
		args = append(args, iargs...)
	case r.driver == 0 && a.Empty():
		where, args = "1 = 0", nil
	}
	if len(a.ExcludeLists) > 0 {
		where += " AND NOT EXISTS (SELECT 1 FROM subscriptions x WHERE x.subscriber_id = s.id AND x.list_id IN ? AND x.status IN ('unconfirmed', 'confirmed'))"
		args = append(args, a.ExcludeLists)
	}
	for _, id := range a.ExcludeSegments {
		seg, err := s.Segment(ctx, id)
		if err != nil {
			return r, err
		}
		// Undriven: its tests are negated.
		w, sargs, err := s.compileDriven(ctx, seg.Conditions, at, after, upto, 0)
		if err != nil {
			return r, fmt.Errorf("segment %q: %w", seg.Name, err)
		}
		where += " AND NOT (" + w + ")"
		args = append(args, sargs...)
	}
	r.where, r.args = where, args
	return r, nil
}

// audienceDriver returns a list on which everyone the audience includes
// has a live subscription (audienceRule.driver), or 0.
func audienceDriver(a Audience, segs []*Segment) int64 {
	if len(a.Lists) > 1 || a.Empty() {
		return 0
	}
	cand := slices.Clone(a.Lists)
	for i, seg := range segs {
		cand = combineRequired(cand, seg.Conditions.requiredLists(), "any", i == 0 && len(a.Lists) == 0)
	}
	if len(cand) == 0 {
		return 0
	}
	return cand[0]
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
