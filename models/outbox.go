package models

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// OutboxMessage is a message the capture transport kept instead of sending:
// the envelope, the headers, both bodies and the raw source as it would
// have gone out (DKIM signature included).
type OutboxMessage struct {
	ID         int64
	DeliveryID int64
	CampaignID int64
	MailFrom   string
	RcptTo     string
	Subject    string
	MessageID  string
	Headers    string
	HTML       string `gorm:"column:html"`
	Text       string
	Raw        string
	CreatedAt  time.Time
}

// TableName keeps GORM from pluralising.
func (OutboxMessage) TableName() string { return "outbox" }

// SaveOutbox stores a captured message.
func (s *Store) SaveOutbox(ctx context.Context, m *OutboxMessage) error {
	m.CreatedAt = dbNow()
	if err := s.conn(ctx).Create(m).Error; err != nil {
		return fmt.Errorf("models: save outbox message: %w", err)
	}
	return nil
}

// OutboxQuery selects a page of captured messages, newest first.
type OutboxQuery struct {
	CampaignID int64 // 0: any campaign (and transactional)
	Before     int64 // cursor: only ids below this; 0 from the newest
	Limit      int   // page size, default 50
}

// Outbox returns a page of captured messages without their raw source and
// bodies (read one with OutboxMessage).
func (s *Store) Outbox(ctx context.Context, q OutboxQuery) ([]OutboxMessage, error) {
	if q.Limit <= 0 || q.Limit > 500 {
		q.Limit = 50
	}
	db := s.conn(ctx).Select("id, delivery_id, campaign_id, mail_from, rcpt_to, subject, message_id, created_at").
		Order("id DESC").Limit(q.Limit)
	if q.CampaignID != 0 {
		db = db.Where("campaign_id = ?", q.CampaignID)
	}
	if q.Before > 0 {
		db = db.Where("id < ?", q.Before)
	}
	var out []OutboxMessage
	if err := db.Find(&out).Error; err != nil {
		return nil, fmt.Errorf("models: outbox: %w", err)
	}
	return out, nil
}

// OutboxMessage returns one captured message in full.
func (s *Store) OutboxMessage(ctx context.Context, id int64) (*OutboxMessage, error) {
	var m OutboxMessage
	if err := s.conn(ctx).First(&m, id).Error; err != nil {
		return nil, fmt.Errorf("models: outbox message %d: %w", id, notFound(err))
	}
	return &m, nil
}

// OutboxLabels names where each captured message came from, by message
// id: the campaign's name, “Test of <name>” for a campaign's test send,
// and "transactional" for any other transactional message.
func (s *Store) OutboxLabels(ctx context.Context, msgs []OutboxMessage) (map[int64]string, error) {
	var campaigns, deliveries []int64
	for _, m := range msgs {
		if m.CampaignID != 0 {
			campaigns = append(campaigns, m.CampaignID)
		} else if m.DeliveryID != 0 {
			deliveries = append(deliveries, m.DeliveryID)
		}
	}
	testOf := map[int64]int64{} // delivery → campaign tested
	if len(deliveries) > 0 {
		var rows []struct {
			ID   int64
			Data string
		}
		if err := s.conn(ctx).Raw("SELECT id, data FROM deliveries WHERE id IN ?", deliveries).Scan(&rows).Error; err != nil {
			return nil, fmt.Errorf("models: outbox labels: %w", err)
		}
		for _, r := range rows {
			var d struct {
				TestOf int64 `json:"test_of"`
			}
			if json.Unmarshal([]byte(r.Data), &d) == nil && d.TestOf != 0 {
				testOf[r.ID] = d.TestOf
				campaigns = append(campaigns, d.TestOf)
			}
		}
	}
	names := map[int64]string{}
	if len(campaigns) > 0 {
		var rows []struct {
			ID   int64
			Name string
		}
		if err := s.conn(ctx).Raw("SELECT id, name FROM campaigns WHERE id IN ?", campaigns).Scan(&rows).Error; err != nil {
			return nil, fmt.Errorf("models: outbox labels: %w", err)
		}
		for _, r := range rows {
			names[r.ID] = r.Name
		}
	}
	out := make(map[int64]string, len(msgs))
	for _, m := range msgs {
		switch c, test := testOf[m.DeliveryID]; {
		case m.CampaignID != 0:
			out[m.ID] = names[m.CampaignID]
		case test && m.DeliveryID != 0:
			out[m.ID] = "Test of “" + names[c] + "”"
		default:
			out[m.ID] = "transactional"
		}
	}
	return out, nil
}
