package models

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// Kinds of activity the feed reports: the events table's kinds, and the
// bounces table's rows as bounce (hard or soft) and complaint.
const (
	ActivityBounce    = "bounce"
	ActivityComplaint = "complaint"
)

// ActivityKinds lists every kind Activity can report.
var ActivityKinds = []string{EventOpen, EventClick, EventUnsubscribe, ActivityBounce, ActivityComplaint}

// ActivitySettle is how old a row must be before the feed returns it. Ids
// are handed out when a row is inserted but seen only when its transaction
// commits, and on PostgreSQL several writers (trackers on several nodes,
// bounce processing) commit concurrently, so a row may become visible
// after one with a higher id. Holding back the last few seconds lets
// those short transactions commit first, so a reader's cursor does not
// pass a row it has not seen yet.
const ActivitySettle = 3 * time.Second

// ActivityCursor is where a reader of the feed stopped: the last events row
// and the last bounces row it has seen. Both tables' ids only grow, so a
// reader that keeps the cursor it was given misses nothing and sees
// nothing twice.
type ActivityCursor struct{ Event, Bounce int64 }

// ActivityQuery selects a page of the feed.
type ActivityQuery struct {
	After      ActivityCursor
	Kinds      []string // of ActivityKinds; empty for all
	CampaignID int64    // 0 for every campaign
	Limit      int      // page size, 1 to 1000; default 100
}

// Activity is one item of the feed: an open, click or unsubscribe, or a
// bounce or complaint.
type Activity struct {
	Kind         string // one of ActivityKinds
	EventID      int64  // the events row (opens, clicks, unsubscribes)
	BounceID     int64  // the bounces row (bounces, complaints)
	CampaignID   int64
	SubscriberID int64
	DeliveryID   int64
	Email        string // the recipient, when still known
	URL          string // the link clicked
	Machine      bool   // caused by a proxy or scanner, not a person
	BounceKind   string // hard or soft, bounces only
	Category     string // the classifier's category or the ARF feedback type
	Status       string // the enhanced status code
	Diagnostic   string
	CreatedAt    time.Time
}

// BadKindError names a kind Activity does not know.
type BadKindError struct{ Kind string }

func (e *BadKindError) Error() string {
	return fmt.Sprintf("%q is not a kind of activity; use %v", e.Kind, ActivityKinds)
}

// Activity returns the events and bounces recorded after q.After and at
// least ActivitySettle ago, oldest first, at most q.Limit of them, and the cursor to ask with next (q.After
// when there was nothing new). The two tables are merged by time; each
// table's rows keep their id order, so what the cursor passes over was
// returned.
func (s *Store) Activity(ctx context.Context, q ActivityQuery) ([]Activity, ActivityCursor, error) {
	if q.Limit <= 0 || q.Limit > 1000 {
		q.Limit = 100
	}
	want := func(k string) bool { return len(q.Kinds) == 0 || slices.Contains(q.Kinds, k) }
	for _, k := range q.Kinds {
		if !slices.Contains(ActivityKinds, k) {
			return nil, q.After, &BadKindError{k}
		}
	}
	wrap := func(err error) error { return fmt.Errorf("models: activity: %w", err) }
	db := s.conn(ctx)
	settled := dbTime(now().Add(-ActivitySettle))
	// where selects table t's settled rows of kinds after the cursor id.
	where := func(t string, after int64, kinds []string) (string, []any) {
		cond, args := t+".id > ? AND "+t+".kind IN ? AND "+t+".created_at < ?", []any{after, kinds, settled}
		if q.CampaignID != 0 {
			cond, args = cond+" AND "+t+".campaign_id = ?", append(args, q.CampaignID)
		}
		return cond, append(args, q.Limit)
	}
	var events, bounces []Activity
	var kinds []string
	for _, k := range []string{EventOpen, EventClick, EventUnsubscribe} {
		if want(k) {
			kinds = append(kinds, k)
		}
	}
	if len(kinds) > 0 {
		cond, args := where("e", q.After.Event, kinds)
		err := db.Raw(`SELECT e.id AS event_id, e.kind, COALESCE(e.campaign_id, 0) AS campaign_id,
			COALESCE(e.subscriber_id, 0) AS subscriber_id, e.delivery_id, e.machine, e.created_at,
			COALESCE(l.url, '') AS url, COALESCE(NULLIF(d.email, ''), sb.email, '') AS email
			FROM events e LEFT JOIN links l ON l.id = e.link_id
			LEFT JOIN deliveries d ON d.id = e.delivery_id LEFT JOIN subscribers sb ON sb.id = e.subscriber_id
			WHERE `+cond+` ORDER BY e.id LIMIT ?`, args...).Scan(&events).Error
		if err != nil {
			return nil, q.After, wrap(err)
		}
	}
	var bkinds []string
	if want(ActivityBounce) {
		bkinds = append(bkinds, BounceHard, BounceSoft)
	}
	if want(ActivityComplaint) {
		bkinds = append(bkinds, BounceComplaint)
	}
	if len(bkinds) > 0 {
		cond, args := where("b", q.After.Bounce, bkinds)
		var rows []struct {
			Activity
			RowKind string
		}
		err := db.Raw(`SELECT b.id AS bounce_id, b.kind AS row_kind, COALESCE(b.campaign_id, 0) AS campaign_id,
			COALESCE(b.subscriber_id, 0) AS subscriber_id, COALESCE(b.delivery_id, 0) AS delivery_id,
			b.category, b.status, b.diagnostic, b.created_at,
			COALESCE(NULLIF(d.email, ''), sb.email, '') AS email
			FROM bounces b LEFT JOIN deliveries d ON d.id = b.delivery_id LEFT JOIN subscribers sb ON sb.id = b.subscriber_id
			WHERE `+cond+` ORDER BY b.id LIMIT ?`, args...).Scan(&rows).Error
		if err != nil {
			return nil, q.After, wrap(err)
		}
		for _, r := range rows {
			a := r.Activity
			if r.RowKind == BounceComplaint {
				a.Kind = ActivityComplaint
			} else {
				a.Kind, a.BounceKind = ActivityBounce, r.RowKind
			}
			bounces = append(bounces, a)
		}
	}
	// Merge by time, always taking the head of one list, so each table's
	// rows leave in id order and the cursor never passes an untaken row.
	out := make([]Activity, 0, min(q.Limit, len(events)+len(bounces)))
	next := q.After
	for len(out) < q.Limit && (len(events) > 0 || len(bounces) > 0) {
		if len(bounces) == 0 || len(events) > 0 && !bounces[0].CreatedAt.Before(events[0].CreatedAt) {
			out, next.Event, events = append(out, events[0]), events[0].EventID, events[1:]
			continue
		}
		out, next.Bounce, bounces = append(out, bounces[0]), bounces[0].BounceID, bounces[1:]
	}
	return out, next, nil
}

// BounceQuery selects a page of the bounces table; zero fields do not
// filter.
type BounceQuery struct {
	CampaignID int64
	Kind       string // hard, soft or complaint
	Before     int64  // cursor: only ids below this
	Limit      int    // page size, default 50, at most 500
}

// BounceRow is a bounce or complaint with the address it concerns.
type BounceRow struct {
	Bounce
	Email string
}

// Bounces returns a page of bounces and complaints, newest first, and the
// cursor of the next page (0 on the last one).
func (s *Store) Bounces(ctx context.Context, q BounceQuery) ([]BounceRow, int64, error) {
	if q.Limit <= 0 || q.Limit > 500 {
		q.Limit = 50
	}
	cond, args := "1 = 1", []any{}
	if q.CampaignID != 0 {
		cond, args = cond+" AND b.campaign_id = ?", append(args, q.CampaignID)
	}
	if q.Kind != "" {
		cond, args = cond+" AND b.kind = ?", append(args, q.Kind)
	}
	if q.Before > 0 {
		cond, args = cond+" AND b.id < ?", append(args, q.Before)
	}
	var rows []BounceRow
	err := s.conn(ctx).Raw(`SELECT b.*, COALESCE(NULLIF(d.email, ''), sb.email, '') AS email
		FROM bounces b LEFT JOIN deliveries d ON d.id = b.delivery_id LEFT JOIN subscribers sb ON sb.id = b.subscriber_id
		WHERE `+cond+` ORDER BY b.id DESC LIMIT ?`, append(args, q.Limit+1)...).Scan(&rows).Error
	if err != nil {
		return nil, 0, fmt.Errorf("models: bounces: %w", err)
	}
	var next int64
	if len(rows) > q.Limit {
		rows = rows[:q.Limit]
		next = rows[q.Limit-1].ID
	}
	return rows, next, nil
}
