package models

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Delivery statuses.
const (
	DeliveryQueued     = "queued"
	DeliverySending    = "sending"
	DeliverySent       = "sent"
	DeliveryDeferred   = "deferred"
	DeliveryBounced    = "bounced"
	DeliveryFailed     = "failed"
	DeliverySuppressed = "suppressed"
)

// PriorityTransactional is the priority of transactional deliveries; campaign
// deliveries have priority 0.
const PriorityTransactional = 10

// Delivery is one message to one recipient: for a campaign, the idempotency
// key that keeps a subscriber from receiving it twice.
type Delivery struct {
	ID            int64
	CampaignID    *int64
	SubscriberID  *int64
	ListID        *int64
	TemplateID    *int64
	Email         string // transactional deliveries only
	Name          string
	Data          string // transactional template data, JSON
	Domain        string
	Priority      int
	Status        string
	Attempts      int
	NextAttemptAt time.Time
	LeaseNode     string
	LeaseUntil    *time.Time
	// LeaseGen is the lease's fencing token: every claim adds one.
	LeaseGen     int64
	LastCode     int
	LastEnhanced string
	LastText     string
	MessageID    string
	SourceIP     string `gorm:"column:source_ip"`
	MXHost       string `gorm:"column:mx_host"`
	// TLS is how the last attempt crossed the network (TLSCode).
	TLS           int16 `gorm:"column:tls"`
	LastAttemptAt *time.Time
	SentAt        *time.Time
	CreatedAt     time.Time
	// OverrideSuppression: a transactional message sent to the address even
	// when it is suppressed, because its sender said so.
	OverrideSuppression bool
	// Variant is the A/B test variant the message carries
	// (Variant.Idx); 0 for none.
	Variant int
}

// Delivery returns one delivery.
func (s *Store) Delivery(ctx context.Context, id int64) (*Delivery, error) {
	var d Delivery
	if err := s.conn(ctx).First(&d, id).Error; err != nil {
		return nil, fmt.Errorf("models: delivery %d: %w", id, notFound(err))
	}
	return &d, nil
}

// DeliveriesOfCampaign returns a page of a campaign's deliveries in one
// status ("" for all), by id, after the cursor id.
func (s *Store) DeliveriesOfCampaign(ctx context.Context, campaignID int64, status string, after int64, limit int) ([]Delivery, error) {
	q := s.conn(ctx).Where("campaign_id = ? AND id > ?", campaignID, after).Order("id").Limit(limit)
	if status != "" {
		q = q.Where("status = ?", status)
	}
	var out []Delivery
	if err := q.Find(&out).Error; err != nil {
		return nil, fmt.Errorf("models: deliveries of campaign %d: %w", campaignID, err)
	}
	return out, nil
}

func placeholders(n int) string {
	if n == 0 {
		return "NULL"
	}
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}

// ClaimRequest says which due deliveries a node wants to lease.
type ClaimRequest struct {
	// Node is the claiming node's id, written to lease_node.
	Node string
	// Lease is how long the claim holds before others may reclaim the rows.
	Lease time.Duration
	// Limit caps the rows claimed.
	Limit int
	// Transactional draws due transactional deliveries first.
	Transactional bool
	// CampaignIDs are the running campaigns to draw from, sharing Limit.
	CampaignIDs []int64
	// Reclaim says which rows whose lease expired the claim also takes.
	// Scanning for them costs a pass over the rows in flight, so claimers
	// ask for it now and then rather than on every claim.
	Reclaim Reclaim
	// ExcludeDomains are recipient domains whose campaign deliveries are
	// not to be claimed now (their destination is suspended or its queue is
	// full). Transactional deliveries are claimed regardless.
	ExcludeDomains []string
	// Now is the time rows must be due by (and leases are measured
	// from); zero is the current time.
	Now time.Time
}

// Reclaim is a claim's choice among rows whose lease expired. A running
// node never takes back a row it holds in memory: it renews the lease of
// everything it holds every heartbeat, and asks for ReclaimExpired only
// once the database has answered it for a whole lease, by when every
// lease it holds is current; an expired row leased to it then is one it
// lost track of (a claim whose answer never arrived), which it may take.
type Reclaim int

const (
	// ReclaimNone takes no leased row.
	ReclaimNone Reclaim = iota
	// ReclaimDisowned takes the rows a restarted node gave up
	// (ExpireNodeLeases): nobody holds their outcomes.
	ReclaimDisowned
	// ReclaimExpired takes every expired lease: of nodes that died or
	// are cut off from the database, and rows disowned. A node asks for
	// it only once it has been connected for a whole lease (see above): a
	// node coming back from a database outage with outcomes in memory
	// writes them first.
	ReclaimExpired
)

// Lease names one leased row and its generation (Claimed.LeaseGen).
type Lease struct {
	ID, Gen int64
}

// Claimed is a leased delivery with what rendering it needs.
type Claimed struct {
	ID int64
	// LeaseGen is the claim's fencing token: outcomes, renewals and
	// releases of the row must carry it, and change nothing once another
	// claim has taken the row.
	LeaseGen int64
	// Reclaimed: the row was taken from an expired lease (its node died
	// mid-send), not from the queue.
	Reclaimed    bool
	CampaignID   int64 // 0 for transactional
	SubscriberID int64
	ListID       int64
	TemplateID   int64
	Email        string
	Name         string
	Attributes   Attributes
	Data         string // transactional data, JSON
	Domain       string
	Priority     int
	Attempts     int
	CreatedAt    time.Time
	// Ineligible says why the recipient may no longer be mailed (suppressed,
	// unsubscribed, blocklisted, deleted); "" when they may.
	Ineligible string
	// OverrideSuppression: a transactional message whose sender chose to
	// reach the address even if it is suppressed.
	OverrideSuppression bool
	// Variant is the A/B test variant the message carries
	// (Variant.Idx); 0 for none.
	Variant int

	// fullCheck: look this row's address up against every suppression, not
	// only those added since materialisation (the subscriber was edited
	// since, or too many were added to read them all).
	fullCheck bool
}

// Outcome is the result of handling one claimed delivery.
type Outcome struct {
	ID int64
	// LeaseGen is the generation of the claim the outcome answers
	// (Claimed.LeaseGen): a row claimed again since is left alone.
	LeaseGen   int64
	CampaignID int64 // 0 for transactional
	// Status is the new status. queued or deferred with Attempted false
	// releases the row unattempted (paused campaign, suspended destination).
	Status    string
	Attempted bool // an SMTP transaction (or its dial) was tried
	Code      int
	Enhanced  string
	Text      string
	MessageID string
	SourceIP  string
	MXHost    string
	// TLS is how the message crossed the network (TLSCode); 0 when that
	// is not known (no server answered, or the message was captured).
	TLS int16
	At  time.Time
	// NextAttempt is when a deferred or released row becomes due again.
	NextAttempt time.Time
	// BounceKind (hard or soft) and BounceCategory classify a bounced
	// outcome (a refusal during delivery) the way a DSN would be: the
	// bounce is applied with the outcome, by the rules of applyBounces.
	// "" records no bounce.
	BounceKind, BounceCategory string
	// BounceReason is the classifier's rule and reason for it, kept with
	// the bounce row.
	BounceReason string
}

// TransactionalMessage is a transactional send waiting in the deliveries
// table.
type TransactionalMessage struct {
	TemplateID int64
	Email      string // normalised address
	Name       string
	Data       string // JSON object handed to the template as .Data
	// OverrideSuppression sends even to a suppressed address (password
	// resets, receipts): the caller's explicit choice, kept on the row.
	OverrideSuppression bool
}

// enqueueTransactional is EnqueueTransactional.
func (w deliveryWriter) enqueueTransactional(ctx context.Context, m TransactionalMessage) (int64, error) {
	s := w.s
	s = s.hot() // a writer of deliveries, like the mailer (see Store.queue)
	t := dbNow()
	d := &Delivery{TemplateID: &m.TemplateID, Email: m.Email, Name: m.Name, Data: m.Data, Domain: strings.ToLower(EmailDomain(m.Email)),
		Priority: PriorityTransactional, Status: DeliveryQueued, NextAttemptAt: t, CreatedAt: t, OverrideSuppression: m.OverrideSuppression}
	if d.Data == "" {
		d.Data = "{}"
	}
	if err := s.conn(ctx).Create(d).Error; err != nil {
		return 0, fmt.Errorf("models: enqueue transactional: %w", err)
	}
	return d.ID, nil
}

// SentFromIPSince counts the deliveries sent from a source address since t
// (the warm-up cap counts today's sends).
func (s *Store) SentFromIPSince(ctx context.Context, ip string, t time.Time) (int64, error) {
	var n int64
	err := s.conn(ctx).Raw("SELECT COUNT(*) FROM deliveries WHERE source_ip = ? AND sent_at >= ?", ip, dbTime(t)).Scan(&n).Error
	if err != nil {
		return 0, fmt.Errorf("models: sent from %s: %w", ip, err)
	}
	return n, nil
}
