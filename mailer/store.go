package mailer

import (
	"context"
	"time"

	"github.com/herald-mail/herald/models"
)

// QueueStore is what the queue stage needs: materialising, claiming,
// leasing and recording deliveries.
type QueueStore interface {
	MaterializeCampaign(ctx context.Context, id int64, batch int) (done bool, err error)
	ClaimDeliveries(ctx context.Context, req models.ClaimRequest) ([]models.Claimed, error)
	RecordOutcomes(ctx context.Context, outs []models.Outcome) (int, error)
	RenewLeases(ctx context.Context, leases []models.Lease, lease time.Duration) error
	ExpireNodeLeases(ctx context.Context, node string) (int64, error)
	EnqueueTransactional(ctx context.Context, m models.TransactionalMessage) (int64, error)
	SentFromIPSince(ctx context.Context, ip string, t time.Time) (int64, error)
	// Ping checks that the database answers.
	Ping(ctx context.Context) error
}

// CampaignStore is what the engine needs to follow campaigns.
type CampaignStore interface {
	Campaign(ctx context.Context, id int64) (*models.Campaign, error)
	CampaignStatuses(ctx context.Context, ids []int64) ([]models.CampaignStatus, error)
	DueScheduledCampaigns(ctx context.Context) ([]int64, error)
	StartCampaign(ctx context.Context, id int64) error
	PauseCampaign(ctx context.Context, id int64) error
	ResumeCampaign(ctx context.Context, id int64) error
	CancelCampaign(ctx context.Context, id int64) error
	FinishCampaignIfDone(ctx context.Context, id int64) (bool, error)
	CampaignProgress(ctx context.Context, id int64) (*models.CampaignProgress, error)
	EnsureLinks(ctx context.Context, campaignID int64, urls []string) ([]int64, error)
	CampaignVariants(ctx context.Context, id int64) ([]models.Variant, error)
}

// ConfigStore is where the engine reads templates, keys, rules and settings.
type ConfigStore interface {
	Template(ctx context.Context, id int64) (*models.Template, error)
	TemplateByName(ctx context.Context, kind, name string) (*models.Template, error)
	SendingDomain(ctx context.Context, id int64) (*models.SendingDomain, error)
	SendingDomainsCovering(ctx context.Context, domain string) ([]models.SendingDomain, error)
	SendingIPs(ctx context.Context, poolID int64) ([]models.SendingIP, error)
	IPPool(ctx context.Context, id int64) (*models.IPPool, error)
	DomainRules(ctx context.Context) ([]models.DomainRule, error)
	Settings(ctx context.Context) (map[string]string, error)
	EnsureSecret(ctx context.Context) (string, error)
}

// OutboxStore keeps the messages of the capture transport.
type OutboxStore interface {
	SaveOutbox(ctx context.Context, m *models.OutboxMessage) error
}

// Store is everything the engine asks of the database; *models.Store
// implements it.
type Store interface {
	QueueStore
	CampaignStore
	ConfigStore
	OutboxStore
	ClusterStore
}

var _ Store = (*models.Store)(nil)
