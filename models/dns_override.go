package models

import (
	"context"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
)

// CampaignDNSOverride is an admin's decision to let a campaign on the
// direct transport start although its From domain's DNS check fails or
// never ran. It holds for the domain it was made for only.
type CampaignDNSOverride struct {
	CampaignID int64 `gorm:"primaryKey;autoIncrement:false"`
	Domain     string
	UserID     *int64
	UserEmail  string
	Reason     string
	CreatedAt  time.Time
}

// TableName is the override's table.
func (CampaignDNSOverride) TableName() string { return "campaign_dns_overrides" }

// OverrideCampaignDNS records an override (replacing an earlier one of
// the campaign) and its audit entry in one transaction. A
// *ValidationError when the reason is empty, ErrNotFound when there is no
// such campaign.
func (s *Store) OverrideCampaignDNS(ctx context.Context, o CampaignDNSOverride, audit AuditEntry) error {
	o.Reason = strings.TrimSpace(o.Reason)
	if o.Reason == "" {
		return fmt.Errorf("models: override DNS check of campaign %d: %w", o.CampaignID, &ValidationError{map[string]string{
			"reason": "Say why the campaign may send although its DNS check fails (it is kept in the audit log)."}})
	}
	o.CreatedAt = dbNow()
	audit.CreatedAt = o.CreatedAt
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var n int64
		if err := tx.Table("campaigns").Where("id = ?", o.CampaignID).Count(&n).Error; err != nil {
			return err
		}
		if n == 0 {
			return ErrNotFound
		}
		if err := tx.Exec("DELETE FROM campaign_dns_overrides WHERE campaign_id = ?", o.CampaignID).Error; err != nil {
			return err
		}
		if err := tx.Create(&o).Error; err != nil {
			return err
		}
		return tx.Create(&audit).Error
	})
	if err != nil {
		return fmt.Errorf("models: override DNS check of campaign %d: %w", o.CampaignID, err)
	}
	return nil
}

// CampaignDNSOverride returns a campaign's DNS override, ErrNotFound when
// it has none.
func (s *Store) CampaignDNSOverride(ctx context.Context, campaignID int64) (*CampaignDNSOverride, error) {
	var o CampaignDNSOverride
	if err := s.conn(ctx).Where("campaign_id = ?", campaignID).First(&o).Error; err != nil {
		return nil, fmt.Errorf("models: DNS override of campaign %d: %w", campaignID, notFound(err))
	}
	return &o, nil
}
