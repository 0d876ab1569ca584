package models

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// DomainRule shapes traffic to one destination. It matches a recipient
// domain exactly (Domains) or the primary MX host by suffix (MXSuffixes);
// rules are tried by Position and the default rule covers the rest. Zero
// limits mean unlimited.
type DomainRule struct {
	ID                int64
	Name              string
	Domains           string // space- or comma-separated recipient domains
	MXSuffixes        string `gorm:"column:mx_suffixes"` // space- or comma-separated MX host suffixes
	PerSecond         float64
	PerMinute         int
	PerHour           int
	MaxConnections    int
	MaxPerConnection  int
	BackoffMinSeconds int
	BackoffMaxSeconds int
	Position          int
	IsDefault         bool
	UpdatedAt         time.Time
}

// DomainList splits Domains into lower-cased names.
func (r *DomainRule) DomainList() []string { return splitList(r.Domains) }

// MXSuffixList splits MXSuffixes into lower-cased suffixes.
func (r *DomainRule) MXSuffixList() []string { return splitList(r.MXSuffixes) }

func splitList(s string) []string {
	return strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\t' })
}

// Validate returns a field→message map, empty when the rule may be saved.
func (r *DomainRule) Validate() map[string]string {
	errs := map[string]string{}
	r.Name = strings.TrimSpace(r.Name)
	if r.Name == "" {
		errs["name"] = "Give the rule a name."
	}
	if r.PerSecond < 0 || r.PerMinute < 0 || r.PerHour < 0 || r.MaxConnections < 0 || r.MaxPerConnection < 0 {
		errs["per_second"] = "Limits cannot be negative (0 means unlimited)."
	}
	if r.BackoffMinSeconds < 0 || r.BackoffMaxSeconds < r.BackoffMinSeconds {
		errs["backoff_max_seconds"] = "The maximum backoff must be at least the minimum."
	}
	if !r.IsDefault && len(r.DomainList()) == 0 && len(r.MXSuffixList()) == 0 {
		errs["domains"] = "List at least one domain or MX suffix."
	}
	return errs
}

// DomainRules returns every rule in matching order.
func (s *Store) DomainRules(ctx context.Context) ([]DomainRule, error) {
	var out []DomainRule
	if err := s.db.WithContext(ctx).Order("position, id").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("models: domain rules: %w", err)
	}
	return out, nil
}

// CreateDomainRule stores a new rule.
func (s *Store) CreateDomainRule(ctx context.Context, r *DomainRule) error {
	r.UpdatedAt = dbNow()
	if err := s.db.WithContext(ctx).Create(r).Error; err != nil {
		return fmt.Errorf("models: create domain rule: %w", err)
	}
	return nil
}

// UpdateDomainRule saves a rule's matches and limits. Running mailers pick
// the change up within their rule refresh interval.
func (s *Store) UpdateDomainRule(ctx context.Context, r *DomainRule) error {
	res := s.db.WithContext(ctx).Model(&DomainRule{}).Where("id = ?", r.ID).Updates(map[string]any{
		"name": r.Name, "domains": r.Domains, "mx_suffixes": r.MXSuffixes, "per_second": r.PerSecond,
		"per_minute": r.PerMinute, "per_hour": r.PerHour, "max_connections": r.MaxConnections,
		"max_per_connection": r.MaxPerConnection, "backoff_min_seconds": r.BackoffMinSeconds,
		"backoff_max_seconds": r.BackoffMaxSeconds, "position": r.Position, "updated_at": dbNow(),
	})
	if res.Error != nil {
		return fmt.Errorf("models: update domain rule %d: %w", r.ID, res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("models: update domain rule %d: %w", r.ID, ErrNotFound)
	}
	return nil
}

// DeleteDomainRule removes a rule; the default rule cannot be removed.
func (s *Store) DeleteDomainRule(ctx context.Context, id int64) error {
	res := s.db.WithContext(ctx).Exec("DELETE FROM domain_rules WHERE id = ? AND is_default = ?", id, false)
	if res.Error != nil {
		return fmt.Errorf("models: delete domain rule %d: %w", id, res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("models: delete domain rule %d: %w", id, ErrNotFound)
	}
	return nil
}
