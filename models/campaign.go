package models

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"gorm.io/gorm"
)

// Campaign statuses.
const (
	CampaignDraft     = "draft"
	CampaignScheduled = "scheduled"
	CampaignRunning   = "running"
	CampaignPaused    = "paused"
	CampaignFinished  = "finished"
	CampaignCancelled = "cancelled"
)

// Campaign body formats.
const (
	FormatHTML     = "html"     // HTML is the HTML body as written
	FormatMarkdown = "markdown" // HTML holds Markdown, rendered into the built-in layout
)

// Campaign is one mailing to the subscribers of some lists. It carries its
// own content (subject, preheader, body, text part), copied from the
// template it started from when it is created: editing it changes no
// template and no other campaign.
type Campaign struct {
	ID         int64
	Name       string
	TemplateID *int64 // the template the content started from (nil once deleted)
	Subject    string
	// Preheader is the preview text shown after the subject in inboxes,
	// hidden at the top of the HTML part; "" for none.
	Preheader string
	// HTML is the body: HTML (html/template), or Markdown when Format is
	// FormatMarkdown. Text is the text part (text/template); "" means
	// derived from the HTML when sent.
	HTML            string `gorm:"column:html"`
	Text            string
	Format          string // FormatHTML ("" reads as it) or FormatMarkdown
	FromName        string
	FromEmail       string
	ReplyTo         string
	SendingDomainID *int64 // nil: the sending domain matching FromEmail, if any
	IPPoolID        *int64 // nil: the engine's default source address
	Transport       string // name of a configured transport; "" the default
	TrackOpens      bool
	TrackClicks     bool
	UTM             bool `gorm:"column:utm"`
	Status          string
	// PauseReason says why Herald paused the campaign by itself
	// (PauseCampaignFor); "" when a person paused it or it is not paused.
	PauseReason string
	ScheduledAt *time.Time
	StartedAt   *time.Time
	FinishedAt  *time.Time
	CreatedAt   time.Time
	UpdatedAt   time.Time

	MaterializeCursor int64
	MaterializedAt    *time.Time

	// AutomationID is the automation whose send step this campaign is
	// (automation.go): hidden from the campaign list, never finished.
	AutomationID *int64
	// OccurrenceOf is the send step's campaign this one repeats for the
	// runs of occurrence Occurrence (an anniversary's year): each year's
	// message is a delivery of its own (automation_engine.go).
	OccurrenceOf *int64
	Occurrence   int

	SendTime `gorm:"embedded"`

	Counters `gorm:"embedded"`

	// AB is the campaign's A/B test (abtest.go); Variants its versions,
	// not loaded by Campaign (CampaignVariants) and written by Create- and
	// UpdateCampaign when not nil (empty: no test).
	AB       ABTest    `gorm:"embedded"`
	Variants []Variant `gorm:"-"`
}

// Counters are a campaign's deliveries by status, kept exact by the store.
type Counters struct {
	Queued     int64
	Sending    int64
	Sent       int64
	Deferred   int64
	Bounced    int64
	Failed     int64
	Suppressed int64
}

// Total is the number of deliveries materialised so far.
func (c Counters) Total() int64 {
	return c.Queued + c.Sending + c.Sent + c.Deferred + c.Bounced + c.Failed + c.Suppressed
}

// CampaignStateError is returned when a campaign is asked to move to a
// status its current status does not allow. It matches ErrConflict.
type CampaignStateError struct {
	ID     int64
	Status string // the current status
	Action string // what was asked: start, pause, resume, cancel, schedule
}

func (e *CampaignStateError) Error() string {
	return fmt.Sprintf("campaign %d is %s and cannot %s", e.ID, e.Status, e.Action)
}

// Unwrap lets errors.Is(err, ErrConflict) hold.
func (e *CampaignStateError) Unwrap() error { return ErrConflict }

// Validate returns a field→message map, empty when the campaign may be saved.
func (c *Campaign) Validate() map[string]string {
	errs := map[string]string{}
	c.Name = strings.TrimSpace(c.Name)
	if c.Name == "" {
		errs["name"] = "Give the campaign a name."
	} else if utf8.RuneCountInString(c.Name) > MaxNameLength {
		errs["name"] = fmt.Sprintf("Keep the name under %d characters.", MaxNameLength)
	}
	if utf8.RuneCountInString(c.Subject) > MaxSubjectLength {
		errs["subject"] = fmt.Sprintf("Keep the subject under %d characters.", MaxSubjectLength)
	}
	if c.Format == "" {
		c.Format = FormatHTML
	}
	if c.Format != FormatHTML && c.Format != FormatMarkdown {
		errs["format"] = "Choose HTML or Markdown."
	}
	if c.ID == 0 && c.TemplateID == nil && strings.TrimSpace(c.HTML) == "" && strings.TrimSpace(c.Text) == "" {
		errs["template_id"] = "Choose a template to start from, or write a body."
	}
	if c.ID != 0 && strings.TrimSpace(c.HTML) == "" && strings.TrimSpace(c.Text) == "" {
		errs["html"] = "Write the message: a body, or at least a text part."
	}
	if utf8.RuneCountInString(c.Preheader) > MaxSubjectLength {
		errs["preheader"] = fmt.Sprintf("Keep the preheader under %d characters.", MaxSubjectLength)
	}
	if len(c.HTML) > MaxTemplateBytes {
		errs["html"] = fmt.Sprintf("Keep the body under %d KB.", MaxTemplateBytes/1024)
	}
	if len(c.Text) > MaxTemplateBytes {
		errs["text"] = fmt.Sprintf("Keep the text part under %d KB.", MaxTemplateBytes/1024)
	}
	if e, err := NormalizeEmail(c.FromEmail); err != nil {
		errs["from_email"] = err.Error()
	} else {
		c.FromEmail = e
	}
	c.validateAB(errs)
	if len(c.Variants) > 0 && strings.TrimSpace(c.LocalSendAt) != "" {
		// The test share must go out at once so the variants are compared
		// over the same hours, and the held remainder must wait for the
		// winner, not for each zone's hour.
		errs["local_send_at"] = "An A/B test cannot be combined with delivery at a local time: " +
			"choose \"Send when the campaign starts\" or remove the A/B test."
	}
	return errs
}

// CreateCampaign stores a draft campaign sent to the given lists. A
// campaign given no body starts from its template: the template's subject
// (unless the campaign has one), HTML and text part are copied into it.
func (s *Store) CreateCampaign(ctx context.Context, c *Campaign, listIDs []int64) error {
	err := s.tx(ctx, func(tx *gorm.DB) error {
		c.CreatedAt, c.UpdatedAt = dbNow(), dbNow()
		if c.Status == "" {
			c.Status = CampaignDraft
		}
		if c.Format == "" {
			c.Format = FormatHTML
		}
		if c.TemplateID != nil && strings.TrimSpace(c.HTML) == "" && strings.TrimSpace(c.Text) == "" {
			var t Template
			if err := tx.First(&t, *c.TemplateID).Error; err != nil {
				return notFound(err)
			}
			c.HTML, c.Text, c.Format = t.HTML, t.Text, FormatHTML
			if strings.TrimSpace(c.Subject) == "" {
				c.Subject = t.Subject
			}
		}
		c.Counters = Counters{}
		if err := tx.Create(c).Error; err != nil {
			return err
		}
		if err := setCampaignVariants(tx, c.ID, c.Variants); err != nil {
			return err
		}
		return setCampaignLists(tx, c.ID, listIDs)
	})
	if err != nil {
		return fmt.Errorf("models: create campaign: %w", err)
	}
	return nil
}

func setCampaignLists(tx *gorm.DB, id int64, listIDs []int64) error {
	if err := tx.Exec("DELETE FROM campaign_lists WHERE campaign_id = ?", id).Error; err != nil {
		return err
	}
	for _, l := range listIDs {
		if err := tx.Exec("INSERT INTO campaign_lists (campaign_id, list_id) VALUES (?, ?) ON CONFLICT DO NOTHING", id, l).Error; err != nil {
			return err
		}
	}
	return nil
}

// UpdateCampaign saves a draft or scheduled campaign's settings, content
// and lists. Only this campaign's row changes: never its template.
func (s *Store) UpdateCampaign(ctx context.Context, c *Campaign, listIDs []int64) error {
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var cur Campaign
		if err := tx.First(&cur, c.ID).Error; err != nil {
			return notFound(err)
		}
		if cur.Status != CampaignDraft && cur.Status != CampaignScheduled {
			return &CampaignStateError{c.ID, cur.Status, "be edited"}
		}
		err := tx.Model(&Campaign{}).Where("id = ?", c.ID).Updates(map[string]any{
			"name": c.Name, "template_id": c.TemplateID, "subject": c.Subject, "preheader": c.Preheader,
			"html": c.HTML, "text": c.Text, "format": c.Format, "from_name": c.FromName,
			"from_email": c.FromEmail, "reply_to": c.ReplyTo, "sending_domain_id": c.SendingDomainID,
			"ip_pool_id": c.IPPoolID, "transport": c.Transport, "track_opens": c.TrackOpens,
			"track_clicks": c.TrackClicks, "utm": c.UTM, "updated_at": dbNow(),
		}).Error
		if err != nil {
			return err
		}
		if c.Variants != nil {
			if err := tx.Model(&Campaign{}).Where("id = ?", c.ID).Updates(map[string]any{"ab_share": c.AB.Share,
				"ab_metric": c.AB.Metric, "ab_wait_seconds": c.AB.WaitSeconds, "ab_manual": c.AB.Manual}).Error; err != nil {
				return err
			}
			if err := setCampaignVariants(tx, c.ID, c.Variants); err != nil {
				return err
			}
		}
		return setCampaignLists(tx, c.ID, listIDs)
	})
	if err != nil {
		return fmt.Errorf("models: update campaign %d: %w", c.ID, err)
	}
	return nil
}

// Campaign returns one campaign with its counters.
func (s *Store) Campaign(ctx context.Context, id int64) (*Campaign, error) {
	var c Campaign
	if err := s.conn(ctx).First(&c, id).Error; err != nil {
		return nil, fmt.Errorf("models: campaign %d: %w", id, notFound(err))
	}
	return &c, nil
}

// listOmit leaves a campaign's bodies (up to MaxTemplateBytes each) out
// of lists of campaigns, which show neither.
var listOmit = []string{"html", "text"}

// Campaigns returns campaigns newest first, before the cursor id (0: from
// the newest), without their bodies (HTML and Text are empty). An
// automation's campaigns are shown with their automation, not here.
func (s *Store) Campaigns(ctx context.Context, before int64, limit int) ([]Campaign, error) {
	q := s.conn(ctx).Omit(listOmit...).Where("automation_id IS NULL").Order("id DESC").Limit(limit)
	if before > 0 {
		q = q.Where("id < ?", before)
	}
	var out []Campaign
	if err := q.Find(&out).Error; err != nil {
		return nil, fmt.Errorf("models: campaigns: %w", err)
	}
	return out, nil
}

// CampaignLists returns the ids of the lists a campaign is sent to.
func (s *Store) CampaignLists(ctx context.Context, id int64) ([]int64, error) {
	var ids []int64
	if err := s.conn(ctx).Raw("SELECT list_id FROM campaign_lists WHERE campaign_id = ? ORDER BY list_id", id).Scan(&ids).Error; err != nil {
		return nil, fmt.Errorf("models: lists of campaign %d: %w", id, err)
	}
	return ids, nil
}

// CampaignProgress is what the campaign page polls: one primary-key read.
type CampaignProgress struct {
	ID         int64
	Status     string
	StartedAt  *time.Time
	FinishedAt *time.Time
	// MaterializedAt is set once every delivery exists: until then the
	// counters' total is still growing.
	MaterializedAt *time.Time
	Counters       `gorm:"embedded"`
}

// CampaignProgress returns a campaign's status and counters.
func (s *Store) CampaignProgress(ctx context.Context, id int64) (*CampaignProgress, error) {
	var p []CampaignProgress
	err := s.conn(ctx).Raw(`SELECT id, status, started_at, finished_at, materialized_at, queued, sending, sent,
		deferred, bounced, failed, suppressed FROM campaigns WHERE id = ?`, id).Scan(&p).Error
	if err != nil {
		return nil, fmt.Errorf("models: progress of campaign %d: %w", id, err)
	}
	if len(p) == 0 {
		return nil, fmt.Errorf("models: progress of campaign %d: %w", id, ErrNotFound)
	}
	return &p[0], nil
}

// transition moves a campaign from one of from to status to, or returns a
// CampaignStateError.
func (s *Store) transition(ctx context.Context, id int64, action string, from []string, to string, extra map[string]any) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		var cur []string
		if err := tx.Raw("SELECT status FROM campaigns WHERE id = ?", id).Scan(&cur).Error; err != nil {
			return err
		}
		if len(cur) == 0 {
			return ErrNotFound
		}
		ok := false
		for _, f := range from {
			ok = ok || cur[0] == f
		}
		if !ok {
			return &CampaignStateError{id, cur[0], action}
		}
		set := map[string]any{"status": to, "updated_at": dbNow()}
		for k, v := range extra {
			set[k] = v
		}
		return tx.Model(&Campaign{}).Where("id = ?", id).Updates(set).Error
	})
}

// StartCampaign moves a draft or scheduled campaign to running. Its
// deliveries are materialised by the mailer (MaterializeCampaign).
func (s *Store) StartCampaign(ctx context.Context, id int64) error {
	if err := s.transition(ctx, id, "start", []string{CampaignDraft, CampaignScheduled}, CampaignRunning,
		map[string]any{"started_at": dbNow()}); err != nil {
		return fmt.Errorf("models: start campaign %d: %w", id, err)
	}
	return nil
}

// ScheduleCampaign sets a draft campaign to start at a time.
func (s *Store) ScheduleCampaign(ctx context.Context, id int64, at time.Time) error {
	if err := s.transition(ctx, id, "be scheduled", []string{CampaignDraft, CampaignScheduled}, CampaignScheduled,
		map[string]any{"scheduled_at": dbTime(at)}); err != nil {
		return fmt.Errorf("models: schedule campaign %d: %w", id, err)
	}
	return nil
}

// PauseCampaign stops a running or scheduled campaign from being sent.
func (s *Store) PauseCampaign(ctx context.Context, id int64) error {
	if err := s.transition(ctx, id, "pause", []string{CampaignRunning, CampaignScheduled}, CampaignPaused,
		map[string]any{"pause_reason": ""}); err != nil {
		return fmt.Errorf("models: pause campaign %d: %w", id, err)
	}
	return nil
}

// ResumeCampaign lets a paused campaign be sent again.
func (s *Store) ResumeCampaign(ctx context.Context, id int64) error {
	if err := s.transition(ctx, id, "resume", []string{CampaignPaused}, CampaignRunning,
		map[string]any{"started_at": gorm.Expr("COALESCE(started_at, ?)", dbNow()), "pause_reason": ""}); err != nil {
		return fmt.Errorf("models: resume campaign %d: %w", id, err)
	}
	return nil
}

// CancelCampaign stops a campaign for good. Deliveries not yet sent stay in
// their state and are never claimed again.
func (s *Store) CancelCampaign(ctx context.Context, id int64) error {
	if err := s.transition(ctx, id, "cancel", []string{CampaignDraft, CampaignScheduled, CampaignRunning, CampaignPaused},
		CampaignCancelled, map[string]any{"finished_at": dbNow()}); err != nil {
		return fmt.Errorf("models: cancel campaign %d: %w", id, err)
	}
	return nil
}

// DueScheduledCampaigns returns the ids of scheduled campaigns whose time
// has come.
func (s *Store) DueScheduledCampaigns(ctx context.Context) ([]int64, error) {
	var ids []int64
	err := s.conn(ctx).Raw("SELECT id FROM campaigns WHERE status = ? AND scheduled_at <= ?",
		CampaignScheduled, dbNow()).Scan(&ids).Error
	if err != nil {
		return nil, fmt.Errorf("models: due campaigns: %w", err)
	}
	return ids, nil
}

// CampaignStatus is the little the mailer polls about each live campaign.
type CampaignStatus struct {
	ID           int64
	Status       string
	Materialized bool
	// PoolPaused is the campaign's IP pool's PausedReason: while it is
	// set, the engine sends none of the campaign's mail.
	PoolPaused string
}

// CampaignStatuses returns the status of every running or paused campaign
// and of the given ids.
func (s *Store) CampaignStatuses(ctx context.Context, ids []int64) ([]CampaignStatus, error) {
	var rows []struct {
		ID             int64
		Status         string
		MaterializedAt *time.Time
		PausedReason   *string
	}
	q := `SELECT c.id, c.status, c.materialized_at, p.paused_reason FROM campaigns c
		LEFT JOIN ip_pools p ON p.id = c.ip_pool_id WHERE c.status IN (?, ?)`
	args := []any{CampaignRunning, CampaignPaused}
	if len(ids) > 0 {
		q += " OR c.id IN ?"
		args = append(args, ids)
	}
	if err := s.conn(ctx).Raw(q, args...).Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("models: campaign statuses: %w", err)
	}
	out := make([]CampaignStatus, len(rows))
	for i, r := range rows {
		out[i] = CampaignStatus{ID: r.ID, Status: r.Status, Materialized: r.MaterializedAt != nil}
		if r.PausedReason != nil {
			out[i].PoolPaused = *r.PausedReason
		}
	}
	return out, nil
}

// FinishCampaignIfDone marks a running, fully materialised campaign finished
// when none of its deliveries is waiting or in flight, and reports whether
// it did.
func (s *Store) FinishCampaignIfDone(ctx context.Context, id int64) (bool, error) {
	res := s.conn(ctx).Exec(`UPDATE campaigns SET status = ?, finished_at = ?, updated_at = ?
		WHERE id = ? AND status = ? AND materialized_at IS NOT NULL AND automation_id IS NULL
		AND NOT EXISTS (SELECT 1 FROM deliveries WHERE campaign_id = ? AND status = 'queued')
		AND NOT EXISTS (SELECT 1 FROM deliveries WHERE campaign_id = ? AND status = 'deferred')
		AND NOT EXISTS (SELECT 1 FROM deliveries WHERE campaign_id = ? AND status = 'sending')`,
		CampaignFinished, dbNow(), dbNow(), id, CampaignRunning, id, id, id)
	if res.Error != nil {
		return false, fmt.Errorf("models: finish campaign %d: %w", id, res.Error)
	}
	return res.RowsAffected > 0, nil
}

// Link is a tracked URL of a campaign.
type Link struct {
	ID         int64
	CampaignID int64
	URL        string `gorm:"column:url"`
}

// EnsureLinks stores a campaign's tracked URLs (once each) and returns their
// ids in the order given.
func (s *Store) EnsureLinks(ctx context.Context, campaignID int64, urls []string) ([]int64, error) {
	ids := make([]int64, len(urls))
	err := s.tx(ctx, func(tx *gorm.DB) error {
		for i, u := range urls {
			if err := tx.Exec("INSERT INTO links (campaign_id, url) VALUES (?, ?) ON CONFLICT (campaign_id, url) DO NOTHING", campaignID, u).Error; err != nil {
				return err
			}
			if err := tx.Raw("SELECT id FROM links WHERE campaign_id = ? AND url = ?", campaignID, u).Scan(&ids[i]).Error; err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("models: links of campaign %d: %w", campaignID, err)
	}
	return ids, nil
}

// Link returns one tracked link (the click redirect looks its target up).
func (s *Store) Link(ctx context.Context, id int64) (*Link, error) {
	var l Link
	if err := s.conn(ctx).First(&l, id).Error; err != nil {
		return nil, fmt.Errorf("models: link %d: %w", id, notFound(err))
	}
	return &l, nil
}

// CountEligibleRecipients counts the people a campaign to listIDs would be
// sent to right now (CountAudience of those lists).
func (s *Store) CountEligibleRecipients(ctx context.Context, listIDs []int64) (int64, error) {
	return s.CountAudience(ctx, Audience{Lists: listIDs})
}

// CampaignsByStatus returns the campaigns in any of the statuses, newest
// first, without their bodies.
func (s *Store) CampaignsByStatus(ctx context.Context, statuses ...string) ([]Campaign, error) {
	var out []Campaign
	if err := s.conn(ctx).Omit(listOmit...).Where("status IN ?", statuses).Order("id DESC").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("models: campaigns by status: %w", err)
	}
	return out, nil
}

// ComplaintStats returns the messages sent and the complaints received by
// the campaigns started since t (the campaign counters, so one small scan).
func (s *Store) ComplaintStats(ctx context.Context, since time.Time) (sent, complaints int64, err error) {
	var row struct{ Sent, Complaints int64 }
	err = s.conn(ctx).Raw("SELECT COALESCE(SUM(sent), 0) AS sent, COALESCE(SUM(complaints), 0) AS complaints FROM campaigns WHERE started_at >= ?",
		dbTime(since)).Scan(&row).Error
	if err != nil {
		return 0, 0, fmt.Errorf("models: complaint stats: %w", err)
	}
	return row.Sent, row.Complaints, nil
}

// CloneCampaign copies a campaign's settings and lists into a new draft
// named "Copy of …" and returns it.
func (s *Store) CloneCampaign(ctx context.Context, id int64) (*Campaign, error) {
	src, err := s.Campaign(ctx, id)
	if err != nil {
		return nil, err
	}
	lists, err := s.CampaignLists(ctx, id)
	if err != nil {
		return nil, err
	}
	c := &Campaign{Name: "Copy of " + src.Name, TemplateID: src.TemplateID, Subject: src.Subject,
		Preheader: src.Preheader, HTML: src.HTML, Text: src.Text, Format: src.Format,
		FromName: src.FromName, FromEmail: src.FromEmail, ReplyTo: src.ReplyTo, SendingDomainID: src.SendingDomainID,
		IPPoolID: src.IPPoolID, Transport: src.Transport, TrackOpens: src.TrackOpens, TrackClicks: src.TrackClicks, UTM: src.UTM,
		AB: ABTest{Share: src.AB.Share, Metric: src.AB.Metric, WaitSeconds: src.AB.WaitSeconds, Manual: src.AB.Manual}}
	c.SendTime = SendTime{LocalSendAt: src.LocalSendAt, TZAttribute: src.TZAttribute, TZDefault: src.TZDefault}
	if c.Variants, err = s.CampaignVariants(ctx, id); err != nil {
		return nil, err
	}
	if err := s.CreateCampaign(ctx, c, lists); err != nil {
		return nil, err
	}
	a, err := s.CampaignAudience(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := s.SetCampaignAudience(ctx, c.ID, a); err != nil {
		return nil, err
	}
	return c, nil
}

// UnscheduleCampaign turns a scheduled campaign back into a draft.
func (s *Store) UnscheduleCampaign(ctx context.Context, id int64) error {
	if err := s.transition(ctx, id, "be unscheduled", []string{CampaignScheduled}, CampaignDraft,
		map[string]any{"scheduled_at": nil}); err != nil {
		return fmt.Errorf("models: unschedule campaign %d: %w", id, err)
	}
	return nil
}
