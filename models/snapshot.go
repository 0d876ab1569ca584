package models

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// audienceQuery selects subscriber ids (one column, named id) with its
// arguments: the people a system campaign is drafted to.
type audienceQuery struct {
	sql  string
	args []any
}

// SnapshotDraft names what CreateSnapshotCampaign creates.
type SnapshotDraft struct {
	ListName     string // the snapshot list, e.g. "Re-engagement 2026-12-05"
	CampaignName string
	Subject      string
}

// SnapshotResult is the draft campaign, its list and how many people
// were put on it.
type SnapshotResult struct {
	Campaign Campaign
	List     List
	People   int64
}

// draftCampaignTo creates a snapshot list holding the people aud selects
// now (confirmed, without consent rows: they opted into nothing new; the
// list only fixes who the campaign is for) and a draft campaign to it,
// with the sender and template of the latest campaign. It is the one
// place a system campaign's audience is chosen, so that it can target a
// segment instead once segments exist.
func (s *Store) draftCampaignTo(tx *gorm.DB, d SnapshotDraft, aud audienceQuery) (*SnapshotResult, error) {
	t := dbNow()
	l := List{Name: d.ListName, Optin: OptinSingle, Visibility: ListPrivate, Kind: ListKindSnapshot,
		Description: "Filled by Herald with the people of “" + d.CampaignName + "” at " + t.Format("2006-01-02 15:04") + " UTC. No one subscribed to it."}
	l.CreatedAt, l.UpdatedAt = t, t
	if err := tx.Omit("Unconfirmed", "Confirmed", "Unsubscribed").Create(&l).Error; err != nil {
		return nil, err
	}
	res := tx.Exec(`INSERT INTO subscriptions (subscriber_id, list_id, status, created_at, updated_at)
		SELECT q.id, ?, 'confirmed', ?, ? FROM (`+aud.sql+`) q`, append([]any{l.ID, t, t}, aud.args...)...)
	if res.Error != nil {
		return nil, res.Error
	}
	c := Campaign{Name: d.CampaignName, Subject: d.Subject, TrackOpens: true, TrackClicks: true, Status: CampaignDraft}
	var last []Campaign
	if err := tx.Raw("SELECT * FROM campaigns ORDER BY id DESC LIMIT 1").Scan(&last).Error; err != nil {
		return nil, err
	}
	if len(last) == 1 {
		p := last[0]
		c.TemplateID, c.FromName, c.FromEmail, c.ReplyTo = p.TemplateID, p.FromName, p.FromEmail, p.ReplyTo
		c.SendingDomainID, c.IPPoolID, c.Transport = p.SendingDomainID, p.IPPoolID, p.Transport
	} else {
		var tpl []int64
		if err := tx.Raw("SELECT id FROM templates WHERE kind = ? ORDER BY id LIMIT 1", TemplateCampaign).Scan(&tpl).Error; err != nil {
			return nil, err
		}
		if len(tpl) == 1 {
			c.TemplateID = &tpl[0]
		}
	}
	c.CreatedAt, c.UpdatedAt = t, t
	if err := tx.Create(&c).Error; err != nil {
		return nil, err
	}
	if err := setCampaignLists(tx, c.ID, []int64{l.ID}); err != nil {
		return nil, err
	}
	return &SnapshotResult{Campaign: c, List: l, People: res.RowsAffected}, nil
}

// lackingAudience selects the active subscribers live on listID (0: on
// any list people join) without a valid basis there (basisCond).
func lackingAudience(listID int64) audienceQuery {
	q := `SELECT DISTINCT m.subscriber_id AS id FROM subscriptions m
		JOIN lists l ON l.id = m.list_id AND l.kind = 'list'
		JOIN subscribers b ON b.id = m.subscriber_id AND b.status = 'active'
		WHERE m.status <> 'unsubscribed' AND NOT ` + basisCond
	if listID == 0 {
		return audienceQuery{sql: q}
	}
	return audienceQuery{sql: q + " AND m.list_id = ?", args: []any{listID}}
}

// CountLackingBasis counts the active people live on listID (0: any list)
// with no valid basis there, each once.
func (s *Store) CountLackingBasis(ctx context.Context, listID int64) (int64, error) {
	aud := lackingAudience(listID)
	var n int64
	if err := s.conn(ctx).Raw("SELECT COUNT(*) FROM ("+aud.sql+") q", aud.args...).Scan(&n).Error; err != nil {
		return 0, fmt.Errorf("models: count lacking basis: %w", err)
	}
	return n, nil
}

// CreateRepermissionCampaign snapshots the active people without a valid
// basis on listID (0: on any list) into a list and drafts a campaign to
// it, asking them to confirm; ctx's audit entry (WithAudit) is written in
// the same transaction.
func (s *Store) CreateRepermissionCampaign(ctx context.Context, listID int64, at time.Time) (*SnapshotResult, error) {
	day := at.UTC().Format("2006-01-02")
	d := SnapshotDraft{ListName: "Re-permission " + day, CampaignName: "Re-permission " + day,
		Subject: "Do you still want to hear from us?"}
	if listID != 0 {
		l, err := s.List(ctx, listID)
		if err != nil {
			return nil, err
		}
		d.ListName = "Re-permission " + l.Name + " " + day
		d.CampaignName = d.ListName
	}
	var out *SnapshotResult
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var err error
		out, err = s.draftCampaignTo(tx, d, lackingAudience(listID))
		if err == nil && out.People == 0 {
			return ErrNothingToSend
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("models: re-permission campaign: %w", err)
	}
	return out, nil
}

// ErrNothingToSend is returned when a system campaign's audience is empty:
// nothing is created.
var ErrNothingToSend = errors.New("no one matches, so no campaign was created")
