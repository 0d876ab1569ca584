package models

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"
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
	// RequireTLS: mail to this destination goes only over TLS with a
	// certificate valid for the MX host, else it is deferred; false keeps
	// TLS opportunistic (unless the domain's MTA-STS policy enforces it).
	RequireTLS bool `gorm:"column:require_tls"`
	UpdatedAt  time.Time
}

// DomainList splits Domains into lower-cased names.
func (r *DomainRule) DomainList() []string { return splitList(r.Domains) }

// MXSuffixList splits MXSuffixes into lower-cased suffixes.
func (r *DomainRule) MXSuffixList() []string { return splitList(r.MXSuffixes) }

func splitList(s string) []string {
	return strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\t' })
}

// Validate normalises the rule (trimmed name, lower-case space-separated
// lists) and returns a field→message map, empty when the rule may be
// saved.
func (r *DomainRule) Validate() map[string]string {
	errs := map[string]string{}
	r.Name = strings.TrimSpace(r.Name)
	switch {
	case r.Name == "":
		errs["name"] = "Give the rule a name, e.g. google."
	case len(r.Name) > 60:
		errs["name"] = "Keep the name under 60 characters."
	}
	check := func(field, what, raw string) string {
		var out []string
		for _, d := range splitList(raw) {
			n, problem := normalizeHostname(strings.TrimPrefix(d, "."), false)
			if problem != "" {
				errs[field] = what + ": " + problem
				return raw
			}
			out = append(out, n)
		}
		return strings.Join(out, " ")
	}
	r.Domains = check("domains", "Recipient domains", r.Domains)
	r.MXSuffixes = check("mx_suffixes", "MX suffixes", r.MXSuffixes)
	if r.IsDefault && (r.Domains != "" || r.MXSuffixes != "") {
		errs["domains"] = "The default rule covers every destination no other rule matches; it takes no domains or MX suffixes."
	}
	if !r.IsDefault && len(r.DomainList()) == 0 && len(r.MXSuffixList()) == 0 && errs["domains"] == "" && errs["mx_suffixes"] == "" {
		errs["domains"] = "List at least one recipient domain (gmail.com) or MX suffix (google.com)."
	}
	nonNeg := func(field, what string, v float64, most float64) {
		if v < 0 || v > most {
			errs[field] = fmt.Sprintf("%s must be between 0 (unlimited) and %g.", what, most)
		}
	}
	nonNeg("per_second", "Messages per second", r.PerSecond, 100000)
	nonNeg("per_minute", "Messages per minute", float64(r.PerMinute), 1e7)
	nonNeg("per_hour", "Messages per hour", float64(r.PerHour), 1e8)
	nonNeg("max_connections", "Connections", float64(r.MaxConnections), 1000)
	nonNeg("max_per_connection", "Messages per connection", float64(r.MaxPerConnection), 100000)
	if r.PerSecond > 0 && r.PerMinute > 0 && float64(r.PerMinute) < r.PerSecond {
		errs["per_minute"] = "The per-minute limit is below the per-second one; raise it or set it to 0."
	}
	if r.PerMinute > 0 && r.PerHour > 0 && r.PerHour < r.PerMinute {
		errs["per_hour"] = "The per-hour limit is below the per-minute one; raise it or set it to 0."
	}
	switch {
	case r.BackoffMinSeconds < 1 || r.BackoffMinSeconds > 86400:
		errs["backoff_min_seconds"] = "The first backoff is between 1 second and 86400 (a day)."
	case r.BackoffMaxSeconds < r.BackoffMinSeconds || r.BackoffMaxSeconds > 7*86400:
		errs["backoff_max_seconds"] = "The longest backoff must be at least the first one and at most 604800 (a week)."
	}
	if r.Position < 0 || r.Position > 1000000 {
		errs["position"] = "The order is a number from 0 to 1000000; lower numbers are tried first."
	}
	return errs
}

// DomainRuleForm is a rule as typed into the dashboard.
type DomainRuleForm struct {
	Name, Domains, MXSuffixes, PerSecond, PerMinute, PerHour, MaxConnections,
	MaxPerConnection, BackoffMinSeconds, BackoffMaxSeconds, Position string
	RequireTLS bool // the "require TLS with a valid certificate" box
}

// Rule parses the form into r (ID and IsDefault are the caller's) and
// validates it; the map is empty when the rule may be saved.
func (f DomainRuleForm) Rule(r *DomainRule) map[string]string {
	errs := map[string]string{}
	num := func(field, raw string, dst *int) {
		raw = strings.TrimSpace(raw)
		if raw == "" || isUnlimited(raw) && limitFields[field] {
			*dst = 0
			return
		}
		n, err := strconv.Atoi(raw)
		if err != nil {
			errs[field] = fmt.Sprintf("%q is not a whole number.", raw)
		}
		*dst = n
	}
	r.Name, r.Domains, r.MXSuffixes, r.RequireTLS = f.Name, f.Domains, f.MXSuffixes, f.RequireTLS
	r.PerSecond = 0
	if raw := strings.TrimSpace(f.PerSecond); raw != "" && !isUnlimited(raw) {
		v, err := strconv.ParseFloat(raw, 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			errs["per_second"] = fmt.Sprintf("%q is not a number (e.g. 20 or 0.5).", raw)
		}
		r.PerSecond = v
	}
	num("per_minute", f.PerMinute, &r.PerMinute)
	num("per_hour", f.PerHour, &r.PerHour)
	num("max_connections", f.MaxConnections, &r.MaxConnections)
	num("max_per_connection", f.MaxPerConnection, &r.MaxPerConnection)
	num("backoff_min_seconds", f.BackoffMinSeconds, &r.BackoffMinSeconds)
	num("backoff_max_seconds", f.BackoffMaxSeconds, &r.BackoffMaxSeconds)
	num("position", f.Position, &r.Position)
	for k, v := range r.Validate() {
		if _, ok := errs[k]; !ok {
			errs[k] = v
		}
	}
	return errs
}

// limitFields are the fields where 0 means no limit, so where the rules
// table shows ∞ and the form takes ∞ back.
var limitFields = map[string]bool{"per_second": true, "per_minute": true, "per_hour": true, "max_connections": true, "max_per_connection": true}

// isUnlimited reports whether raw is one of the ways to write "no limit"
// that the rules table shows or a person types.
func isUnlimited(raw string) bool {
	switch strings.ToLower(raw) {
	case "∞", "inf", "infinity", "unlimited", "none", "-", "—":
		return true
	}
	return false
}

// DefaultDomainRules are the rules a new installation starts with (the
// same as migration 00002 seeds) and "reset to defaults" restores.
var DefaultDomainRules = []DomainRule{
	{Name: "google", Domains: "gmail.com googlemail.com", MXSuffixes: "google.com googlemail.com", PerSecond: 20, PerMinute: 600, PerHour: 20000, MaxConnections: 10, MaxPerConnection: 100, BackoffMinSeconds: 300, BackoffMaxSeconds: 3600, Position: 10},
	{Name: "yahoo", Domains: "yahoo.com ymail.com rocketmail.com aol.com yahoo.co.uk yahoo.fr", MXSuffixes: "yahoodns.net", PerSecond: 10, PerMinute: 300, PerHour: 10000, MaxConnections: 5, MaxPerConnection: 50, BackoffMinSeconds: 600, BackoffMaxSeconds: 7200, Position: 20},
	{Name: "microsoft", Domains: "outlook.com hotmail.com live.com msn.com hotmail.co.uk hotmail.fr", MXSuffixes: "outlook.com protection.outlook.com", PerSecond: 10, PerMinute: 300, PerHour: 10000, MaxConnections: 5, MaxPerConnection: 50, BackoffMinSeconds: 600, BackoffMaxSeconds: 7200, Position: 30},
	{Name: "apple", Domains: "icloud.com me.com mac.com", MXSuffixes: "icloud.com apple.com", PerSecond: 10, PerMinute: 300, PerHour: 10000, MaxConnections: 5, MaxPerConnection: 50, BackoffMinSeconds: 300, BackoffMaxSeconds: 3600, Position: 40},
	{Name: "default", PerSecond: 5, PerMinute: 200, PerHour: 5000, MaxConnections: 3, MaxPerConnection: 100, BackoffMinSeconds: 60, BackoffMaxSeconds: 3600, Position: 1000, IsDefault: true},
}

// DomainRule returns one rule.
func (s *Store) DomainRule(ctx context.Context, id int64) (*DomainRule, error) {
	var r DomainRule
	if err := s.conn(ctx).First(&r, id).Error; err != nil {
		return nil, fmt.Errorf("models: domain rule %d: %w", id, notFound(err))
	}
	return &r, nil
}

// ResetDomainRules replaces every rule with DefaultDomainRules.
func (s *Store) ResetDomainRules(ctx context.Context) error {
	err := s.tx(ctx, func(tx *gorm.DB) error {
		if err := tx.Exec("DELETE FROM domain_rules").Error; err != nil {
			return err
		}
		for _, r := range DefaultDomainRules {
			r.UpdatedAt = dbNow()
			if err := tx.Create(&r).Error; err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("models: reset domain rules: %w", err)
	}
	return nil
}

func ruleNameFree(tx *gorm.DB, name string, except int64) error {
	var n int64
	if err := tx.Model(&DomainRule{}).Where("name = ? AND id <> ?", name, except).Count(&n).Error; err != nil {
		return err
	}
	if n > 0 {
		return ErrConflict
	}
	return nil
}

// DomainRules returns every rule in matching order.
func (s *Store) DomainRules(ctx context.Context) ([]DomainRule, error) {
	var out []DomainRule
	if err := s.conn(ctx).Order("position, id").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("models: domain rules: %w", err)
	}
	return out, nil
}

// CreateDomainRule stores a new rule; ErrConflict when the name is taken.
// There is one default rule: a new rule never is.
func (s *Store) CreateDomainRule(ctx context.Context, r *DomainRule) error {
	r.UpdatedAt, r.IsDefault = dbNow(), false
	err := s.tx(ctx, func(tx *gorm.DB) error {
		if err := ruleNameFree(tx, r.Name, 0); err != nil {
			return err
		}
		return tx.Create(r).Error
	})
	if err != nil {
		return fmt.Errorf("models: create domain rule %q: %w", r.Name, err)
	}
	return nil
}

// UpdateDomainRule saves a rule's matches and limits. Running mailers pick
// the change up within their rule refresh interval.
func (s *Store) UpdateDomainRule(ctx context.Context, r *DomainRule) error {
	var res *gorm.DB
	err := s.tx(ctx, func(tx *gorm.DB) error {
		if err := ruleNameFree(tx, r.Name, r.ID); err != nil {
			return err
		}
		res = tx.Model(&DomainRule{}).Where("id = ?", r.ID).Updates(map[string]any{
			"name": r.Name, "domains": r.Domains, "mx_suffixes": r.MXSuffixes, "per_second": r.PerSecond,
			"per_minute": r.PerMinute, "per_hour": r.PerHour, "max_connections": r.MaxConnections,
			"max_per_connection": r.MaxPerConnection, "backoff_min_seconds": r.BackoffMinSeconds,
			"backoff_max_seconds": r.BackoffMaxSeconds, "position": r.Position, "require_tls": r.RequireTLS, "updated_at": dbNow(),
		})
		if res.Error == nil && res.RowsAffected == 0 {
			return ErrNotFound
		}
		return res.Error
	})
	if err != nil {
		return fmt.Errorf("models: update domain rule %d: %w", r.ID, err)
	}
	return nil
}

// DeleteDomainRule removes a rule; the default rule cannot be removed.
func (s *Store) DeleteDomainRule(ctx context.Context, id int64) error {
	res := s.conn(ctx).Exec("DELETE FROM domain_rules WHERE id = ? AND is_default = ?", id, false)
	if res.Error != nil {
		return fmt.Errorf("models: delete domain rule %d: %w", id, res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("models: delete domain rule %d: %w", id, ErrNotFound)
	}
	return nil
}

// Form is the rule as the dashboard's form shows it.
func (r *DomainRule) Form() DomainRuleForm {
	i := strconv.Itoa
	return DomainRuleForm{
		Name: r.Name, Domains: r.Domains, MXSuffixes: r.MXSuffixes,
		PerSecond: strconv.FormatFloat(r.PerSecond, 'f', -1, 64), PerMinute: i(r.PerMinute), PerHour: i(r.PerHour),
		MaxConnections: i(r.MaxConnections), MaxPerConnection: i(r.MaxPerConnection),
		BackoffMinSeconds: i(r.BackoffMinSeconds), BackoffMaxSeconds: i(r.BackoffMaxSeconds), Position: i(r.Position),
		RequireTLS: r.RequireTLS,
	}
}
