package models

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"
)

// Setting keys of the list-hygiene rule (see HygieneRule).
const (
	SettingSoftBounceLimit = "soft_bounce_limit"
	SettingSoftBounceDays  = "soft_bounce_days"
)

// AllowEntry is an address or a domain ("@example.com") on the allow list:
// soft-bounce rules never suppress it, and it still gets real mail while
// staging is on.
type AllowEntry struct {
	ID        int64
	Kind      string // address | domain
	Value     string
	Note      string
	CreatedAt time.Time
}

// TableName names the table.
func (AllowEntry) TableName() string { return "allow_list" }

// AllowList returns the whole allow list, addresses and domains sorted.
// The list is meant to be short (test inboxes, the team's own domain).
func (s *Store) AllowList(ctx context.Context) ([]AllowEntry, error) {
	var out []AllowEntry
	if err := s.conn(ctx).Order("kind, value").Limit(5000).Find(&out).Error; err != nil {
		return nil, fmt.Errorf("models: allow list: %w", err)
	}
	return out, nil
}

// AddAllowEntry puts an address or @domain on the allow list (see
// SuppressionValue for what is accepted) and returns the stored entry;
// adding what is there already returns the existing entry.
func (s *Store) AddAllowEntry(ctx context.Context, raw, note string) (*AllowEntry, error) {
	v, err := SuppressionValue(raw)
	if err != nil {
		return nil, err
	}
	e := AllowEntry{Kind: "address", Value: v, Note: truncate(strings.TrimSpace(note), 200), CreatedAt: dbNow()}
	if strings.HasPrefix(v, "@") {
		e.Kind = "domain"
	}
	err = s.conn(ctx).Exec(`INSERT INTO allow_list (kind, value, note, created_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (value) DO NOTHING`, e.Kind, e.Value, e.Note, e.CreatedAt).Error
	if err == nil {
		err = s.conn(ctx).Where("value = ?", v).First(&e).Error
	}
	if err != nil {
		return nil, fmt.Errorf("models: add allow entry: %w", err)
	}
	return &e, nil
}

// RemoveAllowEntry takes an entry off the allow list and returns it;
// ErrNotFound when there is none.
func (s *Store) RemoveAllowEntry(ctx context.Context, id int64) (*AllowEntry, error) {
	var e AllowEntry
	err := s.tx(ctx, func(tx *gorm.DB) error {
		if err := tx.First(&e, id).Error; err != nil {
			return notFound(err)
		}
		return tx.Delete(&AllowEntry{}, id).Error
	})
	if err != nil {
		return nil, fmt.Errorf("models: remove allow entry %d: %w", id, err)
	}
	return &e, nil
}

// AllowListed reports whether an address, or its domain, is on the allow list.
func (s *Store) AllowListed(ctx context.Context, email string) (bool, error) {
	ok, err := allowListed(s.conn(ctx), email)
	if err != nil {
		return false, fmt.Errorf("models: allow listed: %w", err)
	}
	return ok, nil
}

func allowListed(tx *gorm.DB, email string) (bool, error) {
	e := strings.ToLower(strings.TrimSpace(email))
	if e == "" {
		return false, nil
	}
	var n int64
	err := tx.Raw("SELECT COUNT(*) FROM allow_list WHERE value IN ?", []string{e, "@" + EmailDomain(e)}).Scan(&n).Error
	return n > 0, err
}

// HygieneRule is the soft-bounce rule: an address that soft-bounces on
// Limit different deliveries within Days days, with no delivery getting
// through in between, is suppressed like a hard bounce.
type HygieneRule struct {
	Limit int
	Days  int
}

// DefaultHygieneRule is the rule until an admin changes it.
var DefaultHygieneRule = HygieneRule{Limit: SoftBounceLimit, Days: int(SoftBounceWindow / (24 * time.Hour))}

// Validate returns a field→message map of what is wrong.
func (r HygieneRule) Validate() map[string]string {
	errs := map[string]string{}
	if r.Limit < 1 || r.Limit > 100 {
		errs["limit"] = "Enter a number of soft bounces from 1 to 100."
	}
	if r.Days < 1 || r.Days > 365 {
		errs["days"] = "Enter a number of days from 1 to 365."
	}
	return errs
}

func (r HygieneRule) window() time.Duration { return time.Duration(r.Days) * 24 * time.Hour }

// HygieneRule returns the stored soft-bounce rule, DefaultHygieneRule
// where nothing (or nothing valid) is stored.
func (s *Store) HygieneRule(ctx context.Context) (HygieneRule, error) {
	r := DefaultHygieneRule
	var rows []struct{ Key, Value string }
	err := s.conn(ctx).Raw("SELECT key, value FROM settings WHERE key IN ?",
		[]string{SettingSoftBounceLimit, SettingSoftBounceDays}).Scan(&rows).Error
	if err != nil {
		return r, fmt.Errorf("models: hygiene rule: %w", err)
	}
	for _, row := range rows {
		n, err := strconv.Atoi(row.Value)
		if err != nil {
			continue
		}
		switch row.Key {
		case SettingSoftBounceLimit:
			r.Limit = n
		case SettingSoftBounceDays:
			r.Days = n
		}
	}
	if len(r.Validate()) > 0 {
		return DefaultHygieneRule, nil
	}
	return r, nil
}

// SetHygieneRule stores the soft-bounce rule; it applies to soft bounces
// recorded from now on (ApplyHygieneRule applies it to past ones).
func (s *Store) SetHygieneRule(ctx context.Context, r HygieneRule) error {
	if errs := r.Validate(); len(errs) > 0 {
		return fmt.Errorf("models: set hygiene rule: invalid %v", errs)
	}
	return s.tx(ctx, func(tx *gorm.DB) error {
		st := s.withDB(tx)
		if err := st.SetSetting(ctx, SettingSoftBounceLimit, strconv.Itoa(r.Limit)); err != nil {
			return err
		}
		return st.SetSetting(ctx, SettingSoftBounceDays, strconv.Itoa(r.Days))
	})
}

// SoftBounceCandidate is an address the soft-bounce rule would suppress.
type SoftBounceCandidate struct {
	SubscriberID int64
	Email        string
	Bounces      int
}

// softBounceOffenders runs the rule over the bounces table: the
// subscribers (all, or only subscriberID when it is not 0) with at least
// r.Limit soft-bounced deliveries within the window, counting only
// deliveries sent after their last delivery that got through.
func softBounceOffenders(tx *gorm.DB, r HygieneRule, subscriberID int64) ([]SoftBounceCandidate, error) {
	since := dbTime(now().Add(-r.window()))
	q := `SELECT b.subscriber_id, s.email, COUNT(DISTINCT b.delivery_id) AS bounces
		FROM bounces b JOIN deliveries d ON d.id = b.delivery_id JOIN subscribers s ON s.id = b.subscriber_id
		WHERE b.kind = ? AND b.created_at >= ? AND s.email <> ''
		AND COALESCE(d.sent_at, d.created_at) > COALESCE((SELECT MAX(g.sent_at) FROM deliveries g
			WHERE g.subscriber_id = b.subscriber_id AND g.status = ? AND g.sent_at >= ?
			AND NOT EXISTS (SELECT 1 FROM bounces gb WHERE gb.delivery_id = g.id)), ?)`
	args := []any{BounceSoft, since, DeliverySent, since, since}
	if subscriberID != 0 {
		q += " AND b.subscriber_id = ?"
		args = append(args, subscriberID)
	}
	q += " GROUP BY b.subscriber_id, s.email HAVING COUNT(DISTINCT b.delivery_id) >= ? ORDER BY b.subscriber_id"
	args = append(args, r.Limit)
	var out []SoftBounceCandidate
	err := tx.Raw(q, args...).Scan(&out).Error
	return out, err
}

// HygienePreview lists who applying the rule to past soft bounces would
// suppress now: offenders not yet suppressed and not allow-listed.
func (s *Store) HygienePreview(ctx context.Context, r HygieneRule) ([]SoftBounceCandidate, error) {
	out, err := s.hygieneTargets(s.conn(ctx), r)
	if err != nil {
		return nil, fmt.Errorf("models: hygiene preview: %w", err)
	}
	return out, nil
}

func (s *Store) hygieneTargets(tx *gorm.DB, r HygieneRule) ([]SoftBounceCandidate, error) {
	all, err := softBounceOffenders(tx, r, 0)
	if err != nil {
		return nil, err
	}
	emails := make([]string, len(all))
	for i, c := range all {
		emails[i] = c.Email
	}
	supp, err := s.suppressedSet(tx, emails, nil)
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, c := range all {
		if supp[strings.ToLower(c.Email)] {
			continue
		}
		ok, err := allowListed(tx, c.Email)
		if err != nil {
			return nil, err
		}
		if !ok {
			out = append(out, c)
		}
	}
	return out, nil
}

// ApplyHygieneRule suppresses everyone HygienePreview lists, in one
// transaction, and returns how many were suppressed.
func (s *Store) ApplyHygieneRule(ctx context.Context, r HygieneRule) (int, error) {
	n := 0
	err := s.tx(ctx, func(tx *gorm.DB) error {
		targets, err := s.hygieneTargets(tx, r)
		if err != nil {
			return err
		}
		st := s.withDB(tx)
		for _, c := range targets {
			note := fmt.Sprintf("%d soft bounces within %d days (rule applied retroactively)", c.Bounces, r.Days)
			if err := st.AddSuppression(ctx, c.Email, SuppressHardBounce, note); err != nil {
				return err
			}
		}
		n = len(targets)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("models: apply hygiene rule: %w", err)
	}
	return n, nil
}
