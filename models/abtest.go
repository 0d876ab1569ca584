package models

import (
	"container/heap"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"gorm.io/gorm"
)

// ABTest is a campaign's A/B test settings and state. A campaign runs a
// test when it has two to five variants and a test share.
type ABTest struct {
	// Share is the percentage of the audience in the test (1–100); 0: no
	// test.
	Share int `gorm:"column:ab_share"`
	// Metric decides the winner: MetricOpens, MetricClicks or MetricCTO.
	Metric string `gorm:"column:ab_metric"`
	// WaitSeconds is how long after the test share is released the winner
	// is chosen.
	WaitSeconds int64 `gorm:"column:ab_wait_seconds"`
	// Manual: the marketer picks the winner; otherwise the A/B job does,
	// after the wait.
	Manual bool `gorm:"column:ab_manual"`
	// TestAt is when the test share was released (materialisation done).
	TestAt *time.Time `gorm:"column:ab_test_at"`
	// Winner is the chosen variant (Variant.Idx); nil until then.
	Winner    *int       `gorm:"column:ab_winner"`
	DecidedAt *time.Time `gorm:"column:ab_decided_at"`
	DecidedBy string     `gorm:"column:ab_decided_by"`
	// Result is the ABAnalysis (JSON) the winner was chosen on.
	Result string `gorm:"column:ab_result"`
}

// Wait is WaitSeconds as a duration.
func (a ABTest) Wait() time.Duration { return time.Duration(a.WaitSeconds) * time.Second }

// DecisionDue is when the winner is due to be chosen (zero before the test
// was released).
func (a ABTest) DecisionDue() time.Time {
	if a.TestAt == nil {
		return time.Time{}
	}
	return a.TestAt.Add(a.Wait())
}

// Decision returns the figures the winner was chosen on (nil before).
func (a ABTest) Decision() *ABAnalysis {
	if a.Result == "" {
		return nil
	}
	var r ABAnalysis
	if json.Unmarshal([]byte(a.Result), &r) != nil {
		return nil
	}
	return &r
}

// Variant is one version of an A/B tested campaign. An empty field means
// the campaign's own.
type Variant struct {
	ID         int64  `json:"-"`
	CampaignID int64  `json:"-"`
	Idx        int    `gorm:"column:idx" json:"idx"` // 1…5, what deliveries.variant holds
	Label      string `json:"label"`
	Subject    string `json:"subject"`
	FromName   string `json:"from_name"`
	Preheader  string `json:"preheader"`
	HTML       string `gorm:"column:html" json:"html"`
}

// TableName is campaign_variants.
func (Variant) TableName() string { return "campaign_variants" }

// A/B test limits.
const (
	MinVariants = 2
	MaxVariants = 5
	// MinABWait is the shortest wait: a click sooner than the tracker's
	// scanner delay after the send is not counted as a person's.
	MinABWait = 10 * time.Second
	MaxABWait = 30 * 24 * time.Hour
)

// heldUntil is the due time of the deliveries held for an A/B test's
// winner: never reached, so the claim never takes them, and near enough
// that a duration to it still fits.
var heldUntil = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)

// validateAB checks the campaign's A/B settings and variants into errs,
// filling in default labels.
func (c *Campaign) validateAB(errs map[string]string) {
	if len(c.Variants) == 0 {
		c.AB = ABTest{}
		return
	}
	if len(c.Variants) < MinVariants || len(c.Variants) > MaxVariants {
		errs["variants"] = fmt.Sprintf("An A/B test has %d to %d variants; this one has %d.", MinVariants, MaxVariants, len(c.Variants))
	}
	if c.AB.Share < 1 || c.AB.Share > 100 {
		errs["ab_share"] = "Give the test share as a percentage of the audience, from 1 to 100."
	}
	switch c.AB.Metric {
	case MetricOpens, MetricClicks, MetricCTO:
	case "":
		c.AB.Metric = MetricClicks
	default:
		errs["ab_metric"] = "Choose the winner metric: opens, clicks or cto (click-to-open)."
	}
	if w := c.AB.Wait(); w < MinABWait || w > MaxABWait {
		errs["ab_wait"] = "Wait between 10 seconds and 30 days before choosing the winner: write it as 4h, 30m or 2d."
	}
	seen := map[string]int{}
	for i := range c.Variants {
		v := &c.Variants[i]
		v.Idx = i + 1
		v.Label = strings.TrimSpace(v.Label)
		if v.Label == "" {
			v.Label = string(rune('A' + i))
		}
		key := fmt.Sprintf("variant_%d", i+1)
		switch {
		case utf8.RuneCountInString(v.Subject) > MaxSubjectLength:
			errs[key] = fmt.Sprintf("Keep variant %s's subject under %d characters.", v.Label, MaxSubjectLength)
		case utf8.RuneCountInString(v.Label) > 40 || utf8.RuneCountInString(v.FromName) > MaxNameLength ||
			utf8.RuneCountInString(v.Preheader) > 500:
			errs[key] = fmt.Sprintf("Variant %s: keep the label under 40 characters, the from name under %d and the preheader under 500.", v.Label, MaxNameLength)
		}
		sig := v.Subject + "\x00" + v.FromName + "\x00" + v.Preheader + "\x00" + v.HTML
		if j, dup := seen[sig]; dup {
			errs[key] = fmt.Sprintf("Variant %s is the same as variant %s: change its subject, from name, preheader or content.",
				v.Label, c.Variants[j].Label)
		}
		seen[sig] = i
	}
}

func setCampaignVariants(tx *gorm.DB, id int64, vs []Variant) error {
	if vs == nil {
		return nil
	}
	if err := tx.Exec("DELETE FROM campaign_variants WHERE campaign_id = ?", id).Error; err != nil {
		return err
	}
	for i := range vs {
		v := vs[i]
		v.ID, v.CampaignID = 0, id
		if err := tx.Create(&v).Error; err != nil {
			return err
		}
	}
	return nil
}

// CampaignVariants returns a campaign's A/B variants in order (none when
// it runs no test).
func (s *Store) CampaignVariants(ctx context.Context, id int64) ([]Variant, error) {
	var out []Variant
	if err := s.conn(ctx).Where("campaign_id = ?", id).Order("idx").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("models: variants of campaign %d: %w", id, err)
	}
	return out, nil
}

// abState reads what materialisation needs of a campaign's test: whether
// it runs one, its share, its variant count and whether the test share
// has been released.
func abState(tx *gorm.DB, id int64) (share, variants int, released bool, err error) {
	var row []struct {
		AbShare  int
		AbTestAt *time.Time
		N        int
	}
	err = tx.Raw(`SELECT ab_share, ab_test_at, (SELECT COUNT(*) FROM campaign_variants v WHERE v.campaign_id = c.id) AS n
		FROM campaigns c WHERE c.id = ?`, id).Scan(&row).Error
	if err != nil || len(row) == 0 || row[0].AbShare <= 0 || row[0].N < MinVariants {
		return 0, 0, false, err
	}
	return row[0].AbShare, row[0].N, row[0].AbTestAt != nil, nil
}

// abDue is when the deliveries materialisation writes now for campaign
// id may be claimed: at t, or never for an A/B tested campaign whose test
// share is not drawn yet (startABTest draws it once the whole audience
// exists, and the winner's release frees the rest).
func abDue(tx *gorm.DB, id int64, t time.Time) (time.Time, error) {
	share, _, released, err := abState(tx, id)
	if err != nil || share == 0 || released {
		return t, err
	}
	return heldUntil, nil
}

// abOrder is a subscriber's place in a campaign's random order: a hash of
// both ids, so the draw is random across subscribers, differs between
// campaigns, and is the same however often it is repeated.
func abOrder(campaignID, subscriberID int64) uint64 {
	h := fnv.New64a()
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], uint64(campaignID))
	binary.LittleEndian.PutUint64(b[8:], uint64(subscriberID))
	h.Write(b[:])
	return h.Sum64()
}

// startABTest releases an A/B tested campaign's test share once its whole
// audience is materialised: the first Share percent of the held
// deliveries in the random order, dealt to the variants in turn (so the
// split is even, to one), due now. It runs in the transaction that marks
// the campaign materialised, so a crash leaves either both or neither.
func (s *Store) startABTest(tx *gorm.DB, id int64, at time.Time) error {
	share, n, released, err := abState(tx, id)
	if err != nil || share == 0 || released {
		return err
	}
	const held = ` FROM deliveries WHERE campaign_id = ? AND status = 'queued' AND variant IS NULL`
	var total int
	if err := tx.Raw("SELECT COUNT(*)"+held, id).Scan(&total).Error; err != nil {
		return err
	}
	k := (total*share + 50) / 100
	if k < n {
		k = min(n, total) // every variant gets someone if it can
	}
	// The k first in the random order, kept in a heap as the rows stream
	// by: memory grows with the test share, not the audience.
	top := &drawHeap{}
	rows, err := tx.Raw("SELECT id, subscriber_id"+held, id).Rows()
	if err != nil {
		return err
	}
	for rows.Next() {
		var d drawn
		var sub int64
		if err := rows.Scan(&d.id, &sub); err != nil {
			rows.Close()
			return err
		}
		d.order = abOrder(id, sub)
		switch {
		case top.Len() < k:
			heap.Push(top, d)
		case k > 0 && d.order < (*top)[0].order:
			(*top)[0] = d
			heap.Fix(top, 0)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	picked := *top
	sort.Slice(picked, func(i, j int) bool { return picked[i].order < picked[j].order })
	byVariant := make([][]int64, n)
	for i, d := range picked {
		byVariant[i%n] = append(byVariant[i%n], d.id)
	}
	// The ids as one JSON argument: the SQLite driver's binding cost grows
	// with the square of the parameters.
	for v, ids := range byVariant {
		for len(ids) > 0 {
			m := min(len(ids), 5000)
			if err := tx.Exec("UPDATE deliveries SET variant = ?, next_attempt_at = ? WHERE id IN "+s.jsonIntSet(), v+1, at,
				jsonArray(ids[:m])).Error; err != nil {
				return err
			}
			ids = ids[m:]
		}
	}
	return tx.Exec("UPDATE campaigns SET ab_test_at = ? WHERE id = ?", at, id).Error
}

// drawn is a held delivery and its place in the random order.
type drawn struct {
	id    int64
	order uint64
}

// drawHeap is a max-heap on order: its top is the last of those kept.
type drawHeap []drawn

func (h drawHeap) Len() int           { return len(h) }
func (h drawHeap) Less(i, j int) bool { return h[i].order > h[j].order }
func (h drawHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *drawHeap) Push(x any)        { *h = append(*h, x.(drawn)) }
func (h *drawHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// ABFigures counts each variant's sent messages and unique human opens and
// clicks (machine opens and scanner clicks left out), as they stand.
// Before the winner is released only the test share carries a variant.
func (s *Store) ABFigures(ctx context.Context, id int64) ([]VariantResult, error) {
	vs, err := s.CampaignVariants(ctx, id)
	if err != nil {
		return nil, err
	}
	out := make([]VariantResult, len(vs))
	at := map[int]*VariantResult{}
	for i, v := range vs {
		out[i] = VariantResult{Idx: v.Idx, Label: v.Label}
		at[v.Idx] = &out[i]
	}
	wrap := func(err error) error { return fmt.Errorf("models: A/B figures of campaign %d: %w", id, err) }
	db := s.conn(ctx)
	var sent []struct {
		Variant int
		N       int64
	}
	if err := db.Raw(`SELECT variant, COUNT(*) AS n FROM deliveries WHERE campaign_id = ? AND variant IS NOT NULL AND status = ?
		GROUP BY variant`, id, DeliverySent).Scan(&sent).Error; err != nil {
		return nil, wrap(err)
	}
	for _, r := range sent {
		if v := at[r.Variant]; v != nil {
			v.Sent = r.N
		}
	}
	var evs []struct {
		Variant int
		Kind    string
		N       int64
	}
	if err := db.Raw(`SELECT d.variant, e.kind, COUNT(DISTINCT e.delivery_id) AS n FROM events e JOIN deliveries d ON d.id = e.delivery_id
		WHERE e.campaign_id = ? AND e.kind IN ? AND e.machine = ? AND d.variant IS NOT NULL
		GROUP BY d.variant, e.kind`, id, []string{EventOpen, EventClick}, false).Scan(&evs).Error; err != nil {
		return nil, wrap(err)
	}
	for _, r := range evs {
		if v := at[r.Variant]; v != nil {
			if r.Kind == EventOpen {
				v.Opens = r.N
			} else {
				v.Clicks = r.N
			}
		}
	}
	return out, nil
}

// ABReport is what a campaign's report shows of its A/B test.
type ABReport struct {
	Test     ABTest
	Variants []Variant
	// Analysis is the figures the winner was chosen on once it was, the
	// live figures before.
	Analysis ABAnalysis
	// Held counts the deliveries waiting for the winner.
	Held int64
}

// CampaignABReport returns a campaign's A/B test report, nil when it runs
// no test.
func (s *Store) CampaignABReport(ctx context.Context, id int64) (*ABReport, error) {
	c, err := s.Campaign(ctx, id)
	if err != nil {
		return nil, err
	}
	vs, err := s.CampaignVariants(ctx, id)
	if err != nil {
		return nil, err
	}
	if c.AB.Share == 0 || len(vs) < MinVariants {
		return nil, nil
	}
	r := &ABReport{Test: c.AB, Variants: vs}
	if d := c.AB.Decision(); d != nil {
		r.Analysis = *d
	} else {
		figs, err := s.ABFigures(ctx, id)
		if err != nil {
			return nil, err
		}
		r.Analysis = AnalyseAB(c.AB.Metric, figs)
	}
	if c.AB.TestAt != nil && c.AB.Winner == nil {
		if err := s.conn(ctx).Raw(`SELECT COUNT(*) FROM deliveries WHERE campaign_id = ? AND status = 'queued' AND variant IS NULL`,
			id).Scan(&r.Held).Error; err != nil {
			return nil, fmt.Errorf("models: A/B report of campaign %d: %w", id, err)
		}
	}
	return r, nil
}

// ErrABNotReady is returned when a winner is picked before the test share
// was sent, or after a winner was already chosen.
var ErrABNotReady = errors.New("the A/B test is not waiting for a winner")

// DueABTests returns the running campaigns in automatic mode whose test
// wait is over at now and whose winner is not chosen yet.
func (s *Store) DueABTests(ctx context.Context, at time.Time) ([]int64, error) {
	var rows []struct {
		ID            int64
		AbTestAt      time.Time
		AbWaitSeconds int64
	}
	if err := s.conn(ctx).Raw(`SELECT id, ab_test_at, ab_wait_seconds FROM campaigns WHERE status = ? AND ab_share > 0
		AND ab_test_at IS NOT NULL AND ab_winner IS NULL AND ab_manual = ?`, CampaignRunning, false).Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("models: due A/B tests: %w", err)
	}
	var ids []int64
	for _, r := range rows {
		if !at.Before(r.AbTestAt.Add(time.Duration(r.AbWaitSeconds) * time.Second)) {
			ids = append(ids, r.ID)
		}
	}
	return ids, nil
}

// DecideABTest chooses a campaign's winner, winner (a Variant.Idx) or,
// when 0, the variant with the best rate, and releases the held
// deliveries with it, in one transaction: the figures it was chosen on,
// who chose, and the release commit together or not at all. by names who
// chose (a user's email, or the A/B job). It returns the analysis.
func (s *Store) DecideABTest(ctx context.Context, id int64, winner int, by string, at time.Time) (*ABAnalysis, error) {
	c, err := s.Campaign(ctx, id)
	if err != nil {
		return nil, err
	}
	if c.AB.TestAt == nil || c.AB.Winner != nil {
		return nil, fmt.Errorf("models: decide A/B test of campaign %d: %w", id, ErrABNotReady)
	}
	figs, err := s.ABFigures(ctx, id)
	if err != nil {
		return nil, err
	}
	a := AnalyseAB(c.AB.Metric, figs)
	if winner == 0 {
		winner = a.Best
	}
	ok := false
	for _, v := range figs {
		ok = ok || v.Idx == winner
	}
	if !ok {
		return nil, fmt.Errorf("models: decide A/B test of campaign %d: no variant %d: %w", id, winner, ErrNotFound)
	}
	result, err := json.Marshal(a)
	if err != nil {
		return nil, err
	}
	err = s.tx(ctx, func(tx *gorm.DB) error {
		res := tx.Exec(`UPDATE campaigns SET ab_winner = ?, ab_decided_at = ?, ab_decided_by = ?, ab_result = ?, updated_at = ?
			WHERE id = ? AND ab_winner IS NULL AND ab_test_at IS NOT NULL`, winner, dbTime(at), by, string(result), dbNow(), id)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrABNotReady // another node or person decided meanwhile
		}
		// Due now by the database's clock, whatever at says.
		return tx.Exec(`UPDATE deliveries SET variant = ?, next_attempt_at = ? WHERE campaign_id = ? AND status = 'queued' AND variant IS NULL`,
			winner, dbNow(), id).Error
	})
	if err != nil {
		return nil, fmt.Errorf("models: decide A/B test of campaign %d: %w", id, err)
	}
	return &a, nil
}
