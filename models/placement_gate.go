package models

import (
	"context"
	"fmt"
	"time"
)

// Placement gate states.
const (
	GateArmed   = "armed"   // the next start sends a placement test first
	GateTesting = "testing" // the campaign waits, paused, for its test
	GatePassed  = "passed"  // the test reached the threshold: sending resumed
	GateFailed  = "failed"  // below the threshold: the campaign stays paused
)

// PlacementGate is a campaign's pre-send placement test and threshold.
type PlacementGate struct {
	CampaignID int64
	Campaign   string
	MinInbox   int // percent of seeds that must reach the inbox
	State      string
	TestID     *int64
	Reason     string // why the campaign stays paused
	UpdatedAt  time.Time
}

// SetPlacementGate arms campaign's gate with a threshold in percent (1 to
// 100), or removes it with 0.
func (s *Store) SetPlacementGate(ctx context.Context, campaignID int64, minInbox int) error {
	db := s.conn(ctx)
	var err error
	if minInbox == 0 {
		err = db.Exec("DELETE FROM placement_gates WHERE campaign_id = ?", campaignID).Error
	} else {
		err = db.Exec(`INSERT INTO placement_gates (campaign_id, min_inbox, state, reason, updated_at) VALUES (?, ?, ?, '', ?)
			ON CONFLICT (campaign_id) DO UPDATE SET min_inbox = excluded.min_inbox, state = excluded.state, test_id = NULL,
			reason = '', updated_at = excluded.updated_at`, campaignID, minInbox, GateArmed, dbNow()).Error
	}
	if err != nil {
		return fmt.Errorf("models: set placement gate of campaign %d: %w", campaignID, err)
	}
	return nil
}

const gateCols = "g.campaign_id, c.name AS campaign, g.min_inbox, g.state, g.test_id, g.reason, g.updated_at"

// PlacementGates returns every campaign's gate, newest change first.
func (s *Store) PlacementGates(ctx context.Context) ([]PlacementGate, error) {
	var out []PlacementGate
	if err := s.conn(ctx).Raw("SELECT " + gateCols + " FROM placement_gates g JOIN campaigns c ON c.id = g.campaign_id ORDER BY g.updated_at DESC").Scan(&out).Error; err != nil {
		return nil, fmt.Errorf("models: placement gates: %w", err)
	}
	return out, nil
}

// ArmedPlacementGate returns campaign's gate when it is armed, else nil.
func (s *Store) ArmedPlacementGate(ctx context.Context, campaignID int64) (*PlacementGate, error) {
	var out []PlacementGate
	if err := s.conn(ctx).Raw("SELECT "+gateCols+" FROM placement_gates g JOIN campaigns c ON c.id = g.campaign_id WHERE g.campaign_id = ? AND g.state = ?",
		campaignID, GateArmed).Scan(&out).Error; err != nil {
		return nil, fmt.Errorf("models: placement gate of campaign %d: %w", campaignID, err)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return &out[0], nil
}

// GateTesting records that campaign's gate waits for test.
func (s *Store) GateTesting(ctx context.Context, campaignID, testID int64) error {
	if err := s.conn(ctx).Exec("UPDATE placement_gates SET state = ?, test_id = ?, updated_at = ? WHERE campaign_id = ?",
		GateTesting, testID, dbNow(), campaignID).Error; err != nil {
		return fmt.Errorf("models: placement gate of campaign %d: %w", campaignID, err)
	}
	return nil
}

// SettlePlacementGate decides the gate waiting for the finished test t:
// at or above the threshold it passes and the campaign resumes (when it
// is still paused); below, it fails and the campaign stays paused with
// the reason. It returns the gate decided, nil when none waited for t.
func (s *Store) SettlePlacementGate(ctx context.Context, t *PlacementTest) (*PlacementGate, error) {
	var gs []PlacementGate
	if err := s.conn(ctx).Raw("SELECT "+gateCols+" FROM placement_gates g JOIN campaigns c ON c.id = g.campaign_id WHERE g.test_id = ? AND g.state = ?",
		t.ID, GateTesting).Scan(&gs).Error; err != nil {
		return nil, fmt.Errorf("models: settle placement gate of test %d: %w", t.ID, err)
	}
	if len(gs) == 0 {
		return nil, nil
	}
	g := &gs[0]
	pct := t.InboxPercent()
	tx, err := s.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.End()
	if pct >= g.MinInbox {
		g.State, g.Reason = GatePassed, ""
		if cp, err := s.Campaign(tx.Ctx(), g.CampaignID); err != nil {
			return nil, err
		} else if cp.Status == CampaignPaused {
			if err := s.ResumeCampaign(tx.Ctx(), g.CampaignID); err != nil {
				return nil, err
			}
		}
	} else {
		g.State = GateFailed
		g.Reason = fmt.Sprintf("Paused by the placement gate: %d%% of the seeds received the message in the inbox, below the %d%% required. Look at the test's SPF, DKIM and DMARC results and the content, then resume or test again.", pct, g.MinInbox)
		// The campaign's page shows why it is paused (its banner reads
		// pause_reason, as for the automatic protection).
		if err := s.conn(tx.Ctx()).Exec("UPDATE campaigns SET pause_reason = ? WHERE id = ? AND status = ?",
			g.Reason, g.CampaignID, CampaignPaused).Error; err != nil {
			return nil, fmt.Errorf("models: settle placement gate of campaign %d: %w", g.CampaignID, err)
		}
	}
	if err := s.conn(tx.Ctx()).Exec("UPDATE placement_gates SET state = ?, reason = ?, updated_at = ? WHERE campaign_id = ?",
		g.State, g.Reason, dbNow(), g.CampaignID).Error; err != nil {
		return nil, fmt.Errorf("models: settle placement gate of campaign %d: %w", g.CampaignID, err)
	}
	if err := tx.Commit(AuditEntry{Actor: "placement gate", Action: "campaign.gate." + g.State, ObjectType: "campaign",
		ObjectID: fmt.Sprint(g.CampaignID), Summary: fmt.Sprintf("test %d: %d%% in the inbox, %d%% required", t.ID, pct, g.MinInbox)}); err != nil {
		return nil, err
	}
	return g, nil
}
