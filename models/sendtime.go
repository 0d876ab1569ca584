package models

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"gorm.io/gorm"
)

// SendTime is a campaign's "deliver at HH:MM in each subscriber's time
// zone" option. The zero value sends every delivery as soon as the
// campaign runs.
type SendTime struct {
	// LocalSendAt is the local wall-clock time "HH:MM" at which each
	// recipient's delivery is released; "" releases them at once.
	LocalSendAt string `gorm:"column:local_send_at"`
	// TZAttribute names the subscriber attribute holding an IANA zone
	// ("Europe/Paris"); "" uses TZDefault for everyone.
	TZAttribute string `gorm:"column:tz_attribute"`
	// TZDefault is the zone of recipients without a (valid) zone; ""
	// is UTC.
	TZDefault string `gorm:"column:tz_default"`
	// TZInvalid counts the recipients whose attribute held something that
	// is not a zone; they were sent at TZDefault's hour. Kept by
	// materialisation.
	TZInvalid int64 `gorm:"column:tz_invalid;->"`
}

// ByZone reports whether the campaign is released by local time.
func (t SendTime) ByZone() bool { return t.LocalSendAt != "" }

// Validate returns a field→message map for the option, empty when valid.
func (t *SendTime) Validate() map[string]string {
	errs := map[string]string{}
	t.LocalSendAt = strings.TrimSpace(t.LocalSendAt)
	t.TZAttribute = strings.TrimSpace(t.TZAttribute)
	t.TZDefault = strings.TrimSpace(t.TZDefault)
	if t.LocalSendAt == "" {
		return errs
	}
	if _, _, ok := parseHHMM(t.LocalSendAt); !ok {
		errs["local_send_at"] = "Give the local time as HH:MM on a 24-hour clock, for example 09:00."
	}
	if t.TZDefault != "" {
		if _, err := loadZone(t.TZDefault); err != nil {
			errs["tz_default"] = fmt.Sprintf("%q is not a time zone Herald knows. Use an IANA name such as Europe/Paris or America/New_York.", t.TZDefault)
		}
	}
	if len(t.TZAttribute) > 100 {
		errs["tz_attribute"] = "Keep the attribute name under 100 characters."
	}
	return errs
}

func parseHHMM(s string) (h, m int, ok bool) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		return 0, 0, false
	}
	return t.Hour(), t.Minute(), true
}

// loadZone loads an IANA zone; "Local" is refused, since it names the
// server's zone, not the subscriber's.
func loadZone(name string) (*time.Location, error) {
	if name == "" || name == "Local" || strings.EqualFold(name, "local") {
		return nil, fmt.Errorf("not a zone: %q", name)
	}
	return time.LoadLocation(name)
}

// zoneColumn is the SQL expression of the zone attribute attr of
// subscriber s ("" when attr is ""), with its arguments.
func zoneColumn(d dialectSQL, attr string) (string, []any) {
	if attr == "" {
		return "''", nil
	}
	return "COALESCE(" + d.attrText("s.attributes") + ", '')", []any{attr}
}

// zoneOrDefault is the zone an attribute value names; def when it is
// empty or names no zone (ok false: it held something else).
func zoneOrDefault(v string, def *time.Location) (loc *time.Location, ok bool) {
	z := strings.TrimSpace(v)
	if z == "" {
		return def, true
	}
	if l, err := loadZone(z); err == nil {
		return l, true
	}
	return def, false
}

// defaultZone is the zone named name, UTC when it is "" or no zone.
func defaultZone(name string) *time.Location {
	if name != "" {
		if l, err := loadZone(name); err == nil {
			return l
		}
	}
	return time.UTC
}

// NextLocalTime is when the wall clock of loc next reads hh:mm, from now:
// within the current minute counts as now (the result is then up to a
// minute in the past, which releases at once); a time already passed today
// is tomorrow's.
func NextLocalTime(now time.Time, hh, mm int, loc *time.Location) time.Time {
	local := now.In(loc)
	at := time.Date(local.Year(), local.Month(), local.Day(), hh, mm, 0, 0, loc)
	if at.Before(now.Truncate(time.Minute)) {
		// Date normalises a wall time that a DST jump skips.
		at = time.Date(local.Year(), local.Month(), local.Day()+1, hh, mm, 0, 0, loc)
	}
	return at
}

// ZoneRelease is one group of recipients sharing a release time.
type ZoneRelease struct {
	At    time.Time
	Zones []string // the attribute values released at At ("" the default)
}

// releasePlan groups zone values (attribute values as stored) by release
// time at now; invalid values join the default zone and are returned in
// invalid.
func (t SendTime) releasePlan(now time.Time, values []string) (plan []ZoneRelease, invalid map[string]bool, err error) {
	hh, mm, ok := parseHHMM(t.LocalSendAt)
	if !ok {
		return nil, nil, fmt.Errorf("local send time %q is not HH:MM", t.LocalSendAt)
	}
	def := time.UTC
	if t.TZDefault != "" {
		if def, err = loadZone(t.TZDefault); err != nil {
			return nil, nil, err
		}
	}
	byAt := map[time.Time][]string{}
	invalid = map[string]bool{}
	for _, v := range values {
		loc, ok := zoneOrDefault(v, def)
		if !ok {
			invalid[v] = true
		}
		at := dbTime(NextLocalTime(now, hh, mm, loc))
		byAt[at] = append(byAt[at], v)
	}
	for at, zs := range byAt {
		sort.Strings(zs)
		plan = append(plan, ZoneRelease{At: at, Zones: zs})
	}
	sort.Slice(plan, func(i, j int) bool { return plan[i].At.Before(plan[j].At) })
	return plan, invalid, nil
}

// releaseByZone sets the release time (next_attempt_at) of the queued
// deliveries of campaign id for subscribers in (lo, hi] to the next hh:mm
// in each one's zone, at now. Zones are few: their values are read
// grouped, each release time computed once in Go, and the rows updated
// per release time, set-based. It returns how many rows had an invalid
// zone.
func (w deliveryWriter) releaseByZone(tx *gorm.DB, id, lo, hi int64, st SendTime, now time.Time) (int64, error) {
	zone, keyArg := zoneColumn(w.sql, st.TZAttribute)
	var groups []struct {
		Zone string
		N    int64
	}
	if err := tx.Raw(`SELECT `+zone+` AS zone, COUNT(*) AS n FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id
		WHERE d.campaign_id = ? AND d.subscriber_id > ? AND d.subscriber_id <= ? AND d.status = 'queued'
		GROUP BY 1`, append(keyArg, id, lo, hi)...).Scan(&groups).Error; err != nil {
		return 0, err
	}
	if len(groups) == 0 {
		return 0, nil
	}
	values := make([]string, len(groups))
	for i, g := range groups {
		values[i] = g.Zone
	}
	plan, invalid, err := st.releasePlan(now, values)
	if err != nil {
		return 0, err
	}
	var bad int64
	for _, g := range groups {
		if invalid[g.Zone] {
			bad += g.N
		}
	}
	for i, p := range plan {
		q := `UPDATE deliveries SET next_attempt_at = ? WHERE campaign_id = ? AND subscriber_id > ? AND subscriber_id <= ? AND status = 'queued'`
		args := []any{p.At, id, lo, hi}
		if len(plan) > 1 && i > 0 {
			// The first release covers the rest: every later one names its
			// zones, so the first needs no list (rows not named get it).
			q += ` AND subscriber_id IN (SELECT s.id FROM subscribers s WHERE s.id > ? AND s.id <= ? AND ` + zone + ` IN ?)`
			args = append(append(append(args, lo, hi), keyArg...), p.Zones)
		}
		if err := tx.Exec(q, args...).Error; err != nil {
			return 0, err
		}
	}
	return bad, nil
}

// ZoneWait is what a campaign released by local time is waiting for.
type ZoneWait struct {
	// Waiting is the number of queued deliveries whose release time is
	// after now.
	Waiting int64
	// Releases is the number of distinct release times still ahead (one
	// per group of zones sharing an offset).
	Releases int64
	// Next is the earliest release ahead (nil when none).
	Next *time.Time
}

// CampaignZoneWait counts the deliveries of a campaign held for their
// local hour at now.
func (s *Store) CampaignZoneWait(ctx context.Context, id int64, now time.Time) (*ZoneWait, error) {
	var rows []struct {
		Waiting, Releases int64
	}
	t := dbTime(now)
	err := s.conn(ctx).Raw(`SELECT COUNT(*) AS waiting, COUNT(DISTINCT next_attempt_at) AS releases FROM deliveries
		WHERE campaign_id = ? AND status = 'queued' AND next_attempt_at > ?`, id, t).Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("models: zone wait of campaign %d: %w", id, err)
	}
	w := &ZoneWait{}
	if len(rows) == 1 {
		w.Waiting, w.Releases = rows[0].Waiting, rows[0].Releases
	}
	if w.Waiting > 0 {
		var next []time.Time
		if err := s.conn(ctx).Raw(`SELECT next_attempt_at FROM deliveries WHERE campaign_id = ? AND status = 'queued' AND next_attempt_at > ?
			ORDER BY next_attempt_at LIMIT 1`, id, t).Scan(&next).Error; err != nil {
			return nil, fmt.Errorf("models: zone wait of campaign %d: %w", id, err)
		}
		if len(next) == 1 {
			w.Next = &next[0]
		}
	}
	return w, nil
}

// releaseBatch applies the campaign's SendTime to the rows just
// materialised for (lo, hi] at t: nothing when it sends at once.
func (w deliveryWriter) releaseBatch(tx *gorm.DB, id, lo, hi int64, t time.Time) error {
	var st []SendTime
	if err := tx.Raw("SELECT local_send_at, tz_attribute, tz_default FROM campaigns WHERE id = ?", id).Scan(&st).Error; err != nil {
		return err
	}
	if len(st) == 0 || !st[0].ByZone() {
		return nil
	}
	bad, err := w.releaseByZone(tx, id, lo, hi, st[0], t)
	if err != nil || bad == 0 {
		return err
	}
	return tx.Exec("UPDATE campaigns SET tz_invalid = tz_invalid + ? WHERE id = ?", bad, id).Error
}

// SetCampaignSendTime saves a draft or scheduled campaign's send-time
// option; call Validate first.
func (s *Store) SetCampaignSendTime(ctx context.Context, id int64, st SendTime) error {
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var cur []string
		if err := tx.Raw("SELECT status FROM campaigns WHERE id = ?", id).Scan(&cur).Error; err != nil {
			return err
		}
		if len(cur) == 0 {
			return ErrNotFound
		}
		if cur[0] != CampaignDraft && cur[0] != CampaignScheduled {
			return &CampaignStateError{id, cur[0], "be edited"}
		}
		return tx.Exec("UPDATE campaigns SET local_send_at = ?, tz_attribute = ?, tz_default = ?, updated_at = ? WHERE id = ?",
			st.LocalSendAt, st.TZAttribute, st.TZDefault, dbNow(), id).Error
	})
	if err != nil {
		return fmt.Errorf("models: send time of campaign %d: %w", id, err)
	}
	return nil
}
