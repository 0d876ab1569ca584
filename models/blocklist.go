package models

import (
	"context"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"gorm.io/gorm"
)

// Kinds of blocklist, and of what is checked against one.
const (
	BlocklistIP     = "ip"     // asked reversed-octets.zone
	BlocklistDomain = "domain" // asked domain.zone
)

// States of one address or domain on one blocklist.
const (
	ListingClean  = "clean"  // the list does not hold it
	ListingListed = "listed" // the list holds it
	// ListingUnavailable: the list refused to answer (Spamhaus's
	// 127.255.255.x: a public resolver, the query limit): the check was
	// not possible, which says nothing about a listing.
	ListingUnavailable = "unavailable"
	ListingError       = "error" // the lookup failed (timeout, SERVFAIL)
)

// Blocklist is one DNS blocklist Herald checks against, editable by
// admins (the migration adds sensible defaults).
type Blocklist struct {
	ID   int64
	Zone string // e.g. zen.spamhaus.org
	Name string
	Kind string // BlocklistIP or BlocklistDomain
	// Codes are the list's answers and their meanings, one a line:
	// "127.0.0.2 what it means". A meaning that begins with "!" is the
	// list refusing the question.
	Codes     string
	DelistURL string
	Enabled   bool
	// PausePool: a pool with an address listed here stops sending until
	// the address is clean again.
	PausePool bool
	CreatedAt time.Time
}

// Meaning says what an answer of the list means, and whether it is a
// refusal (the check was not possible) rather than a listing. Answers in
// 127.255.255.0/24 are refusals on every list (Spamhaus's convention,
// which others follow); an answer outside 127.0.0.0/8 is not a blocklist
// answer at all (a resolver that rewrites NXDOMAIN), so a refusal too.
func (b Blocklist) Meaning(answer string) (meaning string, refusal bool) {
	for _, line := range strings.Split(b.Codes, "\n") {
		code, text, _ := strings.Cut(strings.TrimSpace(line), " ")
		if code != answer {
			continue
		}
		text = strings.TrimSpace(text)
		if rest, ok := strings.CutPrefix(text, "!"); ok {
			return strings.TrimSpace(rest), true
		}
		return text, false
	}
	a, err := netip.ParseAddr(answer)
	switch {
	case err != nil || !a.Is4() || a.As4()[0] != 127:
		return "the answer " + answer + " is not a blocklist code: the resolver may rewrite answers", true
	case netip.MustParsePrefix("127.255.255.0/24").Contains(a):
		return spamhausRefusal(answer), true
	}
	return "listed (code " + answer + ")", false
}

// spamhausRefusal explains Spamhaus's error answers.
func spamhausRefusal(answer string) string {
	switch answer {
	case "127.255.255.252":
		return "the query was malformed (a typo in the zone)"
	case "127.255.255.254":
		return "queries through a public or open resolver are refused"
	case "127.255.255.255":
		return "the query limit of this resolver is exceeded"
	}
	return "the list refused the query (" + answer + ")"
}

// Validate normalises the list and returns a field→message map, empty
// when it may be saved.
func (b *Blocklist) Validate() map[string]string {
	errs := map[string]string{}
	b.Name = strings.TrimSpace(b.Name)
	b.Zone = strings.Trim(strings.ToLower(strings.TrimSpace(b.Zone)), ".")
	if b.Name == "" || len(b.Name) > 100 {
		errs["name"] = "Give the list a name of up to 100 characters, e.g. Spamhaus ZEN."
	}
	if z, problem := normalizeHostname(b.Zone, false); problem != "" || !strings.Contains(z, ".") {
		errs["zone"] = "The zone is the list's DNS name, e.g. zen.spamhaus.org."
	} else {
		b.Zone = z
	}
	if b.Kind != BlocklistIP && b.Kind != BlocklistDomain {
		errs["kind"] = "Choose whether the list holds IP addresses or domains."
	}
	var lines []string
	for i, line := range strings.Split(strings.ReplaceAll(b.Codes, "\r", ""), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		code, text, _ := strings.Cut(line, " ")
		if a, err := netip.ParseAddr(code); err != nil || !a.Is4() || strings.TrimSpace(text) == "" {
			errs["codes"] = fmt.Sprintf("Line %d: write an answer and its meaning, e.g. “127.0.0.2 listed as a spam source”.", i+1)
			break
		}
		lines = append(lines, code+" "+strings.TrimSpace(text))
	}
	b.Codes = strings.Join(lines, "\n")
	b.DelistURL = strings.TrimSpace(b.DelistURL)
	if b.DelistURL != "" {
		if u, err := url.Parse(b.DelistURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs["delist_url"] = "The delisting page is a web address beginning with https://."
		}
	}
	return errs
}

// Blocklists returns every list by name.
func (s *Store) Blocklists(ctx context.Context) ([]Blocklist, error) {
	var out []Blocklist
	if err := s.conn(ctx).Order("name").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("models: blocklists: %w", err)
	}
	return out, nil
}

// Blocklist returns one list.
func (s *Store) Blocklist(ctx context.Context, id int64) (*Blocklist, error) {
	var b Blocklist
	if err := s.conn(ctx).First(&b, id).Error; err != nil {
		return nil, fmt.Errorf("models: blocklist %d: %w", id, notFound(err))
	}
	return &b, nil
}

// SaveBlocklist creates (ID 0) or updates a list with its audit entry;
// ErrConflict when another list has the zone.
func (s *Store) SaveBlocklist(ctx context.Context, b *Blocklist, audit AuditEntry) error {
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var n int64
		if err := tx.Model(&Blocklist{}).Where("zone = ? AND id <> ?", b.Zone, b.ID).Count(&n).Error; err != nil {
			return err
		}
		if n > 0 {
			return ErrConflict
		}
		if b.ID == 0 {
			b.CreatedAt = dbNow()
			if err := tx.Create(b).Error; err != nil {
				return err
			}
		} else {
			res := tx.Model(&Blocklist{}).Where("id = ?", b.ID).Updates(map[string]any{"zone": b.Zone, "name": b.Name, "kind": b.Kind,
				"codes": b.Codes, "delist_url": b.DelistURL, "enabled": b.Enabled, "pause_pool": b.PausePool})
			if res.Error != nil {
				return res.Error
			}
			if res.RowsAffected == 0 {
				return ErrNotFound
			}
		}
		audit.ObjectID = fmt.Sprint(b.ID)
		audit.CreatedAt = dbNow()
		return tx.Create(&audit).Error
	})
	if err != nil {
		return fmt.Errorf("models: save blocklist %q: %w", b.Zone, err)
	}
	return nil
}

// BlocklistResult is one period in which a checked address or domain had
// one state on one list.
type BlocklistResult struct {
	ID         int64
	Target     string // the address or domain
	TargetKind string // BlocklistIP or BlocklistDomain
	Source     string // what Herald uses it for, e.g. "pool marketing"
	Zone       string
	Status     string // ListingClean, ListingListed, ListingUnavailable or ListingError
	Answer     string // the list's answers, comma-separated
	Meaning    string
	FirstSeen  time.Time // since when the state holds
	LastSeen   time.Time // the last check that found it
}

// RecordBlocklistResult records one check's result: the current period
// moves on when the state and answer are the same, a new one begins
// otherwise. newListing reports a listing that was not there at the
// previous check (or the first check found).
func (s *Store) RecordBlocklistResult(ctx context.Context, r BlocklistResult) (newListing bool, err error) {
	err = s.tx(ctx, func(tx *gorm.DB) error {
		var cur []BlocklistResult
		if err := tx.Where("target = ? AND zone = ?", r.Target, r.Zone).Order("id DESC").Limit(1).Find(&cur).Error; err != nil {
			return err
		}
		if len(cur) == 1 && cur[0].Status == r.Status && cur[0].Answer == r.Answer {
			return tx.Model(&BlocklistResult{}).Where("id = ?", cur[0].ID).
				Updates(map[string]any{"last_seen": r.LastSeen, "source": r.Source, "meaning": r.Meaning}).Error
		}
		newListing = r.Status == ListingListed && (len(cur) == 0 || cur[0].Status != ListingListed)
		r.ID = 0
		r.FirstSeen = r.LastSeen
		return tx.Create(&r).Error
	})
	if err != nil {
		return false, fmt.Errorf("models: record blocklist result of %s on %s: %w", r.Target, r.Zone, err)
	}
	return newListing, nil
}

// CurrentBlocklistResults returns the newest result of every address or
// domain on every list, by target and zone.
func (s *Store) CurrentBlocklistResults(ctx context.Context) ([]BlocklistResult, error) {
	var out []BlocklistResult
	err := s.conn(ctx).Raw(`SELECT r.* FROM blocklist_results r
		WHERE r.id = (SELECT MAX(id) FROM blocklist_results x WHERE x.target = r.target AND x.zone = r.zone)
		ORDER BY r.target_kind, r.target, r.zone`).Scan(&out).Error
	if err != nil {
		return nil, fmt.Errorf("models: current blocklist results: %w", err)
	}
	return out, nil
}

// BlocklistHistory returns the latest periods of every address and list,
// newest first, at most limit.
func (s *Store) BlocklistHistory(ctx context.Context, limit int) ([]BlocklistResult, error) {
	var out []BlocklistResult
	if err := s.conn(ctx).Order("id DESC").Limit(limit).Find(&out).Error; err != nil {
		return nil, fmt.Errorf("models: blocklist history: %w", err)
	}
	return out, nil
}

// SetPoolPause holds (reason not "") or frees (reason "") an IP pool for
// the blocklist rule; it reports whether the pool's state changed.
func (s *Store) SetPoolPause(ctx context.Context, poolID int64, reason string) (bool, error) {
	var at *time.Time
	if reason != "" {
		t := dbNow()
		at = &t
	}
	res := s.conn(ctx).Model(&IPPool{}).Where("id = ? AND paused_reason <> ?", poolID, reason).
		Updates(map[string]any{"paused_reason": reason, "paused_at": at})
	if res.Error != nil {
		return false, fmt.Errorf("models: pause IP pool %d: %w", poolID, res.Error)
	}
	return res.RowsAffected > 0, nil
}

// AdminEmails returns the addresses of every admin.
func (s *Store) AdminEmails(ctx context.Context) ([]string, error) {
	var out []string
	if err := s.conn(ctx).Model(&User{}).Where("role = ?", RoleAdmin).Order("id").Pluck("email", &out).Error; err != nil {
		return nil, fmt.Errorf("models: admin emails: %w", err)
	}
	return out, nil
}
