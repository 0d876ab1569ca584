package models

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"
	"gorm.io/gorm"
)

// Roles, from most to least powerful.
const (
	RoleAdmin    = "admin"
	RoleMarketer = "marketer"
	RoleViewer   = "viewer"
)

// Roles lists every role in order of power.
var Roles = []string{RoleAdmin, RoleMarketer, RoleViewer}

// RoleAtLeast reports whether role has at least the power of min.
func RoleAtLeast(role, min string) bool {
	return roleRank[role] >= roleRank[min] && roleRank[min] > 0
}

var roleRank = map[string]int{RoleAdmin: 3, RoleMarketer: 2, RoleViewer: 1}

// User is a person who signs in to the dashboard.
type User struct {
	ID           int64
	Email        string
	Name         string
	PasswordHash string
	Role         string
	CreatedAt    time.Time
	UpdatedAt    time.Time
	// TOTPSecret is the sealed TOTP secret ("" when none); it is in force
	// once TOTPEnabledAt is set (see EnableTOTP).
	TOTPSecret    string     `gorm:"column:totp_secret"`
	TOTPEnabledAt *time.Time `gorm:"column:totp_enabled_at"`
	TOTPLastStep  int64      `gorm:"column:totp_last_step"`
	// SessionGen is kept in each session at sign-in; raising it ends every
	// session of the user.
	SessionGen int64
}

// TwoFactor reports whether the user signs in with a second factor.
func (u *User) TwoFactor() bool { return u.TOTPEnabledAt != nil }

// ErrBadCredentials is returned for an unknown email or a wrong password,
// deliberately without saying which.
var ErrBadCredentials = errors.New("wrong email or password")

// MinPasswordLen is the shortest password Herald accepts.
const MinPasswordLen = 10

// ValidateNewUser checks the fields of a user being created.
func ValidateNewUser(email, password, role string) map[string]string {
	errs := map[string]string{}
	if _, err := NormalizeEmail(email); err != nil {
		errs["email"] = err.Error()
	}
	if len(password) < MinPasswordLen {
		errs["password"] = fmt.Sprintf("Use at least %d characters.", MinPasswordLen)
	} else if len(password) > 72 {
		errs["password"] = "Use at most 72 characters."
	}
	if !RoleAtLeast(role, RoleViewer) {
		errs["role"] = "Choose admin, marketer or viewer."
	}
	return errs
}

// bcryptCost is lowered by tests.
var bcryptCost = bcrypt.DefaultCost

// CreateUser stores a user with a bcrypt hash of password.
func (s *Store) CreateUser(ctx context.Context, email, name, password, role string) (*User, error) {
	email, err := NormalizeEmail(email)
	if err != nil {
		return nil, err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcryptCost)
	if err != nil {
		return nil, fmt.Errorf("models: hash password: %w", err)
	}
	u := &User{Email: strings.ToLower(email), Name: name, PasswordHash: string(hash), Role: role, CreatedAt: dbNow(), UpdatedAt: dbNow()}
	var n int64
	if err := s.conn(ctx).Model(&User{}).Where("email = ?", u.Email).Count(&n).Error; err != nil {
		return nil, fmt.Errorf("models: create user: %w", err)
	}
	if n > 0 {
		return nil, fmt.Errorf("models: create user %s: %w", u.Email, ErrConflict)
	}
	if err := s.conn(ctx).Create(u).Error; err != nil {
		return nil, fmt.Errorf("models: create user: %w", err)
	}
	return u, nil
}

// CreateFirstAdmin creates the first admin, only while there are no users:
// the setup form cannot be replayed once someone has an account.
func (s *Store) CreateFirstAdmin(ctx context.Context, email, name, password string) (*User, error) {
	var u *User
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var n int64
		if err := tx.Model(&User{}).Count(&n).Error; err != nil {
			return err
		}
		if n > 0 {
			return ErrConflict
		}
		var err error
		u, err = s.withDB(tx).CreateUser(ctx, email, name, password, RoleAdmin)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("models: first admin: %w", err)
	}
	return u, nil
}

// withDB returns a copy of the store bound to tx.
func (s *Store) withDB(tx *gorm.DB) *Store {
	c := *s
	c.db = tx
	return &c
}

// UserCount returns how many users exist.
func (s *Store) UserCount(ctx context.Context) (int64, error) {
	var n int64
	if err := s.conn(ctx).Model(&User{}).Count(&n).Error; err != nil {
		return 0, fmt.Errorf("models: count users: %w", err)
	}
	return n, nil
}

// Authenticate returns the user whose email and password match.
func (s *Store) Authenticate(ctx context.Context, email, password string) (*User, error) {
	var u User
	err := s.conn(ctx).Where("email = ?", strings.ToLower(strings.TrimSpace(email))).First(&u).Error
	if err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			// Spend the same time as a real check so timing does not reveal
			// which emails have accounts.
			_ = bcrypt.CompareHashAndPassword(dummyHash, []byte(password))
			return nil, ErrBadCredentials
		}
		return nil, fmt.Errorf("models: authenticate: %w", err)
	}
	if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(password)) != nil {
		return nil, ErrBadCredentials
	}
	return &u, nil
}

var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("not a real password"), bcrypt.DefaultCost)

// User returns one user.
func (s *Store) User(ctx context.Context, id int64) (*User, error) {
	var u User
	if err := s.conn(ctx).First(&u, id).Error; err != nil {
		return nil, fmt.Errorf("models: user %d: %w", id, notFound(err))
	}
	return &u, nil
}

// UserByEmail returns the user with that email (any case), or
// ErrNotFound.
func (s *Store) UserByEmail(ctx context.Context, email string) (*User, error) {
	var u []User
	e := strings.ToLower(strings.TrimSpace(email))
	if err := s.conn(ctx).Where("email = ?", e).Limit(1).Find(&u).Error; err != nil {
		return nil, fmt.Errorf("models: user %s: %w", e, err)
	}
	if len(u) == 0 {
		return nil, fmt.Errorf("models: user %s: %w", e, ErrNotFound)
	}
	return &u[0], nil
}

// Users returns every user by email.
func (s *Store) Users(ctx context.Context) ([]User, error) {
	var out []User
	if err := s.conn(ctx).Order("email").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("models: users: %w", err)
	}
	return out, nil
}

// ErrLastAdmin is returned when a change would leave no admin.
var ErrLastAdmin = errors.New("Herald needs at least one admin")

// SetUserRole changes a user's role, refusing to demote the last admin.
func (s *Store) SetUserRole(ctx context.Context, id int64, role string) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		if role != RoleAdmin {
			if err := lastAdminGuard(tx, id); err != nil {
				return err
			}
		}
		res := tx.Model(&User{}).Where("id = ?", id).Updates(map[string]any{"role": role, "updated_at": dbNow()})
		if res.Error != nil {
			return fmt.Errorf("models: set role of %d: %w", id, res.Error)
		}
		if res.RowsAffected == 0 {
			return fmt.Errorf("models: user %d: %w", id, ErrNotFound)
		}
		return nil
	})
}

// DeleteUser removes a user and their API tokens, refusing the last admin.
func (s *Store) DeleteUser(ctx context.Context, id int64) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		if err := lastAdminGuard(tx, id); err != nil {
			return err
		}
		for _, q := range []string{"DELETE FROM api_tokens WHERE user_id = ?", "DELETE FROM recovery_codes WHERE user_id = ?",
			"DELETE FROM password_resets WHERE user_id = ?"} {
			if err := tx.Exec(q, id).Error; err != nil {
				return err
			}
		}
		res := tx.Exec("DELETE FROM users WHERE id = ?", id)
		if res.Error != nil {
			return fmt.Errorf("models: delete user %d: %w", id, res.Error)
		}
		if res.RowsAffected == 0 {
			return fmt.Errorf("models: user %d: %w", id, ErrNotFound)
		}
		return nil
	})
}

func lastAdminGuard(tx *gorm.DB, id int64) error {
	var admins []int64
	if err := tx.Model(&User{}).Where("role = ?", RoleAdmin).Pluck("id", &admins).Error; err != nil {
		return err
	}
	if len(admins) == 1 && admins[0] == id {
		return ErrLastAdmin
	}
	return nil
}

// APIToken is a bearer token for the JSON API. Only its hash is stored.
type APIToken struct {
	ID         int64
	UserID     int64
	Name       string
	Prefix     string
	TokenHash  string
	CreatedAt  time.Time
	LastUsedAt *time.Time
}

func hashToken(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

// CreateAPIToken makes a token for a user and returns its plain text, which
// is shown once and never stored.
func (s *Store) CreateAPIToken(ctx context.Context, userID int64, name string) (string, *APIToken, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", nil, err
	}
	plain := "hrld_" + base64.RawURLEncoding.EncodeToString(b)
	t := &APIToken{UserID: userID, Name: name, Prefix: plain[:12], TokenHash: hashToken(plain), CreatedAt: dbNow()}
	if err := s.conn(ctx).Create(t).Error; err != nil {
		return "", nil, fmt.Errorf("models: create api token: %w", err)
	}
	return plain, t, nil
}

// UserByAPIToken returns the owner of a token, or ErrNotFound.
func (s *Store) UserByAPIToken(ctx context.Context, plain string) (*User, error) {
	var t APIToken
	if err := s.conn(ctx).Where("token_hash = ?", hashToken(plain)).First(&t).Error; err != nil {
		return nil, fmt.Errorf("models: api token: %w", notFound(err))
	}
	// Record use at most once a minute: an API client's every GET must
	// not become a database write.
	if t.LastUsedAt == nil || now().Sub(*t.LastUsedAt) > time.Minute {
		s.conn(ctx).Model(&APIToken{}).Where("id = ?", t.ID).Update("last_used_at", dbNow())
	}
	return s.User(ctx, t.UserID)
}

// APITokens returns a user's tokens (without their secrets).
func (s *Store) APITokens(ctx context.Context, userID int64) ([]APIToken, error) {
	var out []APIToken
	if err := s.conn(ctx).Where("user_id = ?", userID).Order("id").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("models: api tokens: %w", err)
	}
	return out, nil
}

// DeleteAPIToken revokes one of a user's tokens.
func (s *Store) DeleteAPIToken(ctx context.Context, userID, id int64) error {
	res := s.conn(ctx).Exec("DELETE FROM api_tokens WHERE id = ? AND user_id = ?", id, userID)
	if res.Error != nil {
		return fmt.Errorf("models: delete api token: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("models: api token %d: %w", id, ErrNotFound)
	}
	return nil
}
