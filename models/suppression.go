package models

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
)

// Suppression reasons.
const (
	SuppressHardBounce  = "hard_bounce"
	SuppressComplaint   = "complaint"
	SuppressUnsubscribe = "unsubscribe"
	SuppressManual      = "manual"
	SuppressErased      = "erased"
)

// ErrSuppressed is returned when an address on the suppression list would be
// added as a subscriber.
var ErrSuppressed = errors.New("the address is on the suppression list")

// Suppression keeps an address or a whole domain from being mailed or
// imported. Erased entries keep only ValueHash.
type Suppression struct {
	ID        int64
	Kind      string // address | domain
	Value     string
	ValueHash string
	Reason    string
	Note      string
	CreatedAt time.Time
}

// SuppressionHash is the key an address or domain is suppressed under: a
// SHA-256 of its lower-cased form, so erased people can still be recognised
// without their address being kept.
func SuppressionHash(value string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(value)))
	return hex.EncodeToString(sum[:])
}

// checkSuppressed returns ErrSuppressed when email or its domain is suppressed.
func (s *Store) checkSuppressed(tx *gorm.DB, email string) error {
	var n int64
	err := tx.Model(&Suppression{}).Where("value_hash IN ?",
		[]string{SuppressionHash(email), SuppressionHash("@" + EmailDomain(email))}).Count(&n).Error
	if err != nil {
		return err
	}
	if n > 0 {
		return ErrSuppressed
	}
	return nil
}

// AddSuppression suppresses an address, or a domain when value starts with @.
// Suppressing what is already suppressed is not an error.
func (s *Store) AddSuppression(ctx context.Context, value, reason, note string) error {
	kind := "address"
	if strings.HasPrefix(value, "@") {
		kind = "domain"
	}
	stored := value
	if reason == SuppressErased {
		stored = ""
	}
	err := s.db.WithContext(ctx).Exec(`INSERT INTO suppressions (kind, value, value_hash, reason, note, created_at)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (value_hash) DO NOTHING`,
		kind, stored, SuppressionHash(value), reason, note, dbNow()).Error
	if err != nil {
		return fmt.Errorf("models: add suppression: %w", err)
	}
	return nil
}
