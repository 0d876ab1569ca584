package models

import (
	"context"
	"fmt"
	"sort"
	"time"
)

// RecentBounce is one bounce or complaint, with the address it concerns and
// why the classifier decided as it did.
type RecentBounce struct {
	BounceID     int64 // 0 for a refusal during sending recorded without a bounces row
	DeliveryID   int64
	Email        string
	CampaignID   int64
	CampaignName string
	Kind         string // hard, soft or complaint
	Category     string
	Status       string
	Diagnostic   string
	// Reason is the classifier's rule and reason as recorded; empty for a
	// refusal during sending (the caller classifies Code, Status and
	// Diagnostic) and for rows recorded before reasons were kept.
	Reason string
	Code   int  // SMTP reply code, refusals during sending without a bounces row only
	SMTP   bool // refused during sending rather than reported later
	At     time.Time
}

// RecentBounces returns the latest bounces and complaints recorded in the
// window, and the SMTP refusals of campaign deliveries last tried in it,
// newest first, at most limit in all.
func (s *Store) RecentBounces(ctx context.Context, w Window, limit int) ([]RecentBounce, error) {
	wrap := func(err error) error { return fmt.Errorf("models: recent bounces: %w", err) }
	var reported []struct {
		ID, DeliveryID, CampaignID                 int64
		Email, CampaignName                        string
		Kind, Category, Status, Diagnostic, Reason string
		DuringDelivery                             bool
		CreatedAt                                  time.Time
	}
	err := s.conn(ctx).Raw(`SELECT b.id, COALESCE(b.delivery_id, 0) AS delivery_id,
		COALESCE(b.campaign_id, 0) AS campaign_id, COALESCE(s.email, d.email, '') AS email,
		COALESCE(c.name, '') AS campaign_name, b.kind, b.category, b.status, b.diagnostic, b.reason, b.during_delivery, b.created_at
		FROM bounces b
		LEFT JOIN deliveries d ON d.id = b.delivery_id
		LEFT JOIN subscribers s ON s.id = COALESCE(b.subscriber_id, d.subscriber_id)
		LEFT JOIN campaigns c ON c.id = b.campaign_id
		WHERE b.created_at >= ? ORDER BY b.created_at DESC, b.id DESC LIMIT ?`, dbTime(w.From), limit).Scan(&reported).Error
	if err != nil {
		return nil, wrap(err)
	}
	var refused []struct {
		ID, CampaignID         int64
		Email, CampaignName    string
		LastCode               int
		LastEnhanced, LastText string
		LastAttemptAt          time.Time
	}
	// A hard bounce reported later also leaves its delivery bounced: only
	// rows without a bounces row were refused in the SMTP transaction.
	err = s.conn(ctx).Raw(`SELECT d.id, d.campaign_id, COALESCE(s.email, d.email) AS email,
		COALESCE(c.name, '') AS campaign_name, d.last_code, d.last_enhanced, d.last_text, d.last_attempt_at
		FROM deliveries d
		LEFT JOIN subscribers s ON s.id = d.subscriber_id
		LEFT JOIN campaigns c ON c.id = d.campaign_id
		WHERE d.id >= ? AND d.last_attempt_at >= ? AND d.campaign_id IS NOT NULL AND d.status = ?
		AND NOT EXISTS (SELECT 1 FROM bounces b WHERE b.delivery_id = d.id AND b.kind = ?)
		ORDER BY d.last_attempt_at DESC, d.id DESC LIMIT ?`,
		w.FirstDelivery, dbTime(w.From), DeliveryBounced, BounceHard, limit).Scan(&refused).Error
	if err != nil {
		return nil, wrap(err)
	}
	out := make([]RecentBounce, 0, len(reported)+len(refused))
	for _, r := range reported {
		out = append(out, RecentBounce{BounceID: r.ID, DeliveryID: r.DeliveryID, Email: r.Email, CampaignID: r.CampaignID,
			CampaignName: r.CampaignName, Kind: r.Kind, Category: r.Category, Status: r.Status, Diagnostic: r.Diagnostic,
			Reason: r.Reason, SMTP: r.DuringDelivery, At: r.CreatedAt})
	}
	for _, r := range refused {
		out = append(out, RecentBounce{DeliveryID: r.ID, Email: r.Email, CampaignID: r.CampaignID, CampaignName: r.CampaignName,
			Kind: BounceHard, Status: r.LastEnhanced, Diagnostic: r.LastText, Code: r.LastCode, SMTP: true, At: r.LastAttemptAt})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At.After(out[j].At) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}
