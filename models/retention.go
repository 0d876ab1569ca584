package models

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"gorm.io/gorm"
)

// Retention setting keys: how many days to keep each kind of data; 0 keeps
// it forever.
const (
	SettingRetainUnconfirmed = "retention_unconfirmed_days"
	SettingRetainEvents      = "retention_events_days"
	SettingRetainBounces     = "retention_bounces_days"
	SettingRetainOutbox      = "retention_outbox_days"
)

// SourceRetention marks ledger rows written by the retention job.
const SourceRetention = "retention"

// RetentionPolicy is how long Herald keeps data, in days; 0 keeps forever.
type RetentionPolicy struct {
	// UnconfirmedDays: subscriptions never confirmed are removed after this
	// many days, and subscribers left on no list with them.
	UnconfirmedDays int
	// EventDays: opens and clicks lose their IP, user agent and subscriber
	// after this many days (the campaign counts stay).
	EventDays int
	// BounceDays: bounces lose the remote server's diagnostic text and name
	// after this many days (kind, category and status code stay).
	BounceDays int
	// OutboxDays: captured messages are deleted after this many days.
	OutboxDays int
}

// DefaultRetention is the policy until an admin changes it.
var DefaultRetention = RetentionPolicy{UnconfirmedDays: 30, EventDays: 365, BounceDays: 90, OutboxDays: 30}

// MaxRetentionDays is the longest period a setting may hold (100 years).
const MaxRetentionDays = 36500

func (p *RetentionPolicy) fields() []struct {
	key string
	v   *int
} {
	return []struct {
		key string
		v   *int
	}{
		{SettingRetainUnconfirmed, &p.UnconfirmedDays}, {SettingRetainEvents, &p.EventDays},
		{SettingRetainBounces, &p.BounceDays}, {SettingRetainOutbox, &p.OutboxDays},
	}
}

// ParseRetention reads a policy from form values keyed by the setting keys;
// the map says, per key, what was wrong.
func ParseRetention(get func(key string) string) (RetentionPolicy, map[string]string) {
	var p RetentionPolicy
	errs := map[string]string{}
	for _, f := range p.fields() {
		raw := get(f.key)
		n, err := strconv.Atoi(raw)
		if err != nil || n < 0 || n > MaxRetentionDays {
			errs[f.key] = fmt.Sprintf("Enter a whole number of days from 0 (keep forever) to %d.", MaxRetentionDays)
			continue
		}
		*f.v = n
	}
	return p, errs
}

// Retention returns the stored policy, with defaults for what is unset.
func (s *Store) Retention(ctx context.Context) (RetentionPolicy, error) {
	p := DefaultRetention
	all, err := s.Settings(ctx)
	if err != nil {
		return p, err
	}
	for _, f := range p.fields() {
		if v, ok := all[f.key]; ok {
			if n, err := strconv.Atoi(v); err == nil && n >= 0 {
				*f.v = n
			}
		}
	}
	return p, nil
}

// SetRetention stores a policy.
func (s *Store) SetRetention(ctx context.Context, p RetentionPolicy) error {
	for _, f := range p.fields() {
		if err := s.SetSetting(ctx, f.key, strconv.Itoa(*f.v)); err != nil {
			return err
		}
	}
	return nil
}

// RetentionReport counts what one enforcement removed.
type RetentionReport struct {
	UnconfirmedRemoved int64 // subscriptions never confirmed
	SubscribersRemoved int64 // subscribers left on no list by that
	EventsAnonymised   int64
	BouncesCleared     int64
	OutboxDeleted      int64
}

// Total is the number of rows changed.
func (r RetentionReport) Total() int64 {
	return r.UnconfirmedRemoved + r.SubscribersRemoved + r.EventsAnonymised + r.BouncesCleared + r.OutboxDeleted
}

func (r RetentionReport) String() string {
	return fmt.Sprintf("%d unconfirmed subscriptions and %d subscribers removed, %d tracking events anonymised, %d bounce diagnostics cleared, %d captured messages deleted",
		r.UnconfirmedRemoved, r.SubscribersRemoved, r.EventsAnonymised, r.BouncesCleared, r.OutboxDeleted)
}

// retentionBatch is how many rows one statement of EnforceRetention changes.
const retentionBatch = 2000

// EnforceRetention removes what the policy says is older than it may be at
// now, in batches, and returns the counts. now is a parameter so the clock
// can be set by tests and by a job that wants one cut-off for every table.
func (s *Store) EnforceRetention(ctx context.Context, now time.Time) (RetentionReport, error) {
	var rep RetentionReport
	p, err := s.Retention(ctx)
	if err != nil {
		return rep, err
	}
	cut := func(days int) time.Time { return dbTime(now.AddDate(0, 0, -days)) }
	if p.UnconfirmedDays > 0 {
		if err := s.expireUnconfirmed(ctx, cut(p.UnconfirmedDays), p.UnconfirmedDays, &rep); err != nil {
			return rep, err
		}
	}
	steps := []struct {
		days int
		n    *int64
		sql  string
	}{
		{p.EventDays, &rep.EventsAnonymised, `UPDATE events SET ip = '', user_agent = '', subscriber_id = NULL WHERE id IN (
			SELECT id FROM events WHERE (ip <> '' OR user_agent <> '' OR subscriber_id IS NOT NULL) AND created_at < ? LIMIT ?)`},
		{p.BounceDays, &rep.BouncesCleared, `UPDATE bounces SET diagnostic = '', remote_mta = '' WHERE id IN (
			SELECT id FROM bounces WHERE (diagnostic <> '' OR remote_mta <> '') AND created_at < ? LIMIT ?)`},
		{p.OutboxDays, &rep.OutboxDeleted, `DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE created_at < ? LIMIT ?)`},
	}
	for _, st := range steps {
		if st.days <= 0 {
			continue
		}
		for {
			if err := ctx.Err(); err != nil {
				return rep, err
			}
			res := s.conn(ctx).Exec(st.sql, cut(st.days), retentionBatch)
			if res.Error != nil {
				return rep, fmt.Errorf("models: enforce retention: %w", res.Error)
			}
			*st.n += res.RowsAffected
			if res.RowsAffected < retentionBatch {
				break
			}
		}
	}
	return rep, nil
}

// expireUnconfirmed removes subscriptions left unconfirmed since before cut,
// with a withdrawal in the ledger for each, and then the subscribers that
// were on no other list.
func (s *Store) expireUnconfirmed(ctx context.Context, cut time.Time, days int, rep *RetentionReport) error {
	ev := Evidence{Source: SourceRetention, Actor: "retention job",
		Note: fmt.Sprintf("unconfirmed for more than %d days", days)}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var n int
		err := s.tx(ctx, func(tx *gorm.DB) error {
			var rows []struct {
				SubscriberID, ListID int64
				Email                string
			}
			if err := tx.Raw(`SELECT m.subscriber_id, m.list_id, b.email FROM subscriptions m
				JOIN subscribers b ON b.id = m.subscriber_id
				WHERE m.status = 'unconfirmed' AND m.created_at < ? LIMIT ?`, cut, retentionBatch).Scan(&rows).Error; err != nil {
				return err
			}
			n = len(rows)
			ledger := make([]Consent, 0, n)
			touched := map[int64]bool{}
			for _, r := range rows {
				if err := tx.Exec("DELETE FROM subscriptions WHERE subscriber_id = ? AND list_id = ? AND status = 'unconfirmed'",
					r.SubscriberID, r.ListID).Error; err != nil {
					return err
				}
				ledger = append(ledger, ev.row(ConsentWithdrawn, r.SubscriberID, r.ListID, r.Email))
				touched[r.SubscriberID] = true
			}
			if err := s.appendConsents(tx, ledger); err != nil {
				return err
			}
			ids := make([]int64, 0, len(touched))
			for id := range touched {
				ids = append(ids, id)
			}
			for part := range slices.Chunk(ids, 500) {
				res := tx.Exec(`DELETE FROM subscribers WHERE id IN ? AND status = 'active'
					AND NOT EXISTS (SELECT 1 FROM subscriptions x WHERE x.subscriber_id = subscribers.id)`, part)
				if res.Error != nil {
					return res.Error
				}
				rep.SubscribersRemoved += res.RowsAffected
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("models: expire unconfirmed subscriptions: %w", err)
		}
		rep.UnconfirmedRemoved += int64(n)
		if n < retentionBatch {
			return nil
		}
	}
}

// TakeJob reports whether owner should run the periodic job name now:
// the first caller once the job is due gets true and holds it until
// now+lease; other nodes asking meanwhile get false. The caller moves the
// job to its next period with JobDone when the run succeeded; a run that
// failed, or a node that died running it, leaves it due again once the
// lease is over. A job never seen before is due.
func (s *Store) TakeJob(ctx context.Context, name, owner string, now time.Time, lease time.Duration) (bool, error) {
	db := s.conn(ctx)
	if err := db.Exec(`INSERT INTO jobs (name, next_run_at) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`,
		name, dbTime(time.Unix(0, 0))).Error; err != nil {
		return false, fmt.Errorf("models: take job %s: %w", name, err)
	}
	res := db.Exec(`UPDATE jobs SET next_run_at = ?, owner = ?, started_at = ? WHERE name = ? AND next_run_at <= ?`,
		dbTime(now.Add(lease)), owner, dbTime(now), name, dbTime(now))
	if res.Error != nil {
		return false, fmt.Errorf("models: take job %s: %w", name, res.Error)
	}
	return res.RowsAffected == 1, nil
}

// JobDone records that owner's run of the job name succeeded and that the
// job is next due at next. A run whose lease another node took over
// meanwhile changes nothing.
func (s *Store) JobDone(ctx context.Context, name, owner string, next time.Time) error {
	if err := s.conn(ctx).Exec(`UPDATE jobs SET next_run_at = ?, finished_at = ? WHERE name = ? AND owner = ?`,
		dbTime(next), dbNow(), name, owner).Error; err != nil {
		return fmt.Errorf("models: job %s done: %w", name, err)
	}
	return nil
}

// JobRun is what the jobs table says about one periodic job.
type JobRun struct {
	Name       string
	Owner      string // the node that took the last run
	NextRunAt  time.Time
	StartedAt  *time.Time
	FinishedAt *time.Time // nil while the first run has not succeeded
}

// Jobs returns every periodic job's row, by name.
func (s *Store) Jobs(ctx context.Context) ([]JobRun, error) {
	var out []JobRun
	if err := s.conn(ctx).Raw(`SELECT name, owner, next_run_at, started_at, finished_at FROM jobs ORDER BY name`).Scan(&out).Error; err != nil {
		return nil, fmt.Errorf("models: jobs: %w", err)
	}
	return out, nil
}

// DeleteExpiredSessions removes dashboard sessions past their expiry from
// the table (a cluster job: one node does it for all).
func (s *Store) DeleteExpiredSessions(ctx context.Context) (int64, error) {
	res := s.conn(ctx).Exec("DELETE FROM sessions WHERE expiry < ?", unixNow())
	if res.Error != nil {
		return 0, fmt.Errorf("models: delete expired sessions: %w", res.Error)
	}
	return res.RowsAffected, nil
}

// DeleteAbandonedImports removes imports uploaded before before and never
// started, with their stored files: uploads whose column mapping was never
// submitted.
func (s *Store) DeleteAbandonedImports(ctx context.Context, before time.Time) (int64, error) {
	res := s.conn(ctx).Exec(`DELETE FROM imports WHERE status = ? AND options = '' AND created_at < ?`, ImportQueued, dbTime(before))
	if res.Error != nil {
		return 0, fmt.Errorf("models: delete abandoned imports: %w", res.Error)
	}
	return res.RowsAffected, nil
}
