package models

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Placement verdicts of one seed's copy of a placement test.
const (
	PlacementPending = "pending" // not found yet, the test still runs
	PlacementInbox   = "inbox"
	PlacementSpam    = "spam"    // a \Junk folder, or one named Spam, Junk or Bulk
	PlacementOther   = "other"   // another folder or a Gmail tab
	PlacementMissing = "missing" // not found by the deadline
	PlacementError   = "error"   // the mailbox could not be read by the deadline
)

// Placement test states.
const (
	PlacementRunning = "running"
	PlacementDone    = "done"
)

// SeedMailbox is an address placement tests send to, read back over IMAP.
type SeedMailbox struct {
	ID       int64
	Address  string
	Provider string // what the seed stands for: "Gmail", "Outlook", …
	// IMAPURL is imaps://user:password@host:993 or imap://… (STARTTLS),
	// in clear once read with the server's secrets.
	IMAPURL   string
	CreatedAt time.Time
}

// RedactedURL is the IMAP URL without its password, for pages.
func (m SeedMailbox) RedactedURL() string {
	u, err := url.Parse(m.IMAPURL)
	if err != nil {
		return ""
	}
	return u.Redacted()
}

// SeedForm is what an admin enters for a new seed mailbox.
type SeedForm struct{ Address, Provider, IMAPURL string }

// Validate checks the form and returns a field → message map.
func (f *SeedForm) Validate() map[string]string {
	errs := map[string]string{}
	f.Address, f.Provider, f.IMAPURL = strings.TrimSpace(f.Address), strings.TrimSpace(f.Provider), strings.TrimSpace(f.IMAPURL)
	if a, err := NormalizeEmail(f.Address); err != nil {
		errs["address"] = "Enter the seed's email address, e.g. seed1@gmail.com."
	} else {
		f.Address = a
	}
	if f.Provider == "" || len(f.Provider) > 60 {
		errs["provider"] = "Name the provider this seed stands for, e.g. Gmail (at most 60 characters)."
	}
	u, err := url.Parse(f.IMAPURL)
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "imap" && u.Scheme != "imaps"):
		errs["imap_url"] = "Enter imaps://user:password@host:993 (TLS) or imap://user:password@host:143 (STARTTLS)."
	case u.User == nil || u.User.Username() == "":
		errs["imap_url"] = "The URL needs the mailbox's user and password: imaps://user:password@host:993."
	}
	return errs
}

// ErrSeedExists is returned when a seed with the address is registered.
var ErrSeedExists = errors.New("models: a seed mailbox with this address exists")

// CreateSeedMailbox stores a seed, its IMAP URL sealed with secret.
func (s *Store) CreateSeedMailbox(ctx context.Context, secret string, f SeedForm) (int64, error) {
	sealed, err := seal(secret, []byte(f.IMAPURL))
	if err != nil {
		return 0, err
	}
	var n int64
	if err := s.conn(ctx).Raw("SELECT COUNT(*) FROM seed_mailboxes WHERE address = ?", f.Address).Scan(&n).Error; err != nil {
		return 0, fmt.Errorf("models: create seed: %w", err)
	}
	if n > 0 {
		return 0, ErrSeedExists
	}
	var id int64
	err = s.conn(ctx).Raw("INSERT INTO seed_mailboxes (address, provider, imap_url, created_at) VALUES (?, ?, ?, ?) RETURNING id",
		f.Address, f.Provider, sealed, dbNow()).Scan(&id).Error
	if err != nil {
		return 0, fmt.Errorf("models: create seed: %w", err)
	}
	return id, nil
}

// SeedMailboxes returns every seed, by provider and address, their URLs
// opened with the first of secrets that opens them (ErrSettingSealed
// when none does).
func (s *Store) SeedMailboxes(ctx context.Context, secrets []string) ([]SeedMailbox, error) {
	var rows []struct {
		ID                         int64
		Address, Provider, ImapURL string
		CreatedAt                  time.Time
	}
	if err := s.conn(ctx).Raw("SELECT id, address, provider, imap_url, created_at FROM seed_mailboxes ORDER BY provider, address").Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("models: seeds: %w", err)
	}
	out := make([]SeedMailbox, 0, len(rows))
	var failed error
	for _, r := range rows {
		u, err := openSetting(secrets, r.ImapURL)
		if err != nil {
			failed = fmt.Errorf("models: seed %s: %w", r.Address, err)
		}
		out = append(out, SeedMailbox{ID: r.ID, Address: r.Address, Provider: r.Provider, IMAPURL: u, CreatedAt: r.CreatedAt})
	}
	return out, failed
}

// DeleteSeedMailbox removes a seed; the results of past tests stay.
func (s *Store) DeleteSeedMailbox(ctx context.Context, id int64) error {
	res := s.conn(ctx).Exec("DELETE FROM seed_mailboxes WHERE id = ?", id)
	if res.Error != nil {
		return fmt.Errorf("models: delete seed %d: %w", id, res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("models: delete seed %d: %w", id, ErrNotFound)
	}
	return nil
}

// PlacementTest is one test and its results.
type PlacementTest struct {
	ID         int64
	CampaignID int64
	Campaign   string // the campaign's name
	Token      string // the X-Herald-Placement header value of its copies
	Status     string
	Gate       bool // run by the campaign's pre-send gate
	CreatedAt  time.Time
	Deadline   time.Time
	FinishedAt *time.Time
	Results    []PlacementResult
}

// PlacementResult is where one seed's copy landed.
type PlacementResult struct {
	ID        int64
	TestID    int64
	SeedID    int64
	Address   string
	Provider  string
	Placement string
	Folder    string
	ArrivalMS *int64 // from the send to the copy's arrival (its INTERNALDATE)
	// SPF, DKIM and DMARC are the receiver's verdicts from its
	// Authentication-Results ("pass", "fail", "softfail", …; "" unknown).
	SPF, DKIM, DMARC string
	AuthResults      string // the header as the receiver wrote it
	Detail           string // why a mailbox could not be read
}

// PlacementHeader is the header field carrying a placement test's token
// in every copy sent to a seed.
const PlacementHeader = "X-Herald-Placement"

// StartPlacementTest creates a running test of campaign with a pending
// result per seed, until deadline, and returns it with its new token.
// Sending the copies is the caller's, in the same transaction (ctx).
func (s *Store) StartPlacementTest(ctx context.Context, campaignID int64, seeds []SeedMailbox, deadline time.Time, gate bool) (*PlacementTest, error) {
	if len(seeds) == 0 {
		return nil, fmt.Errorf("models: start placement test: no seed mailboxes")
	}
	b := make([]byte, 16)
	rand.Read(b)
	t := &PlacementTest{CampaignID: campaignID, Token: hex.EncodeToString(b), Status: PlacementRunning, Gate: gate,
		CreatedAt: dbNow(), Deadline: deadline.UTC()}
	db := s.conn(ctx)
	err := db.Raw("INSERT INTO placement_tests (campaign_id, token, status, gate, created_at, deadline) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
		campaignID, t.Token, t.Status, gate, t.CreatedAt, t.Deadline).Scan(&t.ID).Error
	if err != nil {
		return nil, fmt.Errorf("models: start placement test: %w", err)
	}
	for _, sd := range seeds {
		if err := db.Exec("INSERT INTO placement_results (test_id, seed_id, address, provider, placement) VALUES (?, ?, ?, ?, ?)",
			t.ID, sd.ID, sd.Address, sd.Provider, PlacementPending).Error; err != nil {
			return nil, fmt.Errorf("models: start placement test: %w", err)
		}
	}
	return t, nil
}

type placementTestRow struct {
	ID, CampaignID          int64
	Campaign, Token, Status string
	Gate                    bool
	CreatedAt, Deadline     time.Time
	FinishedAt              *time.Time
}

func (r placementTestRow) test() PlacementTest {
	return PlacementTest{ID: r.ID, CampaignID: r.CampaignID, Campaign: r.Campaign, Token: r.Token, Status: r.Status, Gate: r.Gate,
		CreatedAt: r.CreatedAt, Deadline: r.Deadline, FinishedAt: r.FinishedAt}
}

const placementTestCols = "t.id, t.campaign_id, c.name AS campaign, t.token, t.status, t.gate, t.created_at, t.deadline, t.finished_at"

// PlacementTests returns the newest tests (without results), of one
// campaign when campaignID is not 0.
func (s *Store) PlacementTests(ctx context.Context, campaignID int64, limit int) ([]PlacementTest, error) {
	q := s.conn(ctx).Raw("SELECT "+placementTestCols+" FROM placement_tests t JOIN campaigns c ON c.id = t.campaign_id ORDER BY t.id DESC LIMIT ?", limit)
	if campaignID != 0 {
		q = s.conn(ctx).Raw("SELECT "+placementTestCols+" FROM placement_tests t JOIN campaigns c ON c.id = t.campaign_id WHERE t.campaign_id = ? ORDER BY t.id DESC LIMIT ?", campaignID, limit)
	}
	var rows []placementTestRow
	if err := q.Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("models: placement tests: %w", err)
	}
	out := make([]PlacementTest, len(rows))
	for i, r := range rows {
		out[i] = r.test()
	}
	return out, nil
}

// RunningPlacementTests returns the tests still looking for copies, with
// their results.
func (s *Store) RunningPlacementTests(ctx context.Context) ([]PlacementTest, error) {
	var ids []int64
	if err := s.conn(ctx).Raw("SELECT id FROM placement_tests WHERE status = ? ORDER BY id", PlacementRunning).Scan(&ids).Error; err != nil {
		return nil, fmt.Errorf("models: running placement tests: %w", err)
	}
	out := make([]PlacementTest, 0, len(ids))
	for _, id := range ids {
		t, err := s.PlacementTest(ctx, id)
		if err != nil {
			return nil, err
		}
		out = append(out, *t)
	}
	return out, nil
}

// PlacementTest returns one test with its results; ErrNotFound when there
// is none.
func (s *Store) PlacementTest(ctx context.Context, id int64) (*PlacementTest, error) {
	var ts []placementTestRow
	if err := s.conn(ctx).Raw("SELECT "+placementTestCols+" FROM placement_tests t JOIN campaigns c ON c.id = t.campaign_id WHERE t.id = ?", id).Scan(&ts).Error; err != nil {
		return nil, fmt.Errorf("models: placement test %d: %w", id, err)
	}
	if len(ts) == 0 {
		return nil, fmt.Errorf("models: placement test %d: %w", id, ErrNotFound)
	}
	pt := ts[0].test()
	t := &pt
	if err := s.conn(ctx).Raw(`SELECT id, test_id, COALESCE(seed_id, 0) AS seed_id, address, provider, placement, folder, arrival_ms,
		spf, dkim, dmarc, auth_results, detail FROM placement_results WHERE test_id = ? ORDER BY provider, address`, id).Scan(&t.Results).Error; err != nil {
		return nil, fmt.Errorf("models: placement test %d: %w", id, err)
	}
	return t, nil
}

// RecordPlacement stores where one seed's copy was found (or why its
// mailbox could not be read: placement PlacementError with Detail, which
// a later poll may replace).
func (s *Store) RecordPlacement(ctx context.Context, r PlacementResult) error {
	err := s.conn(ctx).Exec(`UPDATE placement_results SET placement = ?, folder = ?, arrival_ms = ?, spf = ?, dkim = ?, dmarc = ?,
		auth_results = ?, detail = ? WHERE id = ?`, r.Placement, r.Folder, r.ArrivalMS, r.SPF, r.DKIM, r.DMARC, r.AuthResults, r.Detail, r.ID).Error
	if err != nil {
		return fmt.Errorf("models: record placement %d: %w", r.ID, err)
	}
	return nil
}

// FinishPlacementTest ends a test: the copies not found (pending, or
// whose mailbox failed with no later success) are missing.
func (s *Store) FinishPlacementTest(ctx context.Context, id int64) error {
	db := s.conn(ctx)
	if err := db.Exec("UPDATE placement_results SET placement = ? WHERE test_id = ? AND placement = ?", PlacementMissing, id, PlacementPending).Error; err != nil {
		return fmt.Errorf("models: finish placement test %d: %w", id, err)
	}
	if err := db.Exec("UPDATE placement_tests SET status = ?, finished_at = ? WHERE id = ? AND status = ?", PlacementDone, dbNow(), id, PlacementRunning).Error; err != nil {
		return fmt.Errorf("models: finish placement test %d: %w", id, err)
	}
	return nil
}

// ProviderPlacement sums a test's results for one provider.
type ProviderPlacement struct {
	Provider                           string
	Seeds, Inbox, Spam, Other, Missing int
}

// ByProvider sums the results per provider, in the results' order.
func (t *PlacementTest) ByProvider() []ProviderPlacement {
	var out []ProviderPlacement
	idx := map[string]int{}
	for _, r := range t.Results {
		i, ok := idx[r.Provider]
		if !ok {
			i = len(out)
			idx[r.Provider] = i
			out = append(out, ProviderPlacement{Provider: r.Provider})
		}
		p := &out[i]
		p.Seeds++
		switch r.Placement {
		case PlacementInbox:
			p.Inbox++
		case PlacementSpam:
			p.Spam++
		case PlacementOther:
			p.Other++
		case PlacementMissing, PlacementError:
			p.Missing++
		}
	}
	return out
}

// InboxPercent is the share of the test's seeds whose copy reached the
// inbox (a Gmail tab counts as not the inbox), 0 without seeds.
func (t *PlacementTest) InboxPercent() int {
	if len(t.Results) == 0 {
		return 0
	}
	n := 0
	for _, r := range t.Results {
		if r.Placement == PlacementInbox {
			n++
		}
	}
	return n * 100 / len(t.Results)
}
