package models

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"
	"gorm.io/gorm"
)

// SettingRequire2FA, when "on", sends every user without two-factor
// sign-in to set it up before anything else.
const SettingRequire2FA = "require_2fa"

// Errors of signed single-use links (invitations, password resets). The
// link's signature was good; the row it names says no.
var (
	ErrLinkExpired = errors.New("this link has expired")
	ErrLinkUsed    = errors.New("this link has already been used")
	ErrLinkRevoked = errors.New("this link was withdrawn")
)

// LinkSigner signs a new link's row id into the token the link carries.
// The store keeps only the token's hash, so a link is good for the one
// row it was issued for, and a database dump gives no working link.
type LinkSigner func(id int64) string

func hashLink(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

func sameHash(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// Invitation is an admin's invitation of someone by email, with a role.
type Invitation struct {
	ID         int64
	Email      string
	Role       string
	InvitedBy  string
	TokenHash  string
	CreatedAt  time.Time
	ExpiresAt  time.Time
	AcceptedAt *time.Time
	RevokedAt  *time.Time
	UserID     *int64
}

// Pending reports whether the invitation can still be accepted at t.
func (i *Invitation) Pending(t time.Time) bool {
	return i.AcceptedAt == nil && i.RevokedAt == nil && t.Before(i.ExpiresAt)
}

// ValidateInvitation checks an invitation's address and role.
func ValidateInvitation(email, role string) map[string]string {
	errs := map[string]string{}
	if _, err := NormalizeEmail(email); err != nil {
		errs["email"] = err.Error()
	}
	if !RoleAtLeast(role, RoleViewer) {
		errs["role"] = "Choose admin, marketer or viewer."
	}
	return errs
}

// CreateInvitation records an invitation valid for ttl and returns it
// with the token of its link (signed by sign). Earlier pending
// invitations of the same address are withdrawn: only the newest link
// works. ErrConflict when the address already has an account.
func (s *Store) CreateInvitation(ctx context.Context, email, role, invitedBy string, ttl time.Duration, sign LinkSigner) (*Invitation, string, error) {
	e, err := NormalizeEmail(email)
	if err != nil {
		return nil, "", fmt.Errorf("models: invite: %w", err)
	}
	e = strings.ToLower(e)
	inv := &Invitation{Email: e, Role: role, InvitedBy: invitedBy, CreatedAt: dbNow(), ExpiresAt: dbTime(now().Add(ttl))}
	var tok string
	err = s.tx(ctx, func(tx *gorm.DB) error {
		var n int64
		if err := tx.Model(&User{}).Where("email = ?", e).Count(&n).Error; err != nil {
			return err
		}
		if n > 0 {
			return ErrConflict
		}
		if err := tx.Exec("UPDATE invitations SET revoked_at = ? WHERE email = ? AND accepted_at IS NULL AND revoked_at IS NULL",
			dbNow(), e).Error; err != nil {
			return err
		}
		if err := tx.Create(inv).Error; err != nil {
			return err
		}
		tok = sign(inv.ID)
		inv.TokenHash = hashLink(tok)
		return tx.Exec("UPDATE invitations SET token_hash = ? WHERE id = ?", inv.TokenHash, inv.ID).Error
	})
	if err != nil {
		return nil, "", fmt.Errorf("models: invite %s: %w", e, err)
	}
	return inv, tok, nil
}

// PendingInvitations returns the invitations not accepted, withdrawn or
// expired, newest first.
func (s *Store) PendingInvitations(ctx context.Context) ([]Invitation, error) {
	var all []Invitation
	if err := s.conn(ctx).Where("accepted_at IS NULL AND revoked_at IS NULL").Order("id DESC").Find(&all).Error; err != nil {
		return nil, fmt.Errorf("models: pending invitations: %w", err)
	}
	out := all[:0]
	t := now()
	for _, i := range all {
		if i.Pending(t) {
			out = append(out, i)
		}
	}
	return out, nil
}

// RevokeInvitation withdraws a pending invitation; its link stops working.
func (s *Store) RevokeInvitation(ctx context.Context, id int64) (*Invitation, error) {
	var inv Invitation
	err := s.tx(ctx, func(tx *gorm.DB) error {
		if err := tx.First(&inv, id).Error; err != nil {
			return notFound(err)
		}
		res := tx.Exec("UPDATE invitations SET revoked_at = ? WHERE id = ? AND accepted_at IS NULL AND revoked_at IS NULL", dbNow(), id)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrLinkUsed
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("models: revoke invitation %d: %w", id, err)
	}
	return &inv, nil
}

// Invitation returns the invitation a link names, checked: ErrNotFound
// when tok is not the link issued for it, ErrLinkUsed, ErrLinkRevoked or
// ErrLinkExpired when it can no longer be accepted.
func (s *Store) Invitation(ctx context.Context, id int64, tok string) (*Invitation, error) {
	inv, err := invitationFor(s.conn(ctx), id, tok)
	if err != nil {
		return nil, fmt.Errorf("models: invitation %d: %w", id, err)
	}
	return inv, nil
}

func invitationFor(db *gorm.DB, id int64, tok string) (*Invitation, error) {
	var inv Invitation
	if err := db.First(&inv, id).Error; err != nil {
		return nil, notFound(err)
	}
	switch {
	case !sameHash(inv.TokenHash, hashLink(tok)):
		return nil, ErrNotFound
	case inv.AcceptedAt != nil:
		return &inv, ErrLinkUsed
	case inv.RevokedAt != nil:
		return &inv, ErrLinkRevoked
	case !now().Before(inv.ExpiresAt):
		return &inv, ErrLinkExpired
	}
	return &inv, nil
}

// AcceptInvitation creates the invited user with name and password and
// marks the invitation used, in one transaction: a link works once.
func (s *Store) AcceptInvitation(ctx context.Context, id int64, tok, name, password string) (*User, error) {
	var u *User
	err := s.tx(ctx, func(tx *gorm.DB) error {
		inv, err := invitationFor(tx, id, tok)
		if err != nil {
			return err
		}
		res := tx.Exec("UPDATE invitations SET accepted_at = ? WHERE id = ? AND accepted_at IS NULL AND revoked_at IS NULL", dbNow(), id)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrLinkUsed
		}
		if u, err = s.withDB(tx).CreateUser(ctx, inv.Email, name, password, inv.Role); err != nil {
			return err
		}
		return tx.Exec("UPDATE invitations SET user_id = ? WHERE id = ?", u.ID, id).Error
	})
	if err != nil {
		return nil, fmt.Errorf("models: accept invitation %d: %w", id, err)
	}
	return u, nil
}

// PasswordReset is a password reset link issued to a user.
type PasswordReset struct {
	ID        int64
	UserID    int64
	TokenHash string
	IP        string
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    *time.Time
}

// CreatePasswordReset issues a reset link for a user valid for ttl and
// returns its token (signed by sign). Earlier unused links of the user
// stop working: only the newest one does.
func (s *Store) CreatePasswordReset(ctx context.Context, userID int64, ip string, ttl time.Duration, sign LinkSigner) (string, error) {
	r := &PasswordReset{UserID: userID, IP: ip, CreatedAt: dbNow(), ExpiresAt: dbTime(now().Add(ttl))}
	var tok string
	err := s.tx(ctx, func(tx *gorm.DB) error {
		if err := tx.Exec("UPDATE password_resets SET used_at = ? WHERE user_id = ? AND used_at IS NULL", dbNow(), userID).Error; err != nil {
			return err
		}
		if err := tx.Create(r).Error; err != nil {
			return err
		}
		tok = sign(r.ID)
		return tx.Exec("UPDATE password_resets SET token_hash = ? WHERE id = ?", hashLink(tok), r.ID).Error
	})
	if err != nil {
		return "", fmt.Errorf("models: password reset for %d: %w", userID, err)
	}
	return tok, nil
}

func resetFor(db *gorm.DB, id int64, tok string) (*PasswordReset, error) {
	var r PasswordReset
	if err := db.First(&r, id).Error; err != nil {
		return nil, notFound(err)
	}
	switch {
	case !sameHash(r.TokenHash, hashLink(tok)):
		return nil, ErrNotFound
	case r.UsedAt != nil:
		return &r, ErrLinkUsed
	case !now().Before(r.ExpiresAt):
		return &r, ErrLinkExpired
	}
	return &r, nil
}

// PasswordResetUser returns the user a reset link is for, checked as
// Invitation checks an invitation (ErrNotFound, ErrLinkUsed,
// ErrLinkExpired).
func (s *Store) PasswordResetUser(ctx context.Context, id int64, tok string) (*User, error) {
	r, err := resetFor(s.conn(ctx), id, tok)
	if err != nil {
		return nil, fmt.Errorf("models: password reset %d: %w", id, err)
	}
	return s.User(ctx, r.UserID)
}

// ResetPassword sets a new password through a reset link, marks the link
// used and ends the user's sessions (SessionGen), in one transaction.
func (s *Store) ResetPassword(ctx context.Context, id int64, tok, password string) (*User, error) {
	if len(password) < MinPasswordLen || len(password) > 72 {
		return nil, fmt.Errorf("models: reset password: %w", &ValidationError{map[string]string{"password": fmt.Sprintf("Use %d to 72 characters.", MinPasswordLen)}})
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcryptCost)
	if err != nil {
		return nil, fmt.Errorf("models: hash password: %w", err)
	}
	var u User
	err = s.tx(ctx, func(tx *gorm.DB) error {
		r, err := resetFor(tx, id, tok)
		if err != nil {
			return err
		}
		res := tx.Exec("UPDATE password_resets SET used_at = ? WHERE user_id = ? AND used_at IS NULL", dbNow(), r.UserID)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrLinkUsed
		}
		if err := tx.Exec("UPDATE users SET password_hash = ?, session_gen = session_gen + 1, updated_at = ? WHERE id = ?",
			string(hash), dbNow(), r.UserID).Error; err != nil {
			return err
		}
		return notFound(tx.First(&u, r.UserID).Error)
	})
	if err != nil {
		return nil, fmt.Errorf("models: reset password %d: %w", id, err)
	}
	return &u, nil
}

// RecoveryCodeCount is how many recovery codes a user gets.
const RecoveryCodeCount = 10

// RecoveryCode is one of a user's one-time codes, stored hashed.
type RecoveryCode struct {
	ID        int64
	UserID    int64
	CodeHash  string
	CreatedAt time.Time
	UsedAt    *time.Time
}

// normalizeRecoveryCode makes a typed code comparable: case, spaces and
// dashes do not matter.
func normalizeRecoveryCode(code string) string {
	return strings.NewReplacer("-", "", " ", "").Replace(strings.ToLower(strings.TrimSpace(code)))
}

const recoveryAlphabet = "abcdefghjkmnpqrstuvwxyz23456789" // no 0/o, 1/l/i

func newRecoveryCode() (string, error) {
	b := make([]byte, 10)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	out := make([]byte, 0, 11)
	for i, c := range b {
		if i == 5 {
			out = append(out, '-')
		}
		out = append(out, recoveryAlphabet[int(c)%len(recoveryAlphabet)])
	}
	return string(out), nil
}

// SetPendingTOTP stores a new TOTP secret for a user who is setting up
// two-factor sign-in, sealed under serverSecret. It is not in force until
// EnableTOTP; a user who has it on already must turn it off first.
func (s *Store) SetPendingTOTP(ctx context.Context, userID int64, totpSecret, serverSecret string) error {
	sealed, err := seal(serverSecret, []byte(totpSecret))
	if err != nil {
		return fmt.Errorf("models: seal totp secret: %w", err)
	}
	res := s.conn(ctx).Exec("UPDATE users SET totp_secret = ?, totp_last_step = 0, updated_at = ? WHERE id = ? AND totp_enabled_at IS NULL",
		sealed, dbNow(), userID)
	if res.Error != nil {
		return fmt.Errorf("models: pending totp of %d: %w", userID, res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("models: pending totp of %d: %w", userID, ErrConflict)
	}
	return nil
}

// TOTPSecret opens a user's TOTP secret (pending or enabled); "" when
// there is none.
func (s *Store) TOTPSecret(u *User, serverSecret string) (string, error) {
	if u.TOTPSecret == "" {
		return "", nil
	}
	plain, err := open(serverSecret, u.TOTPSecret)
	if err != nil {
		return "", fmt.Errorf("models: totp secret of %d: the server secret changed since it was set: %w", u.ID, err)
	}
	return string(plain), nil
}

// EnableTOTP puts a user's pending TOTP secret in force, records step as
// the last code used, and replaces their recovery codes with new ones,
// which it returns in plain text (shown once; only hashes are kept).
func (s *Store) EnableTOTP(ctx context.Context, userID, step int64) ([]string, error) {
	var codes []string
	err := s.tx(ctx, func(tx *gorm.DB) error {
		res := tx.Exec("UPDATE users SET totp_enabled_at = ?, totp_last_step = ?, updated_at = ? WHERE id = ? AND totp_secret <> '' AND totp_enabled_at IS NULL",
			dbNow(), step, dbNow(), userID)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrConflict
		}
		var err error
		codes, err = replaceRecoveryCodes(tx, userID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("models: enable totp of %d: %w", userID, err)
	}
	return codes, nil
}

// NewRecoveryCodes replaces a user's recovery codes with new ones.
func (s *Store) NewRecoveryCodes(ctx context.Context, userID int64) ([]string, error) {
	var codes []string
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var err error
		codes, err = replaceRecoveryCodes(tx, userID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("models: recovery codes of %d: %w", userID, err)
	}
	return codes, nil
}

func replaceRecoveryCodes(tx *gorm.DB, userID int64) ([]string, error) {
	if err := tx.Exec("DELETE FROM recovery_codes WHERE user_id = ?", userID).Error; err != nil {
		return nil, err
	}
	codes := make([]string, RecoveryCodeCount)
	rows := make([]RecoveryCode, RecoveryCodeCount)
	for i := range codes {
		c, err := newRecoveryCode()
		if err != nil {
			return nil, err
		}
		codes[i] = c
		rows[i] = RecoveryCode{UserID: userID, CodeHash: hashLink(normalizeRecoveryCode(c)), CreatedAt: dbNow()}
	}
	if err := tx.Create(&rows).Error; err != nil {
		return nil, err
	}
	return codes, nil
}

// RecoveryCodesLeft counts a user's unused recovery codes.
func (s *Store) RecoveryCodesLeft(ctx context.Context, userID int64) (int64, error) {
	var n int64
	if err := s.conn(ctx).Model(&RecoveryCode{}).Where("user_id = ? AND used_at IS NULL", userID).Count(&n).Error; err != nil {
		return 0, fmt.Errorf("models: recovery codes of %d: %w", userID, err)
	}
	return n, nil
}

// ErrBadCode is returned for a two-factor or recovery code that does not
// match, or was used already.
var ErrBadCode = errors.New("wrong or used code")

// UseRecoveryCode spends one of a user's recovery codes: ErrBadCode when
// it is not one of theirs or was used before.
func (s *Store) UseRecoveryCode(ctx context.Context, userID int64, code string) error {
	h := hashLink(normalizeRecoveryCode(code))
	res := s.conn(ctx).Exec("UPDATE recovery_codes SET used_at = ? WHERE user_id = ? AND code_hash = ? AND used_at IS NULL", dbNow(), userID, h)
	if res.Error != nil {
		return fmt.Errorf("models: recovery code of %d: %w", userID, res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrBadCode
	}
	return nil
}

// UseTOTPStep records step as the newest TOTP code a user signed in with:
// ErrBadCode when that step or a later one was used already, so a code
// seen over someone's shoulder cannot be replayed.
func (s *Store) UseTOTPStep(ctx context.Context, userID, step int64) error {
	res := s.conn(ctx).Exec("UPDATE users SET totp_last_step = ? WHERE id = ? AND totp_last_step < ? AND totp_enabled_at IS NOT NULL", step, userID, step)
	if res.Error != nil {
		return fmt.Errorf("models: totp step of %d: %w", userID, res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrBadCode
	}
	return nil
}

// DisableTOTP turns two-factor sign-in off for a user (themselves, or an
// admin resetting it) and deletes their recovery codes.
func (s *Store) DisableTOTP(ctx context.Context, userID int64) error {
	err := s.tx(ctx, func(tx *gorm.DB) error {
		res := tx.Exec("UPDATE users SET totp_secret = '', totp_enabled_at = NULL, totp_last_step = 0, updated_at = ? WHERE id = ?", dbNow(), userID)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		return tx.Exec("DELETE FROM recovery_codes WHERE user_id = ?", userID).Error
	})
	if err != nil {
		return fmt.Errorf("models: disable totp of %d: %w", userID, err)
	}
	return nil
}
