package models

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"gorm.io/gorm"
)

// Bounce kinds.
const (
	BounceHard      = "hard"
	BounceSoft      = "soft"
	BounceComplaint = "complaint"
)

// The default list-hygiene rule (see HygieneRule, which admins change): an
// address that soft-bounces on SoftBounceLimit different deliveries within
// SoftBounceWindow, with no successful delivery in between, is suppressed
// like a hard bounce.
const (
	SoftBounceLimit  = 3
	SoftBounceWindow = 30 * 24 * time.Hour
)

// Bounce is one row of the bounces table: a hard bounce, soft bounce or
// complaint attributed to a delivery, or for a complaint that named no
// delivery, to a subscriber.
type Bounce struct {
	ID           int64
	DeliveryID   *int64
	CampaignID   *int64
	SubscriberID *int64
	Kind         string
	Category     string
	Status       string // enhanced status code, e.g. 5.1.1
	Diagnostic   string
	RemoteMTA    string `gorm:"column:remote_mta"`
	Reason       string // why the classifier decided: its rule and reason in words
	CreatedAt    time.Time
}

// BounceNotice is a bounce or complaint to record.
type BounceNotice struct {
	// DeliveryID is the delivery the notice is about; 0 when unknown, which
	// only a complaint may be.
	DeliveryID int64
	// Email is the complaining address, used to find the subscriber when
	// DeliveryID is 0.
	Email      string
	Kind       string // hard, soft or complaint
	Category   string // the classifier's category, or the ARF feedback type
	Status     string
	Diagnostic string
	RemoteMTA  string
	// DuringDelivery is true for a refusal during delivery, false for a
	// bounce reported later (DSN, webhook).
	DuringDelivery bool
	// Reason is why the classifier decided (bounce.Verdict.Explain), shown
	// with the bounce so a user can see why an address was suppressed.
	Reason string
}

// BounceResult says what recording a notice changed.
type BounceResult struct {
	CampaignID   int64 // 0 for transactional mail or an unattributed complaint
	SubscriberID int64 // 0 when the recipient is no subscriber
	// Duplicate is true when the same kind was already recorded for the
	// delivery; nothing changed.
	Duplicate bool
	// Suppressed is true when the notice put the address on the
	// suppression list (it may already have been there).
	Suppressed bool
	// Unsubscribed is the number of lists the subscriber was removed from.
	Unsubscribed int
}

// deliveryRef is what recording needs of a delivery.
type deliveryRef struct {
	ID           int64
	CampaignID   *int64
	SubscriberID *int64
	ListID       *int64
	Status       string
	Email        string
}

func deliveryRefTx(tx *gorm.DB, id int64) (*deliveryRef, error) {
	var r []deliveryRef
	err := tx.Raw(`SELECT d.id, d.campaign_id, d.subscriber_id, d.list_id, d.status,
		CASE WHEN s.id IS NULL THEN d.email ELSE s.email END AS email
		FROM deliveries d LEFT JOIN subscribers s ON s.id = d.subscriber_id WHERE d.id = ?`, id).Scan(&r).Error
	if err != nil {
		return nil, err
	}
	if len(r) == 0 {
		return nil, fmt.Errorf("delivery %d: %w", id, ErrNotFound)
	}
	return &r[0], nil
}

// insertBounce writes the bounces row and reports false when the delivery
// already has one of the same kind.
func insertBounce(tx *gorm.DB, n BounceNotice, d *deliveryRef, subscriberID *int64) (bool, error) {
	b := Bounce{
		Kind: n.Kind, Category: n.Category, Status: truncate(n.Status, 32),
		Diagnostic: truncate(n.Diagnostic, 1000), RemoteMTA: truncate(n.RemoteMTA, 255), Reason: truncate(n.Reason, 1000), CreatedAt: dbNow(),
		SubscriberID: subscriberID,
	}
	if d != nil {
		b.DeliveryID, b.CampaignID = &d.ID, d.CampaignID
	}
	res := tx.Exec(`INSERT INTO bounces (delivery_id, campaign_id, subscriber_id, kind, category, status, diagnostic, remote_mta, reason, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (delivery_id, kind) DO NOTHING`,
		b.DeliveryID, b.CampaignID, b.SubscriberID, b.Kind, b.Category, b.Status, b.Diagnostic, b.RemoteMTA, b.Reason, b.CreatedAt)
	return res.RowsAffected > 0, res.Error
}

func (r *BounceResult) from(d *deliveryRef) {
	if d.CampaignID != nil {
		r.CampaignID = *d.CampaignID
	}
	if d.SubscriberID != nil {
		r.SubscriberID = *d.SubscriberID
	}
}

// RecordBounce records a hard or soft bounce of a delivery reported after
// the fact (a DSN by mail or an ESP webhook) through applyBounces, in one
// transaction. It returns ErrNotFound when the delivery does not exist.
func (s *Store) RecordBounce(ctx context.Context, n BounceNotice) (*BounceResult, error) {
	if n.Kind != BounceHard && n.Kind != BounceSoft {
		return nil, fmt.Errorf("models: record bounce: kind %q is not hard or soft", n.Kind)
	}
	var res *BounceResult
	err := s.tx(ctx, func(tx *gorm.DB) error {
		out, err := s.applyBounces(ctx, tx, []BounceNotice{n})
		if err != nil {
			return err
		}
		if res = out[0]; res == nil {
			return fmt.Errorf("delivery %d: %w", n.DeliveryID, ErrNotFound)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("models: record %s bounce of delivery %d: %w", n.Kind, n.DeliveryID, err)
	}
	return res, nil
}

// applyBounces is the one way a hard or soft bounce is applied, whatever
// its source: a refusal during delivery (RecordOutcomes), a DSN by mail or
// a webhook (RecordBounce). Within the caller's transaction, for each
// notice it writes the bounces row and, unless the delivery already had a
// bounce of that kind, counts it on the campaign (hard_bounces or
// soft_bounces) and applies list hygiene: a hard bounce suppresses the
// address at once and marks the delivery bounced if it was not (a DSN for
// a message the server had accepted); a soft bounce suppresses it once
// the hygiene rule (HygieneRule) says so. A whole batch of notices costs a
// few statements, not a few per notice. The result has one entry per
// notice, nil where the delivery does not exist.
func (s *Store) applyBounces(ctx context.Context, tx *gorm.DB, ns []BounceNotice) ([]*BounceResult, error) {
	out := make([]*BounceResult, len(ns))
	if len(ns) == 0 {
		return out, nil
	}
	ids := make([]int64, 0, len(ns))
	for _, n := range ns {
		if n.Kind != BounceHard && n.Kind != BounceSoft {
			return nil, fmt.Errorf("bounce of delivery %d: kind %q is not hard or soft", n.DeliveryID, n.Kind)
		}
		ids = append(ids, n.DeliveryID)
	}
	refs, err := deliveryRefsTx(tx, ids)
	if err != nil {
		return nil, err
	}
	inserted, err := insertBounces(tx, ns, refs)
	if err != nil {
		return nil, err
	}
	type bump struct{ hard, soft int64 }
	bumps := map[int64]*bump{}
	var (
		hardAddrs []BounceNotice // Email: the address to suppress
		softSubs  []*BounceResult
		softRefs  []*deliveryRef
	)
	for i, n := range ns {
		d := refs[n.DeliveryID]
		if d == nil {
			continue
		}
		res := &BounceResult{}
		res.from(d)
		out[i] = res
		key := bounceKey{n.DeliveryID, n.Kind}
		if !inserted[key] {
			res.Duplicate = true
			continue
		}
		delete(inserted, key) // a second notice of the same kind in ns is a duplicate
		if d.CampaignID != nil {
			b := bumps[*d.CampaignID]
			if b == nil {
				b = &bump{}
				bumps[*d.CampaignID] = b
			}
			if n.Kind == BounceHard {
				b.hard++
			} else {
				b.soft++
			}
		}
		if n.Kind == BounceSoft {
			if d.SubscriberID != nil && d.Email != "" {
				softSubs, softRefs = append(softSubs, res), append(softRefs, d)
			}
			continue
		}
		if d.Email != "" {
			hardAddrs = append(hardAddrs, BounceNotice{Email: d.Email, Status: n.Status, Diagnostic: n.Diagnostic})
			res.Suppressed = true
		}
		if d.Status != DeliveryBounced {
			if err := s.markBounced(tx, n, d); err != nil {
				return nil, err
			}
			d.Status = DeliveryBounced // a second notice in ns finds it bounced
		}
	}
	if err := suppressHardBounces(tx, hardAddrs); err != nil {
		return nil, err
	}
	for id, b := range bumps {
		if err := tx.Exec("UPDATE campaigns SET hard_bounces = hard_bounces + ?, soft_bounces = soft_bounces + ? WHERE id = ?",
			b.hard, b.soft, id).Error; err != nil {
			return nil, err
		}
	}
	if len(softRefs) == 0 {
		return out, nil
	}
	st := s.withDB(tx)
	rule, err := st.HygieneRule(ctx)
	if err != nil {
		return nil, err
	}
	done := map[int64]bool{}
	for i, d := range softRefs {
		if done[*d.SubscriberID] {
			continue
		}
		done[*d.SubscriberID] = true
		// A delivery that went through without bouncing shows the address
		// works: softBounceOffenders counts only soft bounces after it.
		hit, err := softBounceOffenders(tx, rule, *d.SubscriberID)
		if err != nil {
			return nil, err
		}
		if len(hit) == 0 {
			continue
		}
		if ok, err := allowListed(tx, d.Email); err != nil || ok {
			if err != nil {
				return nil, err
			}
			continue
		}
		note := fmt.Sprintf("%d soft bounces within %d days", hit[0].Bounces, rule.Days)
		if err := st.AddSuppression(ctx, d.Email, SuppressHardBounce, note); err != nil {
			return nil, err
		}
		softSubs[i].Suppressed = true
	}
	return out, nil
}

// deliveryRefsTx reads what applying bounces needs of each delivery.
func deliveryRefsTx(tx *gorm.DB, ids []int64) (map[int64]*deliveryRef, error) {
	var rows []deliveryRef
	err := tx.Raw(`SELECT d.id, d.campaign_id, d.subscriber_id, d.list_id, d.status,
		CASE WHEN s.id IS NULL THEN d.email ELSE s.email END AS email
		FROM deliveries d LEFT JOIN subscribers s ON s.id = d.subscriber_id WHERE d.id IN ?`, ids).Scan(&rows).Error
	if err != nil {
		return nil, err
	}
	out := make(map[int64]*deliveryRef, len(rows))
	for i := range rows {
		out[rows[i].ID] = &rows[i]
	}
	return out, nil
}

type bounceKey struct {
	delivery int64
	kind     string
}

// insertBounces writes the bounces rows of the notices whose delivery
// exists and reports which (delivery, kind) pairs are new: a delivery
// keeps one row of each kind.
func insertBounces(tx *gorm.DB, ns []BounceNotice, refs map[int64]*deliveryRef) (map[bounceKey]bool, error) {
	inserted := map[bounceKey]bool{}
	const chunk = 500
	var (
		q    strings.Builder
		args []any
	)
	at := dbNow()
	for len(ns) > 0 {
		k := min(len(ns), chunk)
		q.Reset()
		args = args[:0]
		for _, n := range ns[:k] {
			d := refs[n.DeliveryID]
			if d == nil {
				continue
			}
			if len(args) > 0 {
				q.WriteString(", ")
			}
			q.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
			args = append(args, d.ID, d.CampaignID, d.SubscriberID, n.Kind, n.Category, truncate(n.Status, 32),
				truncate(n.Diagnostic, 1000), truncate(n.RemoteMTA, 255), truncate(n.Reason, 1000), n.DuringDelivery, at)
		}
		ns = ns[k:]
		if len(args) == 0 {
			continue
		}
		var rows []struct {
			DeliveryID int64
			Kind       string
		}
		err := tx.Raw(`INSERT INTO bounces (delivery_id, campaign_id, subscriber_id, kind, category, status, diagnostic, remote_mta,
			reason, during_delivery, created_at) VALUES `+q.String()+` ON CONFLICT (delivery_id, kind) DO NOTHING RETURNING delivery_id, kind`, args...).Scan(&rows).Error
		if err != nil {
			return nil, err
		}
		for _, r := range rows {
			inserted[bounceKey{r.DeliveryID, r.Kind}] = true
		}
	}
	return inserted, nil
}

// suppressHardBounces suppresses the addresses (Email) of hard bounces in
// one statement; an address already suppressed keeps its entry.
func suppressHardBounces(tx *gorm.DB, ns []BounceNotice) error {
	if len(ns) == 0 {
		return nil
	}
	// One order for every writer, so two transactions suppressing the
	// same addresses wait for each other instead of deadlocking.
	sort.Slice(ns, func(i, j int) bool { return SuppressionHash(ns[i].Email) < SuppressionHash(ns[j].Email) })
	var q strings.Builder
	args := make([]any, 0, 6*len(ns))
	at := dbNow()
	for i, n := range ns {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString("(?, ?, ?, ?, ?, ?)")
		note := strings.TrimSpace(n.Status + " " + n.Diagnostic)
		args = append(args, "address", strings.ToLower(strings.TrimSpace(n.Email)), SuppressionHash(n.Email),
			SuppressHardBounce, truncate(note, 500), at)
	}
	return tx.Exec(`INSERT INTO suppressions (kind, value, value_hash, reason, note, created_at) VALUES `+q.String()+
		` ON CONFLICT (value_hash) DO NOTHING`, args...).Error
}

// markBounced turns a delivery the server had accepted into a bounced one
// when a hard bounce comes back later, moving it between the campaign's
// counters.
func (s *Store) markBounced(tx *gorm.DB, n BounceNotice, d *deliveryRef) error {
	changed, err := s.deliveries().markBounced(tx, d.ID, d.Status, n)
	if err != nil || !changed || d.CampaignID == nil {
		return err
	}
	c := &Counters{Bounced: 1}
	c.add(d.Status, -1)
	return tx.Exec(`UPDATE campaigns SET queued = queued + ?, sending = sending + ?, sent = sent + ?, deferred = deferred + ?,
		bounced = bounced + ?, failed = failed + ?, suppressed = suppressed + ? WHERE id = ?`,
		c.Queued, c.Sending, c.Sent, c.Deferred, c.Bounced, c.Failed, c.Suppressed, *d.CampaignID).Error
}

// bumpCampaign adds one to a campaign's bounce or complaint counter.
func bumpCampaign(tx *gorm.DB, campaignID *int64, column string) error {
	if campaignID == nil {
		return nil
	}
	return tx.Exec("UPDATE campaigns SET "+column+" = "+column+" + 1 WHERE id = ?", *campaignID).Error
}

// RecordComplaint records a spam complaint (an ARF report from a feedback
// loop): the subscriber is unsubscribed from every list, with a consent
// row of source complaint per list, and the address is suppressed. The
// complaint is attributed to n.DeliveryID, or without one to the subscriber
// with address n.Email; an address that is no subscriber is still
// suppressed. Recording a second complaint about a delivery changes nothing.
func (s *Store) RecordComplaint(ctx context.Context, n BounceNotice) (*BounceResult, error) {
	n.Kind = BounceComplaint
	res := &BounceResult{}
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var (
			d     *deliveryRef
			subID *int64
			email = n.Email
			err   error
		)
		if n.DeliveryID != 0 {
			if d, err = deliveryRefTx(tx, n.DeliveryID); err != nil {
				return err
			}
			res.from(d)
			subID, email = d.SubscriberID, d.Email
		} else if email != "" {
			var ids []int64
			if err := tx.Raw("SELECT id FROM subscribers WHERE lower(email) = lower(?)", email).Scan(&ids).Error; err != nil {
				return err
			}
			if len(ids) > 0 {
				subID, res.SubscriberID = &ids[0], ids[0]
			}
		} else {
			return errors.New("a complaint needs a delivery or an address")
		}
		ok, err := insertBounce(tx, n, d, subID)
		if err != nil {
			return err
		}
		if !ok {
			res.Duplicate = true
			return nil
		}
		if d != nil {
			if err := bumpCampaign(tx, d.CampaignID, "complaints"); err != nil {
				return err
			}
		}
		if subID != nil {
			var sub Subscriber
			if err := tx.First(&sub, *subID).Error; err != nil {
				return notFound(err)
			}
			var live int64
			if err := tx.Raw("SELECT COUNT(*) FROM subscriptions WHERE subscriber_id = ? AND status <> ?", sub.ID, SubUnsubscribed).Scan(&live).Error; err != nil {
				return err
			}
			ev := Evidence{Source: SourceComplaint, Actor: "feedback loop",
				Note: truncate(strings.TrimSpace("complaint "+n.Category+" via "+n.RemoteMTA), 200)}
			if err := s.withdrawAll(tx, &sub, ev); err != nil {
				return err
			}
			res.Unsubscribed = int(live)
			if email == "" {
				email = sub.Email
			}
		}
		if email != "" {
			if err := s.withDB(tx).AddSuppression(ctx, email, SuppressComplaint, truncate("complaint: "+n.Category, 500)); err != nil {
				return err
			}
			res.Suppressed = true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("models: record complaint (delivery %d): %w", n.DeliveryID, err)
	}
	return res, nil
}

// UnsubscribeDelivery unsubscribes a delivery's subscriber from the lists
// the campaign was sent to (the one-click unsubscribe of the message), with
// a consent row per list. ev.Source is usually SourceOneClick. It returns
// the number of lists left, and ErrNotFound when the delivery does not exist
// or has no subscriber.
func (s *Store) UnsubscribeDelivery(ctx context.Context, deliveryID int64, ev Evidence) (int, error) {
	left := 0
	err := s.tx(ctx, func(tx *gorm.DB) error {
		d, err := deliveryRefTx(tx, deliveryID)
		if err != nil {
			return err
		}
		if d.SubscriberID == nil {
			return fmt.Errorf("delivery %d has no subscriber: %w", deliveryID, ErrNotFound)
		}
		var sub Subscriber
		if err := tx.First(&sub, *d.SubscriberID).Error; err != nil {
			return notFound(err)
		}
		var listIDs []int64
		if err := tx.Raw(`SELECT sp.list_id FROM subscriptions sp WHERE sp.subscriber_id = ? AND sp.status <> ?
			AND (sp.list_id = ? OR sp.list_id IN (SELECT list_id FROM campaign_lists WHERE campaign_id = ?))`,
			sub.ID, SubUnsubscribed, d.ListID, d.CampaignID).Scan(&listIDs).Error; err != nil {
			return err
		}
		change := make(map[int64]string, len(listIDs))
		for _, l := range listIDs {
			change[l] = SubUnsubscribed
		}
		left = len(change)
		return s.setSubscriptions(tx, &sub, change, ev)
	})
	if err != nil {
		return 0, fmt.Errorf("models: unsubscribe delivery %d: %w", deliveryID, err)
	}
	return left, nil
}

// DeliveryWithMessageID returns delivery id when its message had the given
// Message-ID (with or without angle brackets), and ErrNotFound otherwise.
// The id comes from the caller (the mailer reads it from the Message-ID's
// token) and the stored Message-ID confirms it, so no index over
// Message-IDs is kept up for this rare lookup.
func (s *Store) DeliveryWithMessageID(ctx context.Context, id int64, messageID string) (*Delivery, error) {
	mid := strings.Trim(strings.TrimSpace(messageID), "<>")
	if mid == "" {
		return nil, fmt.Errorf("models: delivery by message-id: %w", ErrNotFound)
	}
	var d Delivery
	err := s.conn(ctx).Where("id = ? AND message_id IN ?", id, []string{"<" + mid + ">", mid}).First(&d).Error
	if err != nil {
		return nil, fmt.Errorf("models: delivery %d by message-id %q: %w", id, mid, notFound(err))
	}
	return &d, nil
}

// DeliveryByRecipient finds the latest delivery that went out (sent,
// bounced or deferred) to an address: a subscriber's campaign mail or
// transactional mail. It returns ErrNotFound when there is none.
func (s *Store) DeliveryByRecipient(ctx context.Context, email string) (*Delivery, error) {
	e, err := NormalizeEmail(email)
	if err != nil {
		return nil, fmt.Errorf("models: delivery to %q: %w", email, ErrNotFound)
	}
	db := s.conn(ctx)
	sent := []string{DeliverySent, DeliveryBounced, DeliveryDeferred}
	var out []Delivery
	var sub []int64
	if err := db.Raw("SELECT id FROM subscribers WHERE lower(email) = lower(?)", e).Scan(&sub).Error; err != nil {
		return nil, fmt.Errorf("models: delivery to %q: %w", e, err)
	}
	q := db.Where("status IN ?", sent).Order("id DESC").Limit(1)
	if len(sub) > 0 {
		q = q.Where("subscriber_id = ? OR email = ?", sub[0], e)
	} else {
		q = q.Where("email = ?", e)
	}
	if err := q.Find(&out).Error; err != nil {
		return nil, fmt.Errorf("models: delivery to %q: %w", e, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("models: delivery to %q: %w", e, ErrNotFound)
	}
	return &out[0], nil
}

// BounceStats are a campaign's deliveries that bounced or drew a complaint.
type BounceStats struct {
	Hard       int64
	Soft       int64
	Complaints int64
}

// CampaignBounceStats returns a campaign's bounce and complaint counters.
func (s *Store) CampaignBounceStats(ctx context.Context, campaignID int64) (*BounceStats, error) {
	var st []BounceStats
	err := s.conn(ctx).Raw("SELECT hard_bounces AS hard, soft_bounces AS soft, complaints FROM campaigns WHERE id = ?",
		campaignID).Scan(&st).Error
	if err != nil {
		return nil, fmt.Errorf("models: bounce stats of campaign %d: %w", campaignID, err)
	}
	if len(st) == 0 {
		return nil, fmt.Errorf("models: bounce stats of campaign %d: %w", campaignID, ErrNotFound)
	}
	return &st[0], nil
}

// BouncesOfCampaign returns a page of a campaign's bounces and complaints
// by id, after the cursor id.
func (s *Store) BouncesOfCampaign(ctx context.Context, campaignID, after int64, limit int) ([]Bounce, error) {
	var out []Bounce
	err := s.conn(ctx).Where("campaign_id = ? AND id > ?", campaignID, after).Order("id").Limit(limit).Find(&out).Error
	if err != nil {
		return nil, fmt.Errorf("models: bounces of campaign %d: %w", campaignID, err)
	}
	return out, nil
}
