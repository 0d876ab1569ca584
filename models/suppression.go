package models

import (
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
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
	stored := strings.ToLower(strings.TrimSpace(value))
	if reason == SuppressErased {
		stored = ""
	}
	err := s.conn(ctx).Exec(`INSERT INTO suppressions (kind, value, value_hash, reason, note, created_at)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (value_hash) DO NOTHING`,
		kind, stored, SuppressionHash(value), reason, note, dbNow()).Error
	if err != nil {
		return fmt.Errorf("models: add suppression: %w", err)
	}
	return nil
}

// SuppressionValue checks what a person typed as a suppression entry and
// returns the form it is stored under: a normalised address, or "@domain"
// for a whole domain ("@example.com"; a bare "example.com" without an @ is
// read as a domain too).
func SuppressionValue(raw string) (string, error) {
	v := strings.TrimSpace(raw)
	if v == "" {
		return "", &InvalidEmailError{raw, "it is empty"}
	}
	domain, isDomain := strings.CutPrefix(v, "@")
	if !isDomain && !strings.Contains(v, "@") {
		domain, isDomain = v, true
	}
	if isDomain {
		e, err := NormalizeEmail("postmaster@" + domain)
		if err != nil {
			return "", &InvalidEmailError{raw, "the domain " + domain + " is not a valid domain name (e.g. @example.com)"}
		}
		return "@" + EmailDomain(e), nil
	}
	e, err := NormalizeEmail(v)
	if err != nil {
		return "", err
	}
	return strings.ToLower(e), nil
}

// SuppressionQuery selects a page of the suppression list.
type SuppressionQuery struct {
	// Search is a prefix of the address or domain ("@exa" finds domain
	// entries); "" finds everything.
	Search string
	// Before is the cursor: only entries with a smaller id. Zero: the newest.
	Before int64
	// Limit is the page size. Zero: 50.
	Limit int
}

// SuppressionPage is one page of the suppression list, newest first; Next
// is the cursor of the next page, 0 on the last one.
type SuppressionPage struct {
	Rows []Suppression
	Next int64
}

// SearchSuppressions returns a page of the suppression list by id, newest
// first. Erased entries have no value and match only an empty search.
func (s *Store) SearchSuppressions(ctx context.Context, q SuppressionQuery) (*SuppressionPage, error) {
	if q.Limit <= 0 || q.Limit > 500 {
		q.Limit = 50
	}
	db := s.conn(ctx).Order("id DESC").Limit(q.Limit + 1)
	if q.Before > 0 {
		db = db.Where("id < ?", q.Before)
	}
	if term := strings.ToLower(strings.TrimSpace(q.Search)); term != "" {
		db = db.Where("value LIKE ? ESCAPE '\\'", likePrefix(term))
	}
	var rows []Suppression
	if err := db.Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("models: search suppressions: %w", err)
	}
	page := &SuppressionPage{Rows: rows}
	if len(rows) > q.Limit {
		page.Rows = rows[:q.Limit]
		page.Next = page.Rows[q.Limit-1].ID
	}
	return page, nil
}

// Suppression returns one entry of the suppression list.
func (s *Store) Suppression(ctx context.Context, id int64) (*Suppression, error) {
	var x Suppression
	if err := s.conn(ctx).First(&x, id).Error; err != nil {
		return nil, fmt.Errorf("models: suppression %d: %w", id, notFound(err))
	}
	return &x, nil
}

// RemoveSuppression takes an entry off the suppression list and returns
// what it was; ErrNotFound when there is no such entry. Erased entries
// cannot be removed: they stand for a person who asked to be forgotten.
func (s *Store) RemoveSuppression(ctx context.Context, id int64) (*Suppression, error) {
	var out *Suppression
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var x Suppression
		if err := tx.First(&x, id).Error; err != nil {
			return notFound(err)
		}
		if x.Reason == SuppressErased {
			return ErrErasedSuppression
		}
		out = &x
		return tx.Delete(&Suppression{}, id).Error
	})
	if err != nil {
		return nil, fmt.Errorf("models: remove suppression %d: %w", id, err)
	}
	return out, nil
}

// ErrErasedSuppression refuses the removal of an erased person's entry.
var ErrErasedSuppression = errors.New("this entry stands for a person whose data was erased at their request; it cannot be removed")

// SuppressionImport is the outcome of a CSV upload to the suppression list.
type SuppressionImport struct {
	Added    int // new entries
	Existing int // valid rows already on the list
	Rejected []RejectedRow
}

// RejectedRow is a line of an upload that was not taken, and why.
type RejectedRow struct {
	Line   int
	Value  string
	Reason string
}

// maxRejectedKept bounds the rejected rows reported back.
const maxRejectedKept = 1000

// ImportSuppressions adds every address or @domain in the first column of
// a CSV file (a header row named email, address, value or domain is
// skipped) with the given reason and note. Valid rows are kept even when
// others are rejected.
func (s *Store) ImportSuppressions(ctx context.Context, r io.Reader, reason, note string) (*SuppressionImport, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.LazyQuotes = true
	cr.ReuseRecord = true
	res := &SuppressionImport{}
	reject := func(line int, v, why string) {
		if len(res.Rejected) < maxRejectedKept {
			res.Rejected = append(res.Rejected, RejectedRow{Line: line, Value: truncate(v, 200), Reason: why})
		}
	}
	batch := make([]string, 0, 500)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		added, err := s.addSuppressions(ctx, batch, reason, note)
		if err != nil {
			return err
		}
		res.Added += added
		res.Existing += len(batch) - added
		batch = batch[:0]
		return nil
	}
	seen := map[string]bool{}
	for line := 1; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				reject(line, "", "the line is not valid CSV: "+pe.Err.Error())
				continue
			}
			return nil, fmt.Errorf("models: import suppressions: %w", err)
		}
		cell := ""
		if len(rec) > 0 {
			cell = strings.TrimSpace(strings.TrimPrefix(rec[0], "\ufeff"))
		}
		if line == 1 {
			switch strings.ToLower(cell) {
			case "email", "address", "value", "domain", "e-mail":
				continue
			}
		}
		if cell == "" {
			continue
		}
		v, err := SuppressionValue(cell)
		if err != nil {
			reject(line, cell, err.Error())
			continue
		}
		if seen[v] {
			res.Existing++
			continue
		}
		seen[v] = true
		if batch = append(batch, v); len(batch) == cap(batch) {
			if err := flush(); err != nil {
				return nil, fmt.Errorf("models: import suppressions: %w", err)
			}
		}
	}
	if err := flush(); err != nil {
		return nil, fmt.Errorf("models: import suppressions: %w", err)
	}
	return res, nil
}

// addSuppressions inserts checked values in one transaction and returns
// how many were new.
func (s *Store) addSuppressions(ctx context.Context, values []string, reason, note string) (int, error) {
	added := 0
	err := s.tx(ctx, func(tx *gorm.DB) error {
		t := dbNow()
		for _, v := range values {
			kind := "address"
			if strings.HasPrefix(v, "@") {
				kind = "domain"
			}
			res := tx.Exec(`INSERT INTO suppressions (kind, value, value_hash, reason, note, created_at)
				VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (value_hash) DO NOTHING`, kind, v, SuppressionHash(v), reason, note, t)
			if res.Error != nil {
				return res.Error
			}
			added += int(res.RowsAffected)
		}
		return nil
	})
	return added, err
}

// ExportSuppressions writes the suppression list as CSV (value, kind,
// reason, note, created_at), oldest first, in batches; erased entries
// appear as their hash.
func (s *Store) ExportSuppressions(ctx context.Context, w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write([]string{"value", "kind", "reason", "note", "created_at"}); err != nil {
		return err
	}
	var after int64
	for {
		var rows []Suppression
		if err := s.conn(ctx).Where("id > ?", after).Order("id").Limit(1000).Find(&rows).Error; err != nil {
			return fmt.Errorf("models: export suppressions: %w", err)
		}
		for _, r := range rows {
			if err := cw.Write([]string{csvSafe(r.Display()), r.Kind, r.Reason, csvSafe(r.Note), r.CreatedAt.UTC().Format(time.RFC3339)}); err != nil {
				return err
			}
		}
		cw.Flush()
		if err := cw.Error(); err != nil {
			return err
		}
		if len(rows) < 1000 {
			return nil
		}
		after = rows[len(rows)-1].ID
	}
}

// Display is how an entry is shown: its value, or for an erased person
// "sha256:" and the hash.
func (x Suppression) Display() string {
	if x.Value == "" {
		return "sha256:" + x.ValueHash
	}
	return x.Value
}

// IsSuppressed reports whether an address, or its domain, is on the
// suppression list.
func (s *Store) IsSuppressed(ctx context.Context, email string) (bool, error) {
	err := s.checkSuppressed(s.conn(ctx), email)
	if errors.Is(err, ErrSuppressed) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("models: is suppressed: %w", err)
	}
	return false, nil
}

// SuppressionByValue returns the entry an address or "@domain" is
// suppressed under (erased entries match by hash and show no value).
func (s *Store) SuppressionByValue(ctx context.Context, value string) (*Suppression, error) {
	var x Suppression
	if err := s.conn(ctx).Where("value_hash = ?", SuppressionHash(value)).First(&x).Error; err != nil {
		return nil, fmt.Errorf("models: suppression of %q: %w", value, notFound(err))
	}
	return &x, nil
}
