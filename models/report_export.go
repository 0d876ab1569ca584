package models

import (
	"context"
	"database/sql"
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"time"
)

// RecipientOutcomeHeader is the header row of a campaign's per-recipient
// export.
var RecipientOutcomeHeader = []string{"email", "status", "smtp_code", "enhanced_code", "diagnostic", "bounce_kind",
	"bounce_category", "complained", "unsubscribed", "opened", "opened_by_person", "opens", "first_open_at", "clicked",
	"clicked_by_person", "clicks", "first_click_at", "sent_at", "last_attempt_at", "tls"}

// ExportRecipientOutcomes writes a campaign's per-recipient outcome as CSV
// (RecipientOutcomeHeader), streaming page by page. It returns ErrNotFound
// for an unknown campaign before writing anything.
func (s *Store) ExportRecipientOutcomes(ctx context.Context, campaignID int64, w io.Writer) error {
	if _, err := s.CampaignProgress(ctx, campaignID); err != nil {
		return err
	}
	cw := csv.NewWriter(w)
	if err := cw.Write(RecipientOutcomeHeader); err != nil {
		return fmt.Errorf("models: export outcomes of campaign %d: %w", campaignID, err)
	}
	rec := make([]string, len(RecipientOutcomeHeader))
	yes := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	at := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339)
	}
	n := 0
	err := s.EachRecipientOutcome(ctx, campaignID, func(o *RecipientOutcome) error {
		code := ""
		if o.Code != 0 {
			code = strconv.Itoa(o.Code)
		}
		rec = append(rec[:0], csvSafe(o.Email), o.Status, code, o.Enhanced, csvSafe(o.Diagnostic), o.BounceKind,
			csvSafe(o.BounceCategory), yes(o.Complained), yes(o.Unsubscribed), yes(o.Opens > 0), yes(o.HumanOpens > 0),
			strconv.FormatInt(o.Opens, 10), at(o.FirstOpen), yes(o.Clicks > 0), yes(o.HumanClicks > 0),
			strconv.FormatInt(o.Clicks, 10), at(o.FirstClick), at(o.SentAt), at(o.LastAttemptAt), TLSText(o.TLS))
		if err := cw.Write(rec); err != nil {
			return err
		}
		if n++; n%outcomePage == 0 {
			cw.Flush()
			return cw.Error()
		}
		return nil
	})
	cw.Flush()
	if err == nil {
		err = cw.Error()
	}
	if err != nil {
		return fmt.Errorf("models: export outcomes of campaign %d: %w", campaignID, err)
	}
	return nil
}

// RecipientOutcome is one row of a campaign's per-recipient export.
type RecipientOutcome struct {
	Email               string
	Status              string
	Code                int
	Enhanced            string
	Diagnostic          string // the bounce report's text when there is one, else the last SMTP reply
	BounceKind          string
	BounceCategory      string
	Complained          bool
	Opens, HumanOpens   int64
	FirstOpen           time.Time
	Clicks, HumanClicks int64
	FirstClick          time.Time
	Unsubscribed        bool
	SentAt              time.Time
	LastAttemptAt       time.Time
	TLS                 int16 // how the last attempt crossed the network (TLSCode)
}

// outcomePage is how many deliveries an export reads per query.
const outcomePage = 2000

// EachRecipientOutcome calls fn for every delivery of a campaign in id
// order, one page of deliveries (and their events and bounces) at a time,
// so memory does not grow with the campaign. It returns ErrNotFound for an
// unknown campaign, and fn's error when fn fails.
func (s *Store) EachRecipientOutcome(ctx context.Context, campaignID int64, fn func(*RecipientOutcome) error) error {
	wrap := func(err error) error { return fmt.Errorf("models: outcomes of campaign %d: %w", campaignID, err) }
	if _, err := s.CampaignProgress(ctx, campaignID); err != nil {
		return err
	}
	ids := make([]int64, 0, outcomePage)
	page := make([]RecipientOutcome, 0, outcomePage)
	for after := int64(0); ; {
		ids, page = ids[:0], page[:0]
		rows, err := s.sql.QueryContext(ctx, s.rebind(`SELECT d.id, COALESCE(s.email, d.email), d.status, d.last_code,
			d.last_enhanced, d.last_text, d.sent_at, d.last_attempt_at, d.tls
			FROM deliveries d LEFT JOIN subscribers s ON s.id = d.subscriber_id
			WHERE d.campaign_id = ? AND d.id > ? ORDER BY d.id LIMIT ?`), campaignID, after, outcomePage)
		if err != nil {
			return wrap(err)
		}
		for rows.Next() {
			var id int64
			var o RecipientOutcome
			var sent, tried sql.NullTime
			if err := rows.Scan(&id, &o.Email, &o.Status, &o.Code, &o.Enhanced, &o.Diagnostic, &sent, &tried, &o.TLS); err != nil {
				rows.Close()
				return wrap(err)
			}
			o.SentAt, o.LastAttemptAt = sent.Time, tried.Time
			ids, page = append(ids, id), append(page, o)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return wrap(err)
		}
		if len(ids) == 0 {
			return nil
		}
		if err := s.outcomeDetails(ctx, campaignID, ids, page); err != nil {
			return wrap(err)
		}
		for i := range page {
			if err := fn(&page[i]); err != nil {
				return err
			}
		}
		if len(ids) < outcomePage {
			return nil
		}
		after = ids[len(ids)-1]
	}
}

// outcomeDetails adds the events and bounces of a page of deliveries (ids
// ascending, page in the same order).
func (s *Store) outcomeDetails(ctx context.Context, campaignID int64, ids []int64, page []RecipientOutcome) error {
	pos := make(map[int64]int, len(ids))
	for i, id := range ids {
		pos[id] = i
	}
	lo, hi := ids[0], ids[len(ids)-1]
	rows, err := s.sql.QueryContext(ctx, s.rebind(`SELECT delivery_id, kind, COUNT(*),
		COALESCE(SUM(CASE WHEN machine THEN 0 ELSE 1 END), 0), MIN(created_at) FROM events
		WHERE campaign_id = ? AND kind IN (?, ?, ?) AND delivery_id BETWEEN ? AND ? GROUP BY delivery_id, kind`),
		campaignID, EventOpen, EventClick, EventUnsubscribe, lo, hi)
	if err != nil {
		return err
	}
	for rows.Next() {
		var id, n, human int64
		var kind string
		var first aggTime
		if err := rows.Scan(&id, &kind, &n, &human, &first); err != nil {
			rows.Close()
			return err
		}
		i, ok := pos[id]
		if !ok {
			continue
		}
		o := &page[i]
		switch kind {
		case EventOpen:
			o.Opens, o.HumanOpens, o.FirstOpen = n, human, first.t
		case EventClick:
			o.Clicks, o.HumanClicks, o.FirstClick = n, human, first.t
		case EventUnsubscribe:
			o.Unsubscribed = true
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	rows, err = s.sql.QueryContext(ctx, s.rebind(`SELECT delivery_id, kind, category, status, diagnostic FROM bounces
		WHERE campaign_id = ? AND delivery_id BETWEEN ? AND ? ORDER BY id`), campaignID, lo, hi)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var kind, category, status, diag string
		if err := rows.Scan(&id, &kind, &category, &status, &diag); err != nil {
			return err
		}
		i, ok := pos[id]
		if !ok {
			continue
		}
		o := &page[i]
		if kind == BounceComplaint {
			o.Complained = true
			continue
		}
		// A hard bounce outranks a soft one for the same delivery.
		if o.BounceKind == "" || kind == BounceHard {
			o.BounceKind, o.BounceCategory = kind, category
			if status != "" {
				o.Enhanced = status
			}
			if diag != "" {
				o.Diagnostic = diag
			}
		}
	}
	return rows.Err()
}
