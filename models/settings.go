package models

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"gorm.io/gorm"
)

// Setting keys.
const (
	SettingSecret        = "secret"
	SettingOrgName       = "org_name"
	SettingPostalAddress = "postal_address"
	SettingRootURL       = "root_url"
	SettingLogoURL       = "logo_url"

	// SettingTrackingMode is TrackingFull (the default when unset),
	// TrackingAggregate (counts only, no per-subscriber events) or
	// TrackingOff (no pixel, no link rewriting, no events).
	SettingTrackingMode = "tracking_mode"

	// SettingStaging, when "on", delivers for real only to allow-listed
	// recipients and captures everything else in the outbox.
	SettingStaging = "staging"
)

// Tracking modes, the values of SettingTrackingMode.
const (
	TrackingFull      = "full"
	TrackingAggregate = "aggregate"
	TrackingOff       = "off"
)

// Setting returns one setting, "" when unset.
func (s *Store) Setting(ctx context.Context, key string) (string, error) {
	var v []string
	if err := s.conn(ctx).Raw("SELECT value FROM settings WHERE key = ?", key).Scan(&v).Error; err != nil {
		return "", fmt.Errorf("models: setting %s: %w", key, err)
	}
	if len(v) == 0 {
		return "", nil
	}
	return v[0], nil
}

// Settings returns every setting.
func (s *Store) Settings(ctx context.Context) (map[string]string, error) {
	var rows []struct{ Key, Value string }
	if err := s.conn(ctx).Raw("SELECT key, value FROM settings").Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("models: settings: %w", err)
	}
	out := make(map[string]string, len(rows))
	for _, r := range rows {
		out[r.Key] = r.Value
	}
	return out, nil
}

// SetSetting stores one setting.
func (s *Store) SetSetting(ctx context.Context, key, value string) error {
	err := s.conn(ctx).Exec(`INSERT INTO settings (key, value) VALUES (?, ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value).Error
	if err != nil {
		return fmt.Errorf("models: set %s: %w", key, err)
	}
	return nil
}

// EnsureSecret returns the stored server secret, generating and storing one
// on first use. Concurrent first starts agree on one secret.
func (s *Store) EnsureSecret(ctx context.Context) (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	err := s.conn(ctx).Exec(`INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING`,
		SettingSecret, hex.EncodeToString(b)).Error
	if err != nil {
		return "", fmt.Errorf("models: store secret: %w", err)
	}
	return s.Setting(ctx, SettingSecret)
}

// AuditEntry is one line of the audit log.
type AuditEntry struct {
	ID         int64
	UserID     *int64
	Actor      string
	Action     string
	ObjectType string
	ObjectID   string
	Summary    string
	IP         string `gorm:"column:ip"`
	CreatedAt  time.Time
}

// TableName keeps GORM from pluralising.
func (AuditEntry) TableName() string { return "audit_log" }

// Audit appends an entry to the audit log.
func (s *Store) Audit(ctx context.Context, e AuditEntry) error {
	e.CreatedAt = dbNow()
	if err := s.conn(ctx).Create(&e).Error; err != nil {
		return fmt.Errorf("models: audit: %w", err)
	}
	return nil
}

// SessionStore keeps dashboard sessions in the sessions table; it implements
// scs.Store.
//
// With an idle timeout, scs commits the session on every request to push
// its expiry on, which made every page load, and every one-second progress
// poll of an open campaign page, a database write. The store remembers
// what it last wrote for each session and skips a commit that changes
// nothing but moves the expiry by less than sessionRefresh.
type SessionStore struct {
	db      *gorm.DB
	mu      sync.Mutex
	written map[string]writtenSession
	pruned  time.Time // when forgetExpired last ran
}

type writtenSession struct {
	data   []byte
	expiry time.Time
}

// sessionRefresh is how far a session's stored expiry may lag behind the
// one scs asks for.
const sessionRefresh = time.Minute

// Sessions returns the store's session backend; call it once and share it.
func (s *Store) Sessions() *SessionStore {
	return &SessionStore{db: s.db, written: map[string]writtenSession{}}
}

// Find returns a live session's data.
func (ss *SessionStore) Find(token string) ([]byte, bool, error) {
	var rows []struct{ Data []byte }
	err := ss.db.Raw("SELECT data FROM sessions WHERE token = ? AND expiry > ?", token, unixNow()).Scan(&rows).Error
	if err != nil || len(rows) == 0 {
		return nil, false, err
	}
	ss.mu.Lock()
	if w, ok := ss.written[token]; ok && !bytes.Equal(w.data, rows[0].Data) {
		delete(ss.written, token) // another node wrote it since: the next commit must write
	}
	ss.mu.Unlock()
	return rows[0].Data, true, nil
}

// Commit stores a session until expiry, unless this store last wrote the
// same data with an expiry less than sessionRefresh earlier.
func (ss *SessionStore) Commit(token string, b []byte, expiry time.Time) error {
	ss.forgetExpired()
	ss.mu.Lock()
	w, ok := ss.written[token]
	ss.mu.Unlock()
	// A remembered write that has expired may have been deleted from the
	// table by any node's cleanup (DeleteExpiredSessions): write again.
	if ok && bytes.Equal(w.data, b) && !expiry.Before(w.expiry) && expiry.Sub(w.expiry) < sessionRefresh && w.expiry.After(now()) {
		return nil
	}
	err := ss.db.Exec(`INSERT INTO sessions (token, data, expiry) VALUES (?, ?, ?)
		ON CONFLICT (token) DO UPDATE SET data = excluded.data, expiry = excluded.expiry`,
		token, b, float64(expiry.UnixNano())/1e9).Error
	ss.mu.Lock()
	if err == nil {
		ss.written[token] = writtenSession{data: bytes.Clone(b), expiry: expiry}
	} else {
		delete(ss.written, token)
	}
	ss.mu.Unlock()
	return err
}

// Delete removes a session.
func (ss *SessionStore) Delete(token string) error {
	ss.mu.Lock()
	delete(ss.written, token)
	ss.mu.Unlock()
	return ss.db.Exec("DELETE FROM sessions WHERE token = ?", token).Error
}

// forgetExpired drops expired sessions from the store's memory of what
// it wrote, at most once an hour. Deleting them from the table is a
// cluster job (Store.DeleteExpiredSessions); this memory is each node's.
func (ss *SessionStore) forgetExpired() {
	t := now()
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if t.Sub(ss.pruned) < time.Hour {
		return
	}
	ss.pruned = t
	for token, w := range ss.written {
		if w.expiry.Before(t) {
			delete(ss.written, token)
		}
	}
}

func unixNow() float64 { return float64(now().UnixNano()) / 1e9 }
