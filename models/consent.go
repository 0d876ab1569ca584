package models

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"
)

// Consent actions, lawful bases and sources recorded in the ledger.
const (
	ConsentGranted   = "granted"   // subscribed, consent given or declared
	ConsentConfirmed = "confirmed" // double opt-in confirmed
	ConsentWithdrawn = "withdrawn" // unsubscribed, removed from the list
	ConsentImported  = "imported"  // brought in by a CSV import
	ConsentErased    = "erased"    // the subscriber's personal data was erased

	BasisConsent     = "consent"
	BasisLegitimate  = "legitimate_interest"
	BasisContract    = "contract"
	BasisLegal       = "legal_obligation"
	BasisNotRequired = "none" // withdrawals and erasures need no basis

	SourceForm       = "form"
	SourceImport     = "import"
	SourceAPI        = "api"
	SourceAdmin      = "admin"
	SourcePreference = "preference_centre"
	SourceOneClick   = "one_click"
	SourceComplaint  = "complaint"
	SourceBounce     = "bounce"
	SourceAutomation = "automation" // a list step of an automation
)

// LawfulBases lists the bases a person may declare for an import or an edit.
var LawfulBases = []string{BasisConsent, BasisLegitimate, BasisContract, BasisLegal}

// ValidLawfulBasis reports whether b is one of LawfulBases.
func ValidLawfulBasis(b string) bool { return slices.Contains(LawfulBases, b) }

// Consent is one row of the append-only consent ledger. Hash chains each row
// to the one before it; PIIDigest stands in for the personal columns once
// they are erased.
type Consent struct {
	ID           int64
	SubscriberID *int64
	ListID       *int64
	Action       string
	LawfulBasis  string
	Source       string
	Email        string
	IP           string `gorm:"column:ip"`
	UserAgent    string
	Page         string
	TextHash     string
	Actor        string
	Note         string
	CreatedAt    time.Time
	PIIDigest    string `gorm:"column:pii_digest"`
	PrevHash     string
	Hash         string
}

// Evidence is who and what stood behind a subscription change: it becomes
// the personal columns of the consent rows the change writes.
type Evidence struct {
	Source      string
	LawfulBasis string // defaults to consent for grants
	IP          string
	UserAgent   string
	Page        string
	ConsentText string // the wording shown; stored as its hash
	Actor       string // the user, token or "subscriber" who made the change
	Note        string
}

func (e Evidence) row(action string, subscriberID, listID int64, email string) Consent {
	basis := e.LawfulBasis
	if basis == "" {
		basis = BasisConsent
	}
	if action == ConsentWithdrawn || action == ConsentErased {
		basis = BasisNotRequired
	}
	c := Consent{
		Action: action, LawfulBasis: basis, Source: e.Source, Email: email,
		IP: e.IP, UserAgent: e.UserAgent, Page: e.Page, Actor: e.Actor, Note: e.Note,
	}
	if e.ConsentText != "" {
		sum := sha256.Sum256([]byte(e.ConsentText))
		c.TextHash = hex.EncodeToString(sum[:])
	}
	if subscriberID != 0 {
		c.SubscriberID = &subscriberID
	}
	if listID != 0 {
		c.ListID = &listID
	}
	return c
}

// consentLockKey serialises appends to the chain on PostgreSQL; SQLite's
// BEGIN IMMEDIATE already does.
const consentLockKey = 0x4845524c44 // "HERLD"

// chainHead locks the ledger for the rest of tx and returns its last hash.
func (s *Store) chainHead(tx *gorm.DB) (string, error) {
	if s.dialect == Postgres {
		if err := tx.Exec("SELECT pg_advisory_xact_lock(?)", consentLockKey).Error; err != nil {
			return "", err
		}
	}
	var head []string
	if err := tx.Raw("SELECT hash FROM consents ORDER BY id DESC LIMIT 1").Scan(&head).Error; err != nil {
		return "", err
	}
	if len(head) == 0 {
		return "", nil
	}
	return head[0], nil
}

// appendConsents chains rows onto the ledger inside tx. Every code path that
// changes a subscription calls it in the same transaction as the change.
func (s *Store) appendConsents(tx *gorm.DB, rows []Consent) error {
	if len(rows) == 0 {
		return nil
	}
	prev, err := s.chainHead(tx)
	if err != nil {
		return fmt.Errorf("models: consent chain head: %w", err)
	}
	now := dbNow()
	for i := range rows {
		if rows[i].CreatedAt.IsZero() {
			rows[i].CreatedAt = now
		}
		rows[i].CreatedAt = dbTime(rows[i].CreatedAt)
		rows[i].PIIDigest = rows[i].piiDigest()
		rows[i].PrevHash = prev
		rows[i].Hash = rows[i].chainHash()
		prev = rows[i].Hash
	}
	if err := tx.CreateInBatches(rows, 500).Error; err != nil {
		return fmt.Errorf("models: append consents: %w", err)
	}
	return nil
}

func (c *Consent) piiDigest() string {
	h := sha256.New()
	for _, f := range []string{c.Email, c.IP, c.UserAgent, c.Page} {
		h.Write([]byte(f))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

func (c *Consent) hasPII() bool {
	return c.Email != "" || c.IP != "" || c.UserAgent != "" || c.Page != ""
}

func (c *Consent) chainHash() string {
	id := func(p *int64) string {
		if p == nil {
			return ""
		}
		return strconv.FormatInt(*p, 10)
	}
	h := sha256.New()
	for _, f := range []string{
		c.PrevHash, id(c.SubscriberID), id(c.ListID), c.Action, c.LawfulBasis, c.Source,
		c.TextHash, c.Actor, c.Note, c.CreatedAt.UTC().Format(time.RFC3339Nano), c.PIIDigest,
	} {
		h.Write([]byte(f))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// ChainBreak describes the first ledger row that does not verify.
type ChainBreak struct {
	ID     int64
	Reason string
}

// VerifyConsents walks the whole ledger in id order and returns the first
// broken link, or nil when every row verifies. checked is the number of rows
// read.
func (s *Store) VerifyConsents(ctx context.Context) (brk *ChainBreak, checked int64, err error) {
	prev := ""
	var after int64
	for {
		var rows []Consent
		if err := s.conn(ctx).Where("id > ?", after).Order("id").Limit(2000).Find(&rows).Error; err != nil {
			return nil, checked, fmt.Errorf("models: verify consents: %w", err)
		}
		if len(rows) == 0 {
			return nil, checked, nil
		}
		for i := range rows {
			c := &rows[i]
			checked++
			switch {
			case c.PrevHash != prev:
				return &ChainBreak{c.ID, "its previous-hash does not match the row before it (a row was removed, inserted or reordered)"}, checked, nil
			case c.hasPII() && c.piiDigest() != c.PIIDigest:
				return &ChainBreak{c.ID, "its personal evidence (email, IP, user agent or page) was changed"}, checked, nil
			case c.chainHash() != c.Hash:
				return &ChainBreak{c.ID, "its contents were changed after it was written"}, checked, nil
			}
			prev = c.Hash
			after = c.ID
		}
	}
}

// ConsentsBySubscriber returns a subscriber's ledger rows, oldest first.
func (s *Store) ConsentsBySubscriber(ctx context.Context, subscriberID int64) ([]Consent, error) {
	var rows []Consent
	err := s.conn(ctx).Where("subscriber_id = ?", subscriberID).Order("id").Find(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("models: consents of subscriber %d: %w", subscriberID, err)
	}
	return rows, nil
}

// dbNow is the store's clock, truncated to what both databases keep.
var now = time.Now

func dbNow() time.Time { return dbTime(now()) }

func dbTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// likePrefix escapes s for use as a LIKE prefix pattern with ESCAPE '\'.
func likePrefix(s string) string { return likeEscaper.Replace(s) + "%" }

var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
