package models

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
)

// Sunset actions.
const (
	SunsetUnsubscribe = "unsubscribe" // withdraw from every list
	SunsetSuppress    = "suppress"    // withdraw and suppress the address
)

// SourceSunset is the consent-ledger source of the sunset policy's
// withdrawals; their note starts with SunsetReason.
const (
	SourceSunset = "sunset_policy"
	SunsetReason = "sunset policy"
)

// SunsetRule is the list-hygiene policy: a person is inactive when no
// open or click of theirs by a person (machine opens and scanner clicks
// left out) is recorded in the last Months months and they received at
// least MinCampaigns campaigns. A round offers them a re-engagement
// campaign (a snapshot list); GraceDays after it was sent, those of them
// still inactive are unsubscribed or suppressed.
type SunsetRule struct {
	ID           int64
	Enabled      bool // the daily job closes rounds on its own
	Months       int
	MinCampaigns int
	Action       string
	GraceDays    int
	CampaignID   *int64 // the current round's re-engagement campaign
	ListID       *int64 // and its snapshot list
	StartedAt    *time.Time
	LastRunAt    *time.Time
	LastRunCount int64
	UpdatedAt    time.Time
}

// TableName is the rule's table.
func (SunsetRule) TableName() string { return "sunset_rules" }

// DefaultSunsetRule is the rule shown before one is saved: six months,
// eight campaigns, unsubscribe after a fortnight.
func DefaultSunsetRule() SunsetRule {
	return SunsetRule{ID: 1, Months: 6, MinCampaigns: 8, Action: SunsetUnsubscribe, GraceDays: 14}
}

// Validate returns a field→message map, empty when the rule may be saved.
func (r *SunsetRule) Validate() map[string]string {
	errs := map[string]string{}
	if r.Months < 1 || r.Months > 60 {
		errs["months"] = "Give a number of months from 1 to 60."
	}
	if r.MinCampaigns < 1 || r.MinCampaigns > 1000 {
		errs["min_campaigns"] = "Give a number of campaigns from 1 to 1000: someone who was sent nothing cannot be judged inactive."
	}
	if r.Action != SunsetUnsubscribe && r.Action != SunsetSuppress {
		errs["action"] = "Choose to unsubscribe or to suppress."
	}
	if r.GraceDays < 1 || r.GraceDays > 365 {
		errs["grace_days"] = "Give a waiting period from 1 to 365 days."
	}
	return errs
}

// Describe is the rule in words.
func (r SunsetRule) Describe() string {
	return fmt.Sprintf("no open or click by a person in %d months and at least %d campaigns received", r.Months, r.MinCampaigns)
}

// SunsetRule returns the saved rule, or DefaultSunsetRule.
func (s *Store) SunsetRule(ctx context.Context) (*SunsetRule, error) {
	var rows []SunsetRule
	if err := s.conn(ctx).Raw("SELECT * FROM sunset_rules WHERE id = 1").Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("models: sunset rule: %w", err)
	}
	if len(rows) == 0 {
		r := DefaultSunsetRule()
		return &r, nil
	}
	return &rows[0], nil
}

// SaveSunsetRule saves the rule's settings (the round is kept); call
// Validate first.
func (s *Store) SaveSunsetRule(ctx context.Context, r *SunsetRule) error {
	err := s.tx(ctx, func(tx *gorm.DB) error {
		return tx.Exec(`INSERT INTO sunset_rules (id, enabled, months, min_campaigns, action, grace_days, updated_at)
			VALUES (1, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET enabled = excluded.enabled, months = excluded.months, min_campaigns = excluded.min_campaigns,
				action = excluded.action, grace_days = excluded.grace_days, updated_at = excluded.updated_at`,
			r.Enabled, r.Months, r.MinCampaigns, r.Action, r.GraceDays, dbNow()).Error
	})
	if err != nil {
		return fmt.Errorf("models: save sunset rule: %w", err)
	}
	return nil
}

// inactiveWhere is the condition on subscribers s that r matches at now;
// listID, when not 0, keeps those on that list (a round's snapshot). The
// cheap tests come first; "at least M campaigns" looks for the M-th sent
// delivery (one per campaign and person) rather than counting them all.
func (r SunsetRule) inactiveWhere(now time.Time, listID int64) (string, []any) {
	q := `s.status = 'active'
		AND EXISTS (SELECT 1 FROM subscriptions m JOIN lists l ON l.id = m.list_id
			WHERE m.subscriber_id = s.id AND m.status <> 'unsubscribed' AND l.kind = 'list')
		AND NOT EXISTS (SELECT 1 FROM events e WHERE e.subscriber_id = s.id AND e.created_at >= ?
			AND e.kind IN ('open', 'click') AND e.machine = ?)
		AND EXISTS (SELECT 1 FROM deliveries d WHERE d.subscriber_id = s.id AND d.status = 'sent' AND d.campaign_id IS NOT NULL
			LIMIT 1 OFFSET ?)`
	args := []any{dbTime(now.AddDate(0, -r.Months, 0)), false, r.MinCampaigns - 1}
	if listID != 0 {
		q += ` AND EXISTS (SELECT 1 FROM subscriptions k WHERE k.subscriber_id = s.id AND k.list_id = ?)`
		args = append(args, listID)
	}
	return q, args
}

// inactive selects the ids (column id) of the people r matches at now.
func (r SunsetRule) inactive(now time.Time, listID int64) audienceQuery {
	where, args := r.inactiveWhere(now, listID)
	return audienceQuery{sql: "SELECT s.id AS id FROM subscribers s WHERE " + where, args: args}
}

// SunsetPerson is one inactive person in the preview.
type SunsetPerson struct {
	ID    int64
	Email string
	Name  string
}

// SunsetMatches counts the people r matches at now and returns up to
// limit of them (the lowest ids).
func (s *Store) SunsetMatches(ctx context.Context, r SunsetRule, now time.Time, limit int) (int64, []SunsetPerson, error) {
	where, args := r.inactiveWhere(now, 0)
	db := s.conn(ctx)
	var n int64
	if err := db.Raw("SELECT COUNT(*) FROM subscribers s WHERE "+where, args...).Scan(&n).Error; err != nil {
		return 0, nil, fmt.Errorf("models: sunset matches: %w", err)
	}
	var people []SunsetPerson
	if n > 0 && limit > 0 {
		if err := db.Raw("SELECT s.id, s.email, s.name FROM subscribers s WHERE "+where+" ORDER BY s.id LIMIT ?",
			append(args, limit)...).Scan(&people).Error; err != nil {
			return 0, nil, fmt.Errorf("models: sunset matches: %w", err)
		}
	}
	return n, people, nil
}

// StartSunsetRound snapshots the people the saved rule matches at now
// into a list and drafts a re-engagement campaign to them; the round's
// waiting period runs from when that campaign starts. ctx's audit entry
// (WithAudit) is written in the same transaction.
func (s *Store) StartSunsetRound(ctx context.Context, now time.Time) (*SnapshotResult, error) {
	var out *SnapshotResult
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var rows []SunsetRule
		if err := tx.Raw("SELECT * FROM sunset_rules WHERE id = 1").Scan(&rows).Error; err != nil {
			return err
		}
		if len(rows) == 0 {
			return errSunsetUnsaved
		}
		r := rows[0]
		day := now.UTC().Format("2006-01-02")
		var err error
		out, err = s.draftCampaignTo(tx, SnapshotDraft{ListName: "Re-engagement " + day, CampaignName: "Re-engagement " + day,
			Subject: "We miss you: do you still want our emails?"}, r.inactive(now, 0))
		if err != nil {
			return err
		}
		if out.People == 0 {
			return ErrNothingToSend
		}
		return tx.Exec("UPDATE sunset_rules SET campaign_id = ?, list_id = ?, started_at = ?, updated_at = ? WHERE id = 1",
			out.Campaign.ID, out.List.ID, dbTime(now), dbNow()).Error
	})
	if err != nil {
		return nil, fmt.Errorf("models: start sunset round: %w", err)
	}
	return out, nil
}

var errSunsetUnsaved = errors.New("save the sunset rule first")

// SunsetRound is the state of the current round.
type SunsetRound struct {
	Campaign *Campaign  // nil when no round was started
	SentAt   *time.Time // when its campaign started (nil: not sent yet)
	DueAt    *time.Time // SentAt plus the waiting period
	Closed   bool       // the round's run happened
}

// SunsetRoundOf returns the round of r.
func (s *Store) SunsetRoundOf(ctx context.Context, r SunsetRule) (*SunsetRound, error) {
	out := &SunsetRound{}
	if r.CampaignID == nil {
		return out, nil
	}
	c, err := s.Campaign(ctx, *r.CampaignID)
	if errors.Is(err, ErrNotFound) {
		return out, nil
	} else if err != nil {
		return nil, err
	}
	out.Campaign = c
	if c.StartedAt != nil && c.Status != CampaignCancelled {
		due := c.StartedAt.AddDate(0, 0, r.GraceDays)
		out.SentAt, out.DueAt = c.StartedAt, &due
	}
	out.Closed = r.LastRunAt != nil && r.StartedAt != nil && !r.LastRunAt.Before(*r.StartedAt)
	return out, nil
}

// SunsetScope is who a run acts on: the round's snapshot list when a
// round was sent and is open, else everyone the rule matches.
func (s *Store) sunsetScope(ctx context.Context, r SunsetRule) (int64, error) {
	round, err := s.SunsetRoundOf(ctx, r)
	if err != nil {
		return 0, err
	}
	if round.SentAt != nil && !round.Closed && r.ListID != nil {
		return *r.ListID, nil
	}
	return 0, nil
}

// SunsetDryRun counts the people a run at now would act on.
func (s *Store) SunsetDryRun(ctx context.Context, now time.Time) (int64, error) {
	r, err := s.SunsetRule(ctx)
	if err != nil {
		return 0, err
	}
	list, err := s.sunsetScope(ctx, *r)
	if err != nil {
		return 0, err
	}
	aud := r.inactive(now, list)
	var n int64
	if err := s.conn(ctx).Raw("SELECT COUNT(*) FROM ("+aud.sql+") q", aud.args...).Scan(&n).Error; err != nil {
		return 0, fmt.Errorf("models: sunset dry run: %w", err)
	}
	return n, nil
}

// RunSunset applies the saved rule at now: everyone it matches (in the
// round's snapshot when a round was sent) is withdrawn from every list
// they are live on, with a ledger row per list (source SourceSunset, note
// starting SunsetReason), and with Action suppress their address is
// suppressed too. Each batch commits with its audit entry by actor. It
// returns how many people were acted on.
func (s *Store) RunSunset(ctx context.Context, now time.Time, actor string) (int64, error) {
	r, err := s.SunsetRule(ctx)
	if err != nil {
		return 0, err
	}
	if r.UpdatedAt.IsZero() {
		return 0, fmt.Errorf("models: run sunset: %w", errSunsetUnsaved)
	}
	list, err := s.sunsetScope(ctx, *r)
	if err != nil {
		return 0, err
	}
	where, args := r.inactiveWhere(now, list)
	ev := Evidence{Source: SourceSunset, Actor: actor, Note: SunsetReason + ": " + r.Describe()}
	var done, after int64
	for {
		var n int
		err := s.tx(ctx, func(tx *gorm.DB) error {
			var people []struct {
				ID    int64
				Email string
			}
			if err := tx.Raw("SELECT s.id, s.email FROM subscribers s WHERE s.id > ? AND "+where+" ORDER BY s.id LIMIT ?",
				append(append([]any{after}, args...), streamPage)...).Scan(&people).Error; err != nil {
				return err
			}
			n = len(people)
			if n == 0 {
				return nil
			}
			ids := make([]int64, n)
			email := map[int64]string{}
			for i, p := range people {
				ids[i], email[p.ID] = p.ID, p.Email
			}
			after = ids[n-1]
			var live []struct{ SubscriberID, ListID int64 }
			if err := tx.Raw(`SELECT m.subscriber_id, m.list_id FROM subscriptions m JOIN lists l ON l.id = m.list_id
				WHERE m.subscriber_id IN ? AND m.status <> 'unsubscribed' AND l.kind = 'list' ORDER BY m.subscriber_id, m.list_id`,
				ids).Scan(&live).Error; err != nil {
				return err
			}
			ledger := make([]Consent, len(live))
			for i, m := range live {
				ledger[i] = ev.row(ConsentWithdrawn, m.SubscriberID, m.ListID, email[m.SubscriberID])
			}
			if err := tx.Exec(`UPDATE subscriptions SET status = ?, updated_at = ? WHERE subscriber_id IN ? AND status <> 'unsubscribed'
				AND list_id IN (SELECT id FROM lists WHERE kind = 'list')`, SubUnsubscribed, dbNow(), ids).Error; err != nil {
				return err
			}
			if err := s.appendConsents(tx, ledger); err != nil {
				return err
			}
			if r.Action == SunsetSuppress {
				for _, p := range people {
					v := strings.ToLower(strings.TrimSpace(p.Email))
					if err := tx.Exec(`INSERT INTO suppressions (kind, value, value_hash, reason, note, created_at)
						VALUES ('address', ?, ?, ?, ?, ?) ON CONFLICT (value_hash) DO NOTHING`,
						v, SuppressionHash(v), SuppressManual, SunsetReason, dbNow()).Error; err != nil {
						return err
					}
				}
			}
			verb := "unsubscribed"
			if r.Action == SunsetSuppress {
				verb = "unsubscribed and suppressed"
			}
			return auditTx(tx, AuditEntry{Actor: actor, Action: "sunset.run", ObjectType: "sunset_rule", ObjectID: "1",
				Summary: fmt.Sprintf("%d inactive people %s (%s)", n, verb, r.Describe())})
		})
		if err != nil {
			return done, fmt.Errorf("models: run sunset: %w", err)
		}
		done += int64(n)
		if n < streamPage {
			break
		}
	}
	if err := s.conn(ctx).Exec("UPDATE sunset_rules SET last_run_at = ?, last_run_count = ? WHERE id = 1", dbTime(now), done).Error; err != nil {
		return done, fmt.Errorf("models: run sunset: %w", err)
	}
	return done, nil
}

// RunSunsetIfDue is the daily job's run: when the rule is enabled and its
// round's re-engagement campaign was sent GraceDays or more before now
// and the round is still open, it runs the rule (RunSunset). It reports
// how many people were acted on and whether it ran.
func (s *Store) RunSunsetIfDue(ctx context.Context, now time.Time, actor string) (int64, bool, error) {
	r, err := s.SunsetRule(ctx)
	if err != nil || !r.Enabled {
		return 0, false, err
	}
	round, err := s.SunsetRoundOf(ctx, *r)
	if err != nil {
		return 0, false, err
	}
	if round.DueAt == nil || round.Closed || now.Before(*round.DueAt) {
		return 0, false, nil
	}
	n, err := s.RunSunset(ctx, now, actor)
	return n, err == nil, err
}
