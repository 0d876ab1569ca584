package models

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"gorm.io/gorm"
)

// Automation statuses.
const (
	AutomationDraft  = "draft"
	AutomationActive = "active"
	AutomationPaused = "paused"
)

// Automation triggers.
const (
	TriggerListConfirmed  = "list_confirmed"  // confirmed on the list (or joined a single opt-in list)
	TriggerListSubscribed = "list_subscribed" // joined the list, confirmed or not yet
	TriggerAPI            = "api"             // entered by EnterAutomation (POST /api/v1/automations/{id}/enter)
	// TriggerSegment: entered segment TriggerSegmentID. The people in it
	// when the trigger first looks (after activation) are recorded as
	// done runs and never enter; from then on whoever is found in it
	// enters, once.
	TriggerSegment = "segment"
	// TriggerCampaignEvent: an event on campaign TriggerCampaignID,
	// TriggerEvent: opened it, clicked (TriggerURL, or any link when
	// empty), or did not open nor click it within TriggerDays days of
	// its sending. Events by machines do not count.
	TriggerCampaignEvent = "campaign_event"
	// TriggerAttributeChanged: attribute TriggerAttribute changed (to
	// *TriggerValue when set). The first look after activation reads
	// everyone's value; each look then lets in the people whose value
	// differs from the last reading (a newcomer: has the attribute), once.
	TriggerAttributeChanged = "attribute_changed"
	// TriggerAnniversary: the anniversary of date attribute
	// TriggerAttribute ("1990-07-14" or "07-14"), TriggerDays days
	// before it, at TriggerTime ("HH:MM", "" 09:00) on the subscriber's
	// clock (TZAttribute, TZDefault). A 29 February falls on 28 February
	// in other years. It lets the same person in every year: each year
	// is a run of its own (AutomationRun.Occurrence, the anniversary's
	// year), so one still inside last year's run starts this year's
	// beside it. The trigger looks back to its last look, at most two
	// days: anniversaries missed by a longer outage or pause are not
	// sent late.
	// Only people on the automation's list (any list when none) enter.
	TriggerAnniversary = "anniversary"
)

// DefaultTriggerTime is the anniversary trigger's hour when none is set.
const DefaultTriggerTime = "09:00"

// Campaign events of TriggerCampaignEvent.
const (
	OnOpened    = "opened"
	OnClicked   = "clicked"
	OnNotOpened = "not_opened"
)

// Step kinds.
const (
	StepSend   = "send"
	StepWait   = "wait"
	StepBranch = "branch"
	StepExit   = "exit"
	// StepListAdd puts the people on TargetListID (confirmed, a consent
	// row with basis legitimate interest and source automation) unless
	// they have a row there already: one who unsubscribed from it stays
	// unsubscribed. StepListRemove unsubscribes them from it.
	StepListAdd    = "list_add"
	StepListRemove = "list_remove"
	StepSetAttr    = "set_attribute" // AttrKey := AttrValue (text)
	// StepWebhook writes an "automation.step" event per person to the
	// outbox of outgoing webhook WebhookID (whatever events it wants):
	// the webhook dispatcher signs, posts and retries it.
	StepWebhook = "webhook"
)

// Branch conditions.
const (
	CondClicked   = "clicked"   // clicked a link in the message of step CondStep
	CondOpened    = "opened"    // opened the message of step CondStep
	CondAttribute = "attribute" // attribute CondKey reads CondValue
	CondSegment   = "segment"   // in segment SegmentID now
)

// Edit modes: what happens to the people inside when the steps change.
const (
	EditContinue = "continue" // they move to the new version at their current step
	EditFinish   = "finish"   // they finish the version they entered on
)

// Automation is a trigger and ordered steps. Version counts the edits of
// the steps once people have entered: runs keep the version they are on.
type Automation struct {
	ID            int64
	Name          string
	Status        string
	TriggerKind   string
	ListID        *int64 // the trigger's list (and the unsubscribe link of its mail)
	ExitAttribute string // exit criterion: leave once this attribute ...
	ExitValue     string // ... reads this value ("" no criterion)
	// TZAttribute names the attribute holding a subscriber's IANA zone;
	// TZDefault is the zone of those without one ("" UTC). Waits count
	// days and hours on the subscriber's wall clock.
	TZAttribute     string `gorm:"column:tz_attribute"`
	TZDefault       string `gorm:"column:tz_default"`
	FromName        string
	FromEmail       string
	Version         int
	TestWaitSeconds int        // every wait of a test run lasts this long
	EnteredThrough  *time.Time // when the trigger last looked for newcomers
	// The segment and campaign-event triggers' settings (see the
	// trigger constants).
	TriggerSegmentID  *int64
	TriggerCampaignID *int64
	TriggerEvent      string
	TriggerURL        string `gorm:"column:trigger_url"`
	TriggerDays       int
	TriggerAttribute  string
	TriggerValue      *string
	TriggerTime       string // the anniversary trigger's hour, "HH:MM"
	ActivatedAt       *time.Time
	CreatedAt         time.Time
	UpdatedAt         time.Time
}

// AutomationStep is one step of one version of an automation.
type AutomationStep struct {
	ID           int64
	AutomationID int64
	Version      int
	Position     int // from 1
	Kind         string
	CampaignID   *int64 // send: the step's campaign, holding its content
	// Wait: WaitDays calendar days and WaitSeconds seconds on the
	// subscriber's clock, then, when WaitUntil ("HH:MM") is set, until
	// that hour, on weekday WaitWeekday when 0 (Sunday) to 6.
	WaitDays    int
	WaitSeconds int
	WaitUntil   string
	WaitWeekday int
	// Branch: Cond with its CondStep (a send step's position) or its
	// CondKey and CondValue; true goes to ThenStep, false to ElseStep
	// (0 the next step, -1 the end, else a position).
	Cond      string
	CondStep  int
	CondKey   string
	CondValue string
	ThenStep  int
	ElseStep  int
	SegmentID *int64 // branch on segment membership

	// List steps: the list; set_attribute: the attribute and its value.
	TargetListID *int64
	AttrKey      string
	AttrValue    string
	WebhookID    *int64 // notify a webhook

	// A segment branch's compiled condition on subscribers s, compiled
	// by the engine before the step's transaction.
	segSQL  string `gorm:"-"`
	segArgs []any  `gorm:"-"`
	// Content of a send step, read from and written to its campaign.
	Subject string `gorm:"-"`
	HTML    string `gorm:"-"`
	Text    string `gorm:"-"`
}

// TableName keeps GORM from pluralising oddly.
func (AutomationStep) TableName() string { return "automation_steps" }

// Validate returns a field→message map, empty when the automation may be
// saved.
func (a *Automation) Validate() map[string]string {
	errs := map[string]string{}
	a.Name = strings.TrimSpace(a.Name)
	if a.Name == "" {
		errs["name"] = "Give the automation a name."
	} else if utf8.RuneCountInString(a.Name) > MaxNameLength {
		errs["name"] = fmt.Sprintf("Keep the name under %d characters.", MaxNameLength)
	}
	switch a.TriggerKind {
	case TriggerListConfirmed, TriggerListSubscribed:
		if a.ListID == nil || *a.ListID == 0 {
			errs["list_id"] = "Choose the list whose new subscribers enter."
		}
	case TriggerAPI:
	case TriggerSegment:
		if a.TriggerSegmentID == nil || *a.TriggerSegmentID <= 0 {
			errs["trigger_segment_id"] = "Choose the segment whose newcomers enter."
		}
	case TriggerCampaignEvent:
		if a.TriggerCampaignID == nil || *a.TriggerCampaignID <= 0 {
			errs["trigger_campaign_id"] = "Choose the campaign whose events let people in."
		}
		a.TriggerURL = strings.TrimSpace(a.TriggerURL)
		switch a.TriggerEvent {
		case OnOpened:
		case OnClicked:
			if len(a.TriggerURL) > 2000 {
				errs["trigger_url"] = "Keep the link under 2000 characters."
			}
		case OnNotOpened:
			if a.TriggerDays < 1 || a.TriggerDays > 365 {
				errs["trigger_days"] = "Give the days to wait for an open: 1 to 365."
			}
		default:
			errs["trigger_event"] = "Choose the event: opened, clicked or did not open."
		}
	case TriggerAttributeChanged:
		triggerAttribute(a, errs, "Name the attribute whose change lets people in.")
		if a.TriggerValue != nil && len(*a.TriggerValue) > 1000 {
			errs["trigger_value"] = "Keep the value under 1000 characters."
		}
	case TriggerAnniversary:
		triggerAttribute(a, errs, "Name the date attribute whose anniversary lets people in (such as birthday).")
		a.TriggerTime = strings.TrimSpace(a.TriggerTime)
		if a.TriggerTime == "" {
			a.TriggerTime = DefaultTriggerTime
		} else if _, _, ok := parseHHMM(a.TriggerTime); !ok {
			errs["trigger_time"] = "Give the hour as HH:MM, such as 09:00."
		}
		if a.TriggerDays < 0 || a.TriggerDays > 365 {
			errs["trigger_days"] = "Give the days before the anniversary: 0 (on the day) to 365."
		}
	default:
		errs["trigger_kind"] = "Choose a trigger: confirmed on a list, subscribed to a list, the API, a segment, a campaign event, an attribute change or an anniversary."
	}
	if e, err := NormalizeEmail(a.FromEmail); err != nil {
		errs["from_email"] = err.Error()
	} else {
		a.FromEmail = e
	}
	if a.TZDefault != "" {
		if _, err := loadZone(a.TZDefault); err != nil {
			errs["tz_default"] = fmt.Sprintf("%q is not a time zone (use an IANA name such as Europe/Paris).", a.TZDefault)
		}
	}
	if a.TestWaitSeconds < 0 || a.TestWaitSeconds > 3600 {
		errs["test_wait_seconds"] = "A test wait lasts from 0 to 3600 seconds."
	}
	if a.ExitAttribute == "" && a.ExitValue != "" {
		errs["exit_attribute"] = "Name the attribute the exit value is read from."
	}
	return errs
}

// ValidateSteps checks a version's steps; keys are "steps.N.field".
func ValidateSteps(steps []AutomationStep) map[string]string {
	errs := map[string]string{}
	n := len(steps)
	if n == 0 {
		errs["steps"] = "Add at least one step."
	}
	if n > 100 {
		errs["steps"] = "An automation has at most 100 steps."
	}
	for i := range steps {
		st := &steps[i]
		st.Position = i + 1
		key := fmt.Sprintf("steps.%d.", i+1)
		target := func(f string, v int) {
			if v < -1 || v > n || v == st.Position {
				errs[key+f] = fmt.Sprintf("Step %d cannot go to step %d: choose another step, the next one or the end.", i+1, v)
			}
		}
		switch st.Kind {
		case StepSend:
			if strings.TrimSpace(st.Subject) == "" {
				errs[key+"subject"] = "Give the message a subject."
			}
			if strings.TrimSpace(st.HTML) == "" && strings.TrimSpace(st.Text) == "" {
				errs[key+"html"] = "Write the message: a body, or at least a text part."
			}
			if len(st.HTML) > MaxTemplateBytes || len(st.Text) > MaxTemplateBytes {
				errs[key+"html"] = fmt.Sprintf("Keep the body under %d KB.", MaxTemplateBytes/1024)
			}
		case StepWait:
			if st.WaitDays < 0 || st.WaitSeconds < 0 || st.WaitDays > 3660 {
				errs[key+"wait"] = "A wait is a positive number of days and seconds."
			}
			if st.WaitUntil != "" {
				if _, _, ok := parseHHMM(st.WaitUntil); !ok {
					errs[key+"wait_until"] = "Give the hour as HH:MM."
				}
			}
			if st.WaitWeekday < -1 || st.WaitWeekday > 6 {
				errs[key+"wait_weekday"] = "Choose a weekday."
			}
			if st.WaitWeekday >= 0 && st.WaitUntil == "" {
				errs[key+"wait_until"] = "Give the hour on that weekday."
			}
			if st.WaitDays == 0 && st.WaitSeconds == 0 && st.WaitUntil == "" {
				errs[key+"wait"] = "Give the wait a length or an hour."
			}
		case StepBranch:
			switch st.Cond {
			case CondClicked, CondOpened:
				if st.CondStep < 1 || st.CondStep > n || steps[st.CondStep-1].Kind != StepSend {
					errs[key+"cond_step"] = "Choose the send step whose message the condition reads."
				}
			case CondAttribute:
				if strings.TrimSpace(st.CondKey) == "" {
					errs[key+"cond_key"] = "Name the attribute."
				}
			case CondSegment:
				if st.SegmentID == nil || *st.SegmentID <= 0 {
					errs[key+"segment_id"] = "Choose the segment."
				}
			default:
				errs[key+"cond"] = "Choose a condition: clicked, opened, attribute or segment."
			}
			target("then_step", st.ThenStep)
			target("else_step", st.ElseStep)
		case StepListAdd, StepListRemove:
			if st.TargetListID == nil || *st.TargetListID <= 0 {
				errs[key+"target_list_id"] = "Choose the list."
			}
		case StepSetAttr:
			st.AttrKey = strings.TrimSpace(st.AttrKey)
			if st.AttrKey == "" {
				errs[key+"attr_key"] = "Name the attribute."
			} else if utf8.RuneCountInString(st.AttrKey) > 100 {
				errs[key+"attr_key"] = "Keep the attribute name under 100 characters."
			}
			if len(st.AttrValue) > 1000 {
				errs[key+"attr_value"] = "Keep the value under 1000 characters."
			}
		case StepWebhook:
			if st.WebhookID == nil || *st.WebhookID <= 0 {
				errs[key+"webhook_id"] = "Choose the webhook to notify."
			}
		case StepExit:
		default:
			errs[key+"kind"] = "Choose a step: send, wait, branch, add to a list, remove from a list, set an attribute, notify a webhook or exit."
		}
	}
	return errs
}

// CreateAutomation stores a draft automation and the steps of its first
// version (each send step gets its campaign).
func (s *Store) CreateAutomation(ctx context.Context, a *Automation, steps []AutomationStep) error {
	errs := a.Validate()
	for k, v := range ValidateSteps(steps) {
		errs[k] = v
	}
	if err := invalid(errs); err != nil {
		return err
	}
	err := s.tx(ctx, func(tx *gorm.DB) error {
		a.ID = 0
		a.Status, a.Version, a.ActivatedAt = AutomationDraft, 1, nil
		a.CreatedAt, a.UpdatedAt = dbNow(), dbNow()
		if err := checkTriggerRefs(tx, a); err != nil {
			return err
		}
		if err := tx.Create(a).Error; err != nil {
			return err
		}
		return writeSteps(tx, a, steps, nil)
	})
	if err != nil {
		return fmt.Errorf("models: create automation: %w", err)
	}
	return nil
}

// writeSteps writes steps as a.Version's. A send step whose content equals
// the old step's at the same position (old, by position) keeps its
// campaign; any other gets a new one.
func writeSteps(tx *gorm.DB, a *Automation, steps []AutomationStep, old map[int]AutomationStep) error {
	// The step's campaign runs from the start: the automation decides who
	// gets a delivery row (pausing it stops people moving), and test runs
	// of a draft send through it too.
	status := CampaignRunning
	if err := checkStepRefs(tx, steps); err != nil {
		return err
	}
	for i := range steps {
		st := &steps[i]
		st.ID, st.AutomationID, st.Version, st.Position = 0, a.ID, a.Version, i+1
		st.CampaignID = nil
		if st.Kind == StepSend {
			if o, ok := old[st.Position]; ok && o.Kind == StepSend && o.CampaignID != nil &&
				o.Subject == st.Subject && o.HTML == st.HTML && o.Text == st.Text {
				st.CampaignID = o.CampaignID
			} else {
				t := dbNow()
				c := Campaign{Name: fmt.Sprintf("%s: step %d (v%d)", a.Name, st.Position, a.Version), Subject: st.Subject,
					HTML: st.HTML, Text: st.Text, Format: FormatHTML, FromName: a.FromName, FromEmail: a.FromEmail,
					TrackOpens: true, TrackClicks: true, Status: status, StartedAt: &t, MaterializedAt: &t,
					AutomationID: &a.ID, CreatedAt: t, UpdatedAt: t}
				if err := tx.Create(&c).Error; err != nil {
					return err
				}
				if a.ListID != nil {
					if err := setCampaignLists(tx, c.ID, []int64{*a.ListID}); err != nil {
						return err
					}
				}
				st.CampaignID = &c.ID
			}
		}
		if err := tx.Create(st).Error; err != nil {
			return err
		}
	}
	return nil
}

// checkTriggerRefs checks that the segment or campaign the trigger
// names exists (and that the campaign is no automation's own).
func checkTriggerRefs(tx *gorm.DB, a *Automation) error {
	if a.TriggerKind == TriggerSegment && a.TriggerSegmentID != nil {
		var n int64
		if err := tx.Raw("SELECT COUNT(*) FROM segments WHERE id = ?", *a.TriggerSegmentID).Scan(&n).Error; err != nil {
			return err
		}
		if n == 0 {
			return invalid(map[string]string{"trigger_segment_id": fmt.Sprintf("There is no segment %d.", *a.TriggerSegmentID)})
		}
	}
	if a.TriggerKind == TriggerCampaignEvent && a.TriggerCampaignID != nil {
		var n int64
		if err := tx.Raw("SELECT COUNT(*) FROM campaigns WHERE id = ? AND automation_id IS NULL", *a.TriggerCampaignID).Scan(&n).Error; err != nil {
			return err
		}
		if n == 0 {
			return invalid(map[string]string{"trigger_campaign_id": fmt.Sprintf("There is no campaign %d.", *a.TriggerCampaignID)})
		}
	}
	return nil
}

// checkStepRefs checks that the lists and segments the steps name exist.
func checkStepRefs(tx *gorm.DB, steps []AutomationStep) error {
	errs := map[string]string{}
	for i, st := range steps {
		key := fmt.Sprintf("steps.%d.", i+1)
		if (st.Kind == StepListAdd || st.Kind == StepListRemove) && st.TargetListID != nil {
			var n int64
			if err := tx.Raw("SELECT COUNT(*) FROM lists WHERE id = ?", *st.TargetListID).Scan(&n).Error; err != nil {
				return err
			}
			if n == 0 {
				errs[key+"target_list_id"] = fmt.Sprintf("There is no list %d.", *st.TargetListID)
			}
		}
		if st.Kind == StepWebhook && st.WebhookID != nil {
			var n int64
			if err := tx.Raw("SELECT COUNT(*) FROM webhooks WHERE id = ?", *st.WebhookID).Scan(&n).Error; err != nil {
				return err
			}
			if n == 0 {
				errs[key+"webhook_id"] = fmt.Sprintf("There is no webhook %d.", *st.WebhookID)
			}
		}
		if st.Kind == StepBranch && st.Cond == CondSegment && st.SegmentID != nil {
			var n int64
			if err := tx.Raw("SELECT COUNT(*) FROM segments WHERE id = ?", *st.SegmentID).Scan(&n).Error; err != nil {
				return err
			}
			if n == 0 {
				errs[key+"segment_id"] = fmt.Sprintf("There is no segment %d.", *st.SegmentID)
			}
		}
	}
	return invalid(errs)
}

// Automation returns one automation.
func (s *Store) Automation(ctx context.Context, id int64) (*Automation, error) {
	var a Automation
	if err := s.conn(ctx).First(&a, id).Error; err != nil {
		return nil, fmt.Errorf("models: automation %d: %w", id, notFound(err))
	}
	return &a, nil
}

// Automations returns every automation, newest first.
func (s *Store) Automations(ctx context.Context) ([]Automation, error) {
	var out []Automation
	if err := s.conn(ctx).Order("id DESC").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("models: automations: %w", err)
	}
	return out, nil
}

// AutomationSteps returns the steps of version v of automation id (0: its
// current version), with each send step's content.
func (s *Store) AutomationSteps(ctx context.Context, id int64, v int) ([]AutomationStep, error) {
	db := s.conn(ctx)
	if v == 0 {
		a, err := s.Automation(ctx, id)
		if err != nil {
			return nil, err
		}
		v = a.Version
	}
	steps, err := stepsOf(db, id, v)
	if err != nil {
		return nil, fmt.Errorf("models: automation %d steps: %w", id, err)
	}
	return steps, nil
}

func stepsOf(db *gorm.DB, id int64, v int) ([]AutomationStep, error) {
	var steps []AutomationStep
	if err := db.Where("automation_id = ? AND version = ?", id, v).Order("position").Find(&steps).Error; err != nil {
		return nil, err
	}
	for i := range steps {
		if steps[i].CampaignID == nil {
			continue
		}
		var c []struct{ Subject, HTML, Text string }
		if err := db.Raw("SELECT subject, html, text FROM campaigns WHERE id = ?", *steps[i].CampaignID).Scan(&c).Error; err != nil {
			return nil, err
		}
		if len(c) > 0 {
			steps[i].Subject, steps[i].HTML, steps[i].Text = c[0].Subject, c[0].HTML, c[0].Text
		}
	}
	return steps, nil
}

// UpdateAutomation saves the automation's settings and, when steps is not
// nil, its steps. Before anyone entered, the steps are replaced; after,
// they become a new version, and the people inside either move to it at
// their current step (EditContinue; past its end they are done) or
// finish the version they are on (EditFinish).
func (s *Store) UpdateAutomation(ctx context.Context, a *Automation, steps []AutomationStep, mode string) error {
	errs := a.Validate()
	if steps != nil {
		for k, v := range ValidateSteps(steps) {
			errs[k] = v
		}
		if mode != EditContinue && mode != EditFinish {
			errs["mode"] = "Choose what happens to the people inside: continue on the new version, or finish theirs."
		}
	}
	if err := invalid(errs); err != nil {
		return err
	}
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var cur Automation
		if err := tx.First(&cur, a.ID).Error; err != nil {
			return notFound(err)
		}
		a.Status, a.Version, a.ActivatedAt, a.CreatedAt, a.UpdatedAt = cur.Status, cur.Version, cur.ActivatedAt, cur.CreatedAt, dbNow()
		a.EnteredThrough = cur.EnteredThrough
		if err := checkTriggerRefs(tx, a); err != nil {
			return err
		}
		if err := tx.Select("*").Save(a).Error; err != nil {
			return err
		}
		if err := tx.Exec("UPDATE campaigns SET from_name = ?, from_email = ?, updated_at = ? WHERE automation_id = ?",
			a.FromName, a.FromEmail, dbNow(), a.ID).Error; err != nil {
			return err
		}
		if steps == nil {
			return nil
		}
		old, err := stepsOf(tx, a.ID, a.Version)
		if err != nil {
			return err
		}
		byPos := map[int]AutomationStep{}
		for _, o := range old {
			byPos[o.Position] = o
		}
		var entered int64
		if err := tx.Raw("SELECT COUNT(*) FROM automation_runs WHERE automation_id = ?", a.ID).Scan(&entered).Error; err != nil {
			return err
		}
		if entered == 0 {
			if err := tx.Exec("DELETE FROM automation_steps WHERE automation_id = ? AND version = ?", a.ID, a.Version).Error; err != nil {
				return err
			}
			return writeSteps(tx, a, steps, byPos)
		}
		a.Version++
		if err := tx.Exec("UPDATE automations SET version = ? WHERE id = ?", a.Version, a.ID).Error; err != nil {
			return err
		}
		if err := writeSteps(tx, a, steps, byPos); err != nil {
			return err
		}
		if mode == EditContinue {
			t := dbNow()
			if err := tx.Exec(`UPDATE automation_runs SET state = 'done', exit_reason = 'past the end of the new version', updated_at = ?
				WHERE automation_id = ? AND state = 'active' AND step > ?`, t, a.ID, len(steps)).Error; err != nil {
				return err
			}
			return tx.Exec("UPDATE automation_runs SET version = ?, updated_at = ? WHERE automation_id = ? AND state = 'active'",
				a.Version, t, a.ID).Error
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("models: update automation %d: %w", a.ID, err)
	}
	return nil
}

// SetAutomationStatus activates or pauses an automation. Pausing stops
// people moving (messages already queued still go out); activating starts
// the trigger's clock: people who join the list from then on enter.
func (s *Store) SetAutomationStatus(ctx context.Context, id int64, status string) error {
	if status != AutomationActive && status != AutomationPaused {
		return invalid(map[string]string{"status": "Choose active or paused."})
	}
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var a Automation
		if err := tx.First(&a, id).Error; err != nil {
			return notFound(err)
		}
		t := dbNow()
		if status == AutomationActive && a.ActivatedAt == nil {
			a.ActivatedAt = &t
		}
		return tx.Exec("UPDATE automations SET status = ?, activated_at = ?, updated_at = ? WHERE id = ?", status, a.ActivatedAt, t, id).Error
	})
	if err != nil {
		return fmt.Errorf("models: automation %d status: %w", id, err)
	}
	return nil
}

// DeleteAutomation deletes an automation, its steps and its runs. Its
// campaigns stay (their deliveries feed the reports); a running one
// becomes an ordinary campaign and finishes once nothing is waiting.
func (s *Store) DeleteAutomation(ctx context.Context, id int64) error {
	err := s.tx(ctx, func(tx *gorm.DB) error {
		res := tx.Exec("DELETE FROM automations WHERE id = ?", id)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("models: delete automation %d: %w", id, err)
	}
	return nil
}

// triggerAttribute trims the trigger's attribute name and checks it, with
// missing as the message when there is none.
func triggerAttribute(a *Automation, errs map[string]string, missing string) {
	a.TriggerAttribute = strings.TrimSpace(a.TriggerAttribute)
	if a.TriggerAttribute == "" {
		errs["trigger_attribute"] = missing
	} else if utf8.RuneCountInString(a.TriggerAttribute) > 100 {
		errs["trigger_attribute"] = "Keep the attribute name under 100 characters."
	}
}
