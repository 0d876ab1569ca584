package models

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// anniversaryCatchUp is how far back the anniversary trigger looks at
// most: after an outage of up to two days the missed anniversaries still
// go out; older ones are not sent late.
const anniversaryCatchUp = 48 * time.Hour

// enterByAnniversary runs the anniversary trigger at t, set-based. Its
// window is (last look, t], at most anniversaryCatchUp
// long and never before activation. Zones are few: their values are
// read once (only when the window holds a quarter hour, the only moments
// at which any zone's clock can read the trigger's hour), and for each
// zone Go works out which calendar days' hour fell in the window; the
// people whose date attribute has the anniversary those days name then
// enter by one INSERT … SELECT per group of days, their run's occurrence
// the anniversary's year. A run is unique per automation, subscriber and
// occurrence, so overlapping windows, repeats and a second node add
// nothing.
func (s *Store) enterByAnniversary(tx *gorm.DB, a *Automation, t time.Time) (int64, error) {
	if a.ActivatedAt == nil {
		return 0, nil
	}
	hh, mm, ok := parseHHMM(a.TriggerTime)
	if !ok {
		hh, mm, _ = parseHHMM(DefaultTriggerTime)
	}
	// The window follows the engine's clock, not rows' times: it needs no
	// lookback (a repeat would only find the runs already there).
	since := dbTime(*a.ActivatedAt)
	if a.EnteredThrough != nil && a.EnteredThrough.After(since) {
		since = dbTime(*a.EnteredThrough)
	}
	if c := t.Add(-anniversaryCatchUp); c.After(since) {
		since = c
	}
	if !t.After(since) {
		return 0, nil
	}
	if err := tx.Exec("UPDATE automations SET entered_through = ? WHERE id = ?", t, a.ID).Error; err != nil {
		return 0, err
	}
	if !quarterIn(since, t, mm) {
		return 0, nil
	}
	d := s.sqlDialect()
	zone, zoneArgs := zoneColumn(d, a.TZAttribute)
	date := d.attrText("s.attributes")
	var zones []string
	if err := tx.Raw(`SELECT DISTINCT `+zone+` FROM subscribers s WHERE s.status = 'active' AND `+date+` IS NOT NULL`,
		append(append([]any{}, zoneArgs...), a.TriggerAttribute)...).Scan(&zones).Error; err != nil {
		return 0, err
	}
	type group struct {
		occurrence int
		days       []string // "MM-DD"
	}
	byGroup := map[string]*group{}
	byGroupZones := map[string][]string{}
	def := defaultZone(a.TZDefault)
	for _, z := range zones {
		loc, _ := zoneOrDefault(z, def)
		for _, g := range anniversariesDue(since, t, hh, mm, a.TriggerDays, loc) {
			key := fmt.Sprint(g.occurrence, g.days)
			if byGroup[key] == nil {
				byGroup[key] = &group{g.occurrence, g.days}
			}
			byGroupZones[key] = append(byGroupZones[key], z)
		}
	}
	keys := make([]string, 0, len(byGroup))
	for k := range byGroup {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	onList, listArgs := "", []any(nil)
	if a.ListID != nil {
		onList, listArgs = " AND sp.list_id = ?", []any{*a.ListID}
	}
	var n int64
	for _, k := range keys {
		g := byGroup[k]
		args := []any{a.ID, a.Version, t, false, t, t, g.occurrence}
		args = append(append(args, zoneArgs...), byGroupZones[k])
		args = append(args, a.TriggerAttribute, a.TriggerAttribute, a.TriggerAttribute, g.days)
		args = append(args, listArgs...)
		res := tx.Exec(`INSERT INTO automation_runs (automation_id, subscriber_id, version, step, state, due_at, test, entered_at, updated_at, occurrence)
			SELECT ?, s.id, ?, 1, 'active', ?, ?, ?, ?, ? FROM subscribers s
			WHERE s.status = 'active' AND `+zone+` IN ? AND length(`+date+`) IN (5, 10) AND substr(`+date+`, length(`+date+`) - 4) IN ?
			AND EXISTS (SELECT 1 FROM subscriptions sp JOIN lists l ON l.id = sp.list_id WHERE sp.subscriber_id = s.id AND `+eligibleSub+onList+`)
			ON CONFLICT (automation_id, subscriber_id, occurrence) DO NOTHING`, args...)
		if res.Error != nil {
			return n, res.Error
		}
		n += res.RowsAffected
	}
	return n, nil
}

// quarterIn reports whether (since, t] holds a whole minute whose minute
// of the quarter hour is mm's: every zone's offset is a whole number of
// quarter hours, so no clock reads hh:mm at any other moment.
func quarterIn(since, t time.Time, mm int) bool {
	if t.Sub(since) >= 15*time.Minute {
		return true
	}
	for x := since.Truncate(time.Minute); !x.After(t); x = x.Add(time.Minute) {
		if x.After(since) && x.UTC().Minute()%15 == mm%15 {
			return true
		}
	}
	return false
}

// anniversary is one occurrence of the trigger: the anniversary's year
// and the dates ("MM-DD") that have it.
type anniversary struct {
	occurrence int
	days       []string
}

// anniversariesDue returns the anniversaries whose moment, daysBefore
// days before them at hh:mm on loc's clock, lies in (since, t]. A
// 28 February in a year without a 29th is also the 29th's.
func anniversariesDue(since, t time.Time, hh, mm, daysBefore int, loc *time.Location) []anniversary {
	var out []anniversary
	from, to := since.In(loc), t.In(loc)
	for day := time.Date(from.Year(), from.Month(), from.Day(), 12, 0, 0, 0, time.UTC); ; day = day.AddDate(0, 0, 1) {
		if day.After(time.Date(to.Year(), to.Month(), to.Day(), 12, 0, 0, 0, time.UTC)) {
			break
		}
		at := time.Date(day.Year(), day.Month(), day.Day(), hh, mm, 0, 0, loc)
		if !at.After(since) || at.After(t) {
			continue
		}
		ann := day.AddDate(0, 0, daysBefore)
		days := []string{ann.Format("01-02")}
		if ann.Month() == time.February && ann.Day() == 28 && !isLeap(ann.Year()) {
			days = append(days, "02-29")
		}
		out = append(out, anniversary{occurrence: ann.Year(), days: days})
	}
	return out
}

func isLeap(y int) bool { return y%4 == 0 && (y%100 != 0 || y%400 == 0) }

// occurrenceCampaign returns the campaign holding send step campaign id's
// deliveries for the runs of occurrence occ, creating it (a copy of the
// step's campaign: content, sender, lists) the first time. Its unique
// (occurrence_of, occurrence) makes a second node's creation a no-op.
func occurrenceCampaign(tx *gorm.DB, id int64, occ int) (int64, error) {
	find := func() (int64, error) {
		var ids []int64
		err := tx.Raw("SELECT id FROM campaigns WHERE occurrence_of = ? AND occurrence = ?", id, occ).Scan(&ids).Error
		if len(ids) == 0 {
			return 0, err
		}
		return ids[0], err
	}
	if got, err := find(); got != 0 || err != nil {
		return got, err
	}
	var c Campaign
	if err := tx.First(&c, id).Error; err != nil {
		return 0, err
	}
	w := dbNow()
	c.ID, c.OccurrenceOf, c.Occurrence = 0, &id, occ
	c.Name = fmt.Sprintf("%s, %d", strings.TrimSpace(c.Name), occ)
	c.Counters, c.StartedAt, c.MaterializedAt, c.CreatedAt, c.UpdatedAt = Counters{}, &w, &w, w, w
	if err := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&c).Error; err != nil {
		return 0, err
	}
	got, err := find()
	if err != nil || got == 0 {
		return 0, fmt.Errorf("campaign of occurrence %d of campaign %d: %v", occ, id, err)
	}
	if c.ID == got {
		if err := tx.Exec(`INSERT INTO campaign_lists (campaign_id, list_id) SELECT ?, list_id FROM campaign_lists WHERE campaign_id = ?
			ON CONFLICT DO NOTHING`, got, id).Error; err != nil {
			return 0, err
		}
	}
	return got, nil
}
