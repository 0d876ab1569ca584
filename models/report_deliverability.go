package models

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"time"
)

// Window is the span the deliverability report covers: the last Days UTC
// days, today included.
type Window struct {
	Days int
	From time.Time // midnight UTC opening the first day
	// FirstDelivery is the first delivery of the oldest campaign started in
	// the window, or an earlier one an automation's send step wrote in it.
	// Campaign deliveries are written when their campaign starts, so scans
	// of deliveries begin here instead of at the start of history; a
	// campaign started before the window and still retrying in it is left
	// out. A step's campaign starts with its automation and writes
	// deliveries whenever people reach the step, so its start says nothing
	// of its deliveries: its first delivery written in the window counts.
	FirstDelivery int64
}

// ReportWindow returns the window of the last days UTC days.
func (s *Store) ReportWindow(ctx context.Context, days int) (Window, error) {
	w := Window{Days: days, From: now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -(days - 1))}
	var first, step sql.NullInt64
	err := s.sql.QueryRowContext(ctx, s.rebind(`SELECT MIN(id) FROM deliveries WHERE campaign_id =
		(SELECT id FROM campaigns WHERE started_at >= ? AND automation_id IS NULL ORDER BY started_at, id LIMIT 1)`),
		dbTime(w.From)).Scan(&first)
	if err != nil {
		return w, fmt.Errorf("models: report window: %w", err)
	}
	if err := s.sql.QueryRowContext(ctx, s.rebind(`SELECT MIN(d.id) FROM campaigns c JOIN deliveries d ON d.campaign_id = c.id
		WHERE c.automation_id IS NOT NULL AND d.created_at >= ?`), dbTime(w.From)).Scan(&step); err != nil {
		return w, fmt.Errorf("models: report window: %w", err)
	}
	if step.Valid && (!first.Valid || step.Int64 < first.Int64) {
		first = step
	}
	if first.Valid {
		w.FirstDelivery = first.Int64
	} else if err := s.sql.QueryRowContext(ctx, "SELECT COALESCE(MAX(id), 0) + 1 FROM deliveries").Scan(&w.FirstDelivery); err != nil {
		return w, fmt.Errorf("models: report window: %w", err)
	}
	return w, nil
}

// BounceGroup is a number of bounces or complaints sharing a kind and
// category, and whether they were refusals during sending. Refusals
// recorded before those got a bounces row (migration 19) come grouped by
// reply code with an empty Category, for the caller to classify from
// Code, Status and Sample.
type BounceGroup struct {
	Kind     string // hard, soft or complaint
	Category string
	SMTP     bool   // rejected during the SMTP transaction
	Code     int    // SMTP reply code, old SMTP rejections only
	Status   string // enhanced status code
	Sample   string // one diagnostic text of the group
	N        int64
}

// CampaignBounceGroups returns a campaign's bounces and complaints by kind
// and category, and its SMTP rejections by reply code, largest first.
func (s *Store) CampaignBounceGroups(ctx context.Context, campaignID int64) ([]BounceGroup, error) {
	return s.bounceGroups(ctx, "b.campaign_id = ?", []any{campaignID}, "d.campaign_id = ?", []any{campaignID}, 0)
}

// WindowBounceGroups returns the bounces and complaints recorded in the
// window by kind and category, and the SMTP rejections of campaign
// deliveries last tried in it by reply code, largest first, at most limit
// of each.
func (s *Store) WindowBounceGroups(ctx context.Context, w Window, limit int) ([]BounceGroup, error) {
	return s.bounceGroups(ctx, "b.created_at >= ?", []any{dbTime(w.From)},
		"d.id >= ? AND d.last_attempt_at >= ? AND d.campaign_id IS NOT NULL", []any{w.FirstDelivery, dbTime(w.From)}, limit)
}

func (s *Store) bounceGroups(ctx context.Context, bounceCond string, bounceArgs []any, deliveryCond string, deliveryArgs []any, limit int) ([]BounceGroup, error) {
	wrap := func(err error) error { return fmt.Errorf("models: bounce groups: %w", err) }
	lim := ""
	if limit > 0 {
		lim = " LIMIT " + strconv.Itoa(limit)
	}
	var out []BounceGroup
	rows, err := s.sql.QueryContext(ctx, s.rebind(`SELECT b.kind, b.category, b.during_delivery, MIN(b.status), MIN(b.diagnostic), COUNT(*)
		FROM bounces b WHERE `+bounceCond+` GROUP BY b.kind, b.category, b.during_delivery
		ORDER BY COUNT(*) DESC, b.kind, b.category`+lim), bounceArgs...)
	if err != nil {
		return nil, wrap(err)
	}
	for rows.Next() {
		var g BounceGroup
		if err := rows.Scan(&g.Kind, &g.Category, &g.SMTP, &g.Status, &g.Sample, &g.N); err != nil {
			rows.Close()
			return nil, wrap(err)
		}
		out = append(out, g)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, wrap(err)
	}
	// Bounced deliveries without a hard or soft bounces row were refused
	// before refusals were recorded as bounces.
	rows, err = s.sql.QueryContext(ctx, s.rebind(`SELECT d.last_code, d.last_enhanced, MIN(d.last_text), COUNT(*)
		FROM deliveries d WHERE `+deliveryCond+` AND d.status = ?
		AND NOT EXISTS (SELECT 1 FROM bounces b WHERE b.delivery_id = d.id AND b.kind IN (?, ?))
		GROUP BY d.last_code, d.last_enhanced ORDER BY COUNT(*) DESC, d.last_code`+lim),
		append(append([]any{}, deliveryArgs...), DeliveryBounced, BounceHard, BounceSoft)...)
	if err != nil {
		return nil, wrap(err)
	}
	defer rows.Close()
	for rows.Next() {
		g := BounceGroup{Kind: BounceHard, SMTP: true}
		if err := rows.Scan(&g.Code, &g.Status, &g.Sample, &g.N); err != nil {
			return nil, wrap(err)
		}
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap(err)
	}
	return out, nil
}

// DiagnosticCount is how often one diagnostic text came back.
type DiagnosticCount struct {
	Status     string
	Diagnostic string
	N          int64
}

// TopDiagnostics returns the most frequent bounce and complaint
// diagnostics recorded since t, and SMTP rejection texts of deliveries
// last tried since t, most frequent first.
func (s *Store) TopDiagnostics(ctx context.Context, w Window, limit int) ([]DiagnosticCount, error) {
	wrap := func(err error) error { return fmt.Errorf("models: top diagnostics: %w", err) }
	rows, err := s.sql.QueryContext(ctx, s.rebind(`SELECT status, diagnostic, SUM(n) FROM (
		SELECT b.status AS status, b.diagnostic AS diagnostic, COUNT(*) AS n FROM bounces b
		WHERE b.created_at >= ? AND b.kind <> ? GROUP BY b.status, b.diagnostic
		UNION ALL
		SELECT d.last_enhanced, d.last_text, COUNT(*) FROM deliveries d
		WHERE d.id >= ? AND d.last_attempt_at >= ? AND d.campaign_id IS NOT NULL AND d.status = ?
		AND NOT EXISTS (SELECT 1 FROM bounces b WHERE b.delivery_id = d.id AND b.kind IN (?, ?))
		GROUP BY d.last_enhanced, d.last_text) u
		GROUP BY status, diagnostic ORDER BY SUM(n) DESC, status, diagnostic LIMIT ?`),
		dbTime(w.From), BounceComplaint, w.FirstDelivery, dbTime(w.From), DeliveryBounced, BounceHard, BounceSoft, limit)
	if err != nil {
		return nil, wrap(err)
	}
	defer rows.Close()
	var out []DiagnosticCount
	for rows.Next() {
		var d DiagnosticCount
		if err := rows.Scan(&d.Status, &d.Diagnostic, &d.N); err != nil {
			return nil, wrap(err)
		}
		out = append(out, d)
	}
	return out, wrap0(rows.Err(), wrap)
}

func wrap0(err error, wrap func(error) error) error {
	if err != nil {
		return wrap(err)
	}
	return nil
}

// truncDay is an SQL expression giving a timestamp's UTC day as
// "YYYY-MM-DD".
func (s *Store) truncDay(col string) string {
	if s.dialect == Postgres {
		return "to_char(" + col + " AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
	}
	return "strftime('%Y-%m-%d', " + col + ")"
}

// DayRates are one day's attempted deliveries, hard bounces and complaints.
type DayRates struct {
	Day        time.Time
	Attempted  int64 // deliveries last tried that day and now sent, bounced or failed
	Bounced    int64
	Complaints int64 // complaints received that day
}

// BouncePct is the day's hard bounces per attempted delivery.
func (d DayRates) BouncePct() float64 { return Percent(d.Bounced, d.Attempted) }

// ComplaintPct is the day's complaints per attempted delivery.
func (d DayRates) ComplaintPct() float64 { return Percent(d.Complaints, d.Attempted) }

// DailyRates returns campaign deliveries' bounce and complaint figures for
// each UTC day of the last days days, today included, oldest first.
func (s *Store) DailyRates(ctx context.Context, w Window) ([]DayRates, error) {
	wrap := func(err error) error { return fmt.Errorf("models: daily rates: %w", err) }
	days, from := w.Days, w.From
	out := make([]DayRates, days)
	for i := range out {
		out[i].Day = from.AddDate(0, 0, i)
	}
	at := func(day string) *DayRates {
		t, err := time.Parse("2006-01-02", day)
		if err != nil {
			return nil
		}
		i := int(t.Sub(from) / (24 * time.Hour))
		if i < 0 || i >= days {
			return nil
		}
		return &out[i]
	}
	rows, err := s.sql.QueryContext(ctx, s.rebind(`SELECT `+s.truncDay("last_attempt_at")+` AS d, COUNT(*),
		SUM(CASE WHEN status = ? THEN 1 ELSE 0 END) FROM deliveries
		WHERE id >= ? AND last_attempt_at >= ? AND campaign_id IS NOT NULL AND status IN (?, ?, ?) GROUP BY d`),
		DeliveryBounced, w.FirstDelivery, dbTime(from), DeliverySent, DeliveryBounced, DeliveryFailed)
	if err != nil {
		return nil, wrap(err)
	}
	for rows.Next() {
		var day string
		var n, b int64
		if err := rows.Scan(&day, &n, &b); err != nil {
			rows.Close()
			return nil, wrap(err)
		}
		if d := at(day); d != nil {
			d.Attempted, d.Bounced = n, b
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, wrap(err)
	}
	rows, err = s.sql.QueryContext(ctx, s.rebind(`SELECT `+s.truncDay("created_at")+` AS d, COUNT(*) FROM bounces
		WHERE created_at >= ? AND kind = ? GROUP BY d`), dbTime(from), BounceComplaint)
	if err != nil {
		return nil, wrap(err)
	}
	defer rows.Close()
	for rows.Next() {
		var day string
		var n int64
		if err := rows.Scan(&day, &n); err != nil {
			return nil, wrap(err)
		}
		if d := at(day); d != nil {
			d.Complaints = n
		}
	}
	return out, wrap0(rows.Err(), wrap)
}

// DayCount is a count on one UTC day.
type DayCount struct {
	Day time.Time
	N   int64
}

// SubscriptionGrowth returns the number of live subscriptions (confirmed or
// unconfirmed, over all lists) at the end of each of the last days days,
// oldest first: today's count from the list counters, earlier days by
// taking back each day's new subscriptions and adding back its
// unsubscriptions.
func (s *Store) SubscriptionGrowth(ctx context.Context, days int) ([]DayCount, error) {
	wrap := func(err error) error { return fmt.Errorf("models: subscription growth: %w", err) }
	today := now().UTC().Truncate(24 * time.Hour)
	from := today.AddDate(0, 0, -(days - 1))
	var live int64
	if err := s.sql.QueryRowContext(ctx, "SELECT COALESCE(SUM(confirmed + unconfirmed), 0) FROM list_stats").Scan(&live); err != nil {
		return nil, wrap(err)
	}
	delta := make([]int64, days) // net change on each day
	add := func(q string, sign int64) error {
		rows, err := s.sql.QueryContext(ctx, s.rebind(q), dbTime(from))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var day string
			var n int64
			if err := rows.Scan(&day, &n); err != nil {
				return err
			}
			t, err := time.Parse("2006-01-02", day)
			if err != nil {
				return err
			}
			if i := int(t.Sub(from) / (24 * time.Hour)); i >= 0 && i < days {
				delta[i] += sign * n
			}
		}
		return rows.Err()
	}
	// A subscription created and left within the window counts once each
	// way; one still live counts as a join.
	if err := add(`SELECT `+s.truncDay("created_at")+` AS d, COUNT(*) FROM subscriptions WHERE created_at >= ? GROUP BY d`, 1); err != nil {
		return nil, wrap(err)
	}
	if err := add(`SELECT `+s.truncDay("updated_at")+` AS d, COUNT(*) FROM subscriptions
		WHERE updated_at >= ? AND status = 'unsubscribed' GROUP BY d`, -1); err != nil {
		return nil, wrap(err)
	}
	out := make([]DayCount, days)
	n := live
	for i := days - 1; i >= 0; i-- {
		out[i] = DayCount{Day: from.AddDate(0, 0, i), N: n}
		n -= delta[i]
	}
	return out, nil
}
