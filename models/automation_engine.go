package models

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"gorm.io/gorm"
)

// The automation engine moves people through the steps set-based: every
// statement takes all the runs due at one step of one version, never one
// person at a time in Go. Each step's move is one transaction: a send
// step writes its deliveries (unique per campaign and subscriber) and
// moves the runs on together, so a crash repeats a step's move whole or
// not at all, and a repeat inserts no second delivery. The mailer then
// claims those rows under its leases like any campaign's.

// AdvanceReport counts what one AdvanceAutomations did.
type AdvanceReport struct {
	Entered int64 // runs created by the triggers
	Exited  int64 // runs ended by an unsubscribe, a subscriber no longer active or the exit criterion
	Queued  int64 // deliveries written by send steps
	Moved   int64 // runs moved past a step
}

// runDue is the condition of the runs due at one step, with its arguments
// (automation, version, step, now).
const runDue = "automation_id = ? AND version = ? AND step = ? AND state = 'active' AND due_at <= ?"

// AdvanceAutomations runs the triggers of the active automations at now
// and moves every due run on, as far as its steps allow at now.
func (s *Store) AdvanceAutomations(ctx context.Context, now time.Time) (AdvanceReport, error) {
	var rep AdvanceReport
	var ids []int64
	if err := s.conn(ctx).Raw("SELECT id FROM automations WHERE status = ? ORDER BY id", AutomationActive).Scan(&ids).Error; err != nil {
		return rep, fmt.Errorf("models: advance automations: %w", err)
	}
	var errs []error
	for _, id := range ids {
		if err := s.advanceAutomation(ctx, id, dbTime(now), &rep); err != nil {
			errs = append(errs, fmt.Errorf("models: advance automation %d: %w", id, err))
		}
	}
	return rep, errors.Join(errs...)
}

// AdvanceAutomation moves the due runs of one automation on at now, its
// test runs included whatever its status (the test mode's "move it on
// now"); an active one's trigger takes in newcomers first.
func (s *Store) AdvanceAutomation(ctx context.Context, id int64, now time.Time) (AdvanceReport, error) {
	var rep AdvanceReport
	if err := s.advanceAutomation(ctx, id, dbTime(now), &rep); err != nil {
		return rep, fmt.Errorf("models: advance automation %d: %w", id, err)
	}
	return rep, nil
}

func (s *Store) advanceAutomation(ctx context.Context, id int64, t time.Time, rep *AdvanceReport) error {
	a, err := s.Automation(ctx, id)
	if err != nil {
		return err
	}
	if a.Status != AutomationActive {
		// Only test runs move in a draft or paused automation.
		var n int64
		if err := s.conn(ctx).Raw("SELECT COUNT(*) FROM automation_runs WHERE automation_id = ? AND state = 'active' AND test = ?",
			id, false).Scan(&n).Error; err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
	}
	if a.Status == AutomationActive {
		var seg *AutomationStep
		// A segment trigger looks once every segmentLookEvery; between
		// looks nobody enters, but runs still move below.
		lookSegment := a.TriggerKind == TriggerSegment &&
			(a.EnteredThrough == nil || !t.Before(a.EnteredThrough.Add(segmentLookEvery)))
		if lookSegment {
			// Compiled outside the transaction, like a segment branch.
			seg = &AutomationStep{Kind: StepBranch, Cond: CondSegment, SegmentID: a.TriggerSegmentID}
			if err := s.compileSegmentBranch(ctx, seg, t); err != nil {
				return err
			}
		}
		if err := s.tx(ctx, func(tx *gorm.DB) error {
			if a.TriggerKind == TriggerSegment && !lookSegment {
				return nil
			}
			if a.TriggerKind == TriggerAnniversary {
				n, err := s.enterByAnniversary(tx, a, t)
				rep.Entered += n
				return err
			}
			if a.TriggerKind == TriggerAttributeChanged {
				n, err := s.enterByAttribute(tx, a, t)
				rep.Entered += n
				return err
			}
			if a.TriggerKind == TriggerSegment || a.TriggerKind == TriggerCampaignEvent {
				n, err := s.enterByEvent(tx, a, seg, t)
				rep.Entered += n
				return err
			}
			n, err := enterByTrigger(tx, a, t)
			rep.Entered += n
			return err
		}); err != nil {
			return err
		}
	}
	if err := s.tx(ctx, func(tx *gorm.DB) error {
		n, err := s.exitSweep(tx, a, t)
		rep.Exited += n
		return err
	}); err != nil {
		return err
	}
	// The versions are read from the steps (a few rows), not the runs.
	var versions []int
	if err := s.conn(ctx).Raw("SELECT DISTINCT version FROM automation_steps WHERE automation_id = ? ORDER BY version",
		id).Scan(&versions).Error; err != nil {
		return err
	}
	for _, v := range versions {
		steps, err := stepsOf(s.conn(ctx), id, v)
		if err != nil {
			return err
		}
		for i := range steps {
			if err := s.compileSegmentBranch(ctx, &steps[i], t); err != nil {
				return fmt.Errorf("step %d: %w", steps[i].Position, err)
			}
		}
		// Rounds until nothing moves: a send step's people go on to the
		// wait behind it at once; a loop back ends at a wait or a send
		// already written.
		for round := 0; round <= len(steps)+1; round++ {
			moved := int64(0)
			for _, st := range steps {
				var n int64
				err := s.tx(ctx, func(tx *gorm.DB) error {
					var err error
					n, err = s.runStep(tx, a, st, len(steps), t, rep)
					return err
				})

				if err != nil {
					return fmt.Errorf("step %d: %w", st.Position, err)
				}
				moved += n
			}
			rep.Moved += moved
			if moved == 0 {
				break
			}
		}
		// Runs past the last step of their version are done.
		if err := s.conn(ctx).Exec(`UPDATE automation_runs SET state = 'done', updated_at = ? WHERE automation_id = ? AND state = 'active'
			AND version = ? AND step > ?`, t, id, v, len(steps)).Error; err != nil {
			return err
		}
	}
	return nil
}

// enterByTrigger creates the runs of the people the trigger has taken in
// since it last looked (since the automation was activated, the first
// time), due at once. It looks back a minute over its last look: a
// subscription written in a transaction that began before the look and
// committed after it carries a time before it.
func enterByTrigger(tx *gorm.DB, a *Automation, t time.Time) (int64, error) {
	if a.ListID == nil || a.ActivatedAt == nil {
		return 0, nil
	}
	since := dbTime(*a.ActivatedAt)
	if a.EnteredThrough != nil && a.EnteredThrough.Add(-time.Minute).After(since) {
		since = dbTime(a.EnteredThrough.Add(-time.Minute))
	}
	wall := dbNow() // subscriptions carry the wall clock's time
	if err := tx.Exec("UPDATE automations SET entered_through = ? WHERE id = ?", wall, a.ID).Error; err != nil {
		return 0, err
	}
	var cond string
	switch a.TriggerKind {
	case TriggerListConfirmed:
		// Confirmed, or joined a single opt-in list (nothing to confirm).
		cond = "(sp.status = 'confirmed' OR (sp.status = 'unconfirmed' AND l.optin = 'single')) AND sp.updated_at >= ?"
	case TriggerListSubscribed:
		cond = "sp.status <> 'unsubscribed' AND sp.updated_at >= ? AND sp.created_at >= ?"
	default:
		return 0, nil
	}
	res := tx.Exec(`INSERT INTO automation_runs (automation_id, subscriber_id, version, step, state, due_at, test, entered_at, updated_at)
		SELECT ?, sp.subscriber_id, ?, 1, 'active', ?, ?, ?, ?
		FROM subscriptions sp JOIN lists l ON l.id = sp.list_id JOIN subscribers s ON s.id = sp.subscriber_id
		WHERE sp.list_id = ? AND s.status = 'active' AND `+cond+`
		ON CONFLICT (automation_id, subscriber_id, occurrence) DO NOTHING`,
		append([]any{a.ID, a.Version, t, false, t, t, *a.ListID, since}, condArgs(a)...)...)
	return res.RowsAffected, res.Error
}

// enterByEvent creates the runs of the segment and campaign-event
// triggers, set-based: one INSERT … SELECT of the people the trigger
// finds, due at t; a person enters once (the run is unique per
// automation and subscriber). The segment trigger's first look records
// the people already in the segment as done runs, so that only those who
// enter it afterwards go through.
// segmentLookEvery is how often a segment trigger looks for newcomers.
// A look evaluates the whole segment and checks every member against the
// runs, inside a write transaction: on a million subscribers that is
// most of a second, too much for every 5-second round of the job, and a
// minute's delay is nothing to a welcome.
const segmentLookEvery = time.Minute

func (s *Store) enterByEvent(tx *gorm.DB, a *Automation, seg *AutomationStep, t time.Time) (int64, error) {
	if a.ActivatedAt == nil {
		return 0, nil
	}
	insert := func(state, reason, who string, args ...any) (int64, error) {
		res := tx.Exec(`INSERT INTO automation_runs (automation_id, subscriber_id, version, step, state, exit_reason, due_at, test, entered_at, updated_at)
			SELECT ?, s.id, ?, 1, ?, ?, ?, ?, ?, ? FROM subscribers s WHERE s.status = 'active' AND s.id IN (`+who+`)
			ON CONFLICT (automation_id, subscriber_id, occurrence) DO NOTHING`,
			append([]any{a.ID, a.Version, state, reason, t, false, t, t}, args...)...)
		return res.RowsAffected, res.Error
	}
	switch a.TriggerKind {
	case TriggerSegment:
		who := "SELECT s.id FROM subscribers s WHERE " + seg.segSQL
		if err := tx.Exec("UPDATE automations SET entered_through = ? WHERE id = ?", t, a.ID).Error; err != nil {
			return 0, err
		}
		if a.EnteredThrough == nil {
			_, err := insert("done", "in the segment at activation", who, seg.segArgs...)
			return 0, err
		}
		return insert("active", "", who, seg.segArgs...)
	case TriggerCampaignEvent:
		if a.TriggerCampaignID == nil {
			return 0, nil // the campaign was deleted
		}
		c := *a.TriggerCampaignID
		switch a.TriggerEvent {
		case OnOpened:
			return insert("active", "", "SELECT e.subscriber_id FROM events e WHERE e.campaign_id = ? AND e.kind = 'open' AND NOT e.machine", c)
		case OnClicked:
			if a.TriggerURL == "" {
				return insert("active", "", "SELECT e.subscriber_id FROM events e WHERE e.campaign_id = ? AND e.kind = 'click' AND NOT e.machine", c)
			}
			return insert("active", "", `SELECT e.subscriber_id FROM events e JOIN links l ON l.id = e.link_id
				WHERE e.campaign_id = ? AND e.kind = 'click' AND NOT e.machine AND l.url = ?`, c, a.TriggerURL)
		case OnNotOpened:
			return insert("active", "", `SELECT d.subscriber_id FROM deliveries d WHERE d.campaign_id = ? AND d.status = 'sent' AND d.sent_at <= ?
				AND NOT EXISTS (SELECT 1 FROM events e WHERE e.campaign_id = d.campaign_id AND e.subscriber_id = d.subscriber_id
					AND e.kind IN ('open', 'click') AND NOT e.machine)`, c, dbTime(t.AddDate(0, 0, -a.TriggerDays)))
		}
	}
	return 0, nil
}

// attrAbsent stands for an absent attribute in the attribute-changed
// trigger's comparisons (NULL would compare as unknown).
const attrAbsent = "\u0001absent"

// enterByAttribute runs the attribute-changed trigger, set-based: the
// people updated since its last look (a minute of lookback, as for the
// list triggers) whose value differs from the last reading enter, then
// the readings are brought up to date. The first look only reads.
func (s *Store) enterByAttribute(tx *gorm.DB, a *Automation, t time.Time) (int64, error) {
	if a.ActivatedAt == nil {
		return 0, nil
	}
	cur := s.sqlDialect().attrText("s.attributes")
	wall := dbNow()
	first := a.EnteredThrough == nil
	if err := tx.Exec("UPDATE automations SET entered_through = ? WHERE id = ?", wall, a.ID).Error; err != nil {
		return 0, err
	}
	recent, recentArgs := "", []any(nil)
	if !first {
		recent, recentArgs = " AND s.updated_at >= ?", []any{dbTime(a.EnteredThrough.Add(-time.Minute))}
	}
	// changed: the subscriber's value differs from the last reading (no
	// reading: they have the attribute).
	changed := `COALESCE(` + cur + `, ?) <> COALESCE((SELECT v.value FROM automation_attr_seen v
		WHERE v.automation_id = ? AND v.subscriber_id = s.id), ?)`
	changedArgs := []any{a.TriggerAttribute, attrAbsent, a.ID, attrAbsent}
	var n int64
	if !first {
		cond, args := changed, append([]any{}, changedArgs...)
		if a.TriggerValue != nil {
			cond += " AND " + cur + " = ?"
			args = append(args, a.TriggerAttribute, *a.TriggerValue)
		}
		res := tx.Exec(`INSERT INTO automation_runs (automation_id, subscriber_id, version, step, state, due_at, test, entered_at, updated_at)
			SELECT ?, s.id, ?, 1, 'active', ?, ?, ?, ? FROM subscribers s WHERE s.status = 'active'`+recent+` AND `+cond+`
			ON CONFLICT (automation_id, subscriber_id, occurrence) DO NOTHING`,
			append(append([]any{a.ID, a.Version, t, false, t, t}, recentArgs...), args...)...)
		if res.Error != nil {
			return 0, res.Error
		}
		n = res.RowsAffected
	}
	res := tx.Exec(`INSERT INTO automation_attr_seen (automation_id, subscriber_id, value)
		SELECT ?, s.id, `+cur+` FROM subscribers s WHERE 1 = 1`+recent+` AND `+changed+`
		ON CONFLICT (automation_id, subscriber_id) DO UPDATE SET value = excluded.value`,
		append(append([]any{a.ID, a.TriggerAttribute}, recentArgs...), changedArgs...)...)
	return n, res.Error
}

func condArgs(a *Automation) []any {
	if a.TriggerKind == TriggerListSubscribed {
		return []any{dbTime(*a.ActivatedAt)}
	}
	return nil
}

// exitSweep ends the due runs of people who may no longer be mailed or
// who met the exit criterion, before any step moves: a run waiting is
// checked when its wait is over, right before its next step.
func (s *Store) exitSweep(tx *gorm.DB, a *Automation, t time.Time) (int64, error) {
	var total int64
	upd := func(reason, cond string, args ...any) error {
		res := tx.Exec(`UPDATE automation_runs SET state = 'exited', exit_reason = ?, updated_at = ?
			WHERE automation_id = ? AND state = 'active' AND due_at <= ? AND `+cond, append([]any{reason, t, a.ID, t}, args...)...)
		total += res.RowsAffected
		return res.Error
	}
	if err := upd("subscriber not active", `NOT EXISTS (SELECT 1 FROM subscribers s WHERE s.id = automation_runs.subscriber_id
		AND s.status = 'active')`); err != nil {
		return total, err
	}
	if a.ListID != nil && a.TriggerKind != TriggerAPI {
		if err := upd("unsubscribed", `NOT EXISTS (SELECT 1 FROM subscriptions sp WHERE sp.subscriber_id = automation_runs.subscriber_id
			AND sp.list_id = ? AND sp.status <> 'unsubscribed')`, *a.ListID); err != nil {
			return total, err
		}
	} else {
		// Entered by the API: unsubscribed from every list.
		if err := upd("unsubscribed", `NOT EXISTS (SELECT 1 FROM subscriptions sp WHERE sp.subscriber_id = automation_runs.subscriber_id
			AND sp.status <> 'unsubscribed')`); err != nil {
			return total, err
		}
	}
	if a.ExitAttribute != "" {
		if err := upd("exit criterion", `EXISTS (SELECT 1 FROM subscribers s WHERE s.id = automation_runs.subscriber_id
			AND `+s.sqlDialect().attrText("s.attributes")+` = ?)`, a.ExitAttribute, a.ExitValue); err != nil {
			return total, err
		}
	}
	return total, nil
}

// runStep moves the runs due at step st and returns how many moved.
func (s *Store) runStep(tx *gorm.DB, a *Automation, st AutomationStep, last int, t time.Time, rep *AdvanceReport) (int64, error) {
	due := []any{a.ID, st.Version, st.Position, t}
	var n int64
	if err := tx.Raw("SELECT COUNT(*) FROM automation_runs WHERE "+runDue, due...).Scan(&n).Error; err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, nil
	}
	if err := tx.Exec(`INSERT INTO automation_passes (step_id, subscriber_id, automation_id, passed_at)
		SELECT ?, subscriber_id, automation_id, ? FROM automation_runs WHERE `+runDue+`
		ON CONFLICT (step_id, subscriber_id) DO NOTHING`, append([]any{st.ID, t}, due...)...).Error; err != nil {
		return 0, err
	}
	next := st.Position + 1
	switch st.Kind {
	case StepSend:
		q, err := s.queueStep(tx, a, st, t)
		if err != nil {
			return 0, err
		}
		rep.Queued += q
	case StepWait:
		return n, s.waitStep(tx, a, st, t)
	case StepBranch:
		cond, args := branchCond(s.sqlDialect(), st)
		if cond == "" {
			return 0, fmt.Errorf("branch condition %q", st.Cond)
		}
		if err := goTo(tx, st, st.ThenStep, t, " AND "+cond, args...); err != nil {
			return 0, err
		}
		return n, goTo(tx, st, st.ElseStep, t, "")
	case StepListAdd, StepListRemove:
		if err := s.listStep(tx, a, st, t); err != nil {
			return 0, err
		}
	case StepWebhook:
		if err := s.webhookStep(tx, a, st, t); err != nil {
			return 0, err
		}
	case StepSetAttr:
		if err := tx.Exec("UPDATE subscribers SET attributes = "+s.sqlDialect().attrSet("attributes")+", updated_at = ? WHERE id IN (SELECT subscriber_id FROM automation_runs WHERE "+runDue+")",
			append([]any{st.AttrKey, st.AttrValue, dbNow()}, due...)...).Error; err != nil {
			return 0, err
		}
	case StepExit:
		return n, tx.Exec("UPDATE automation_runs SET state = 'done', exit_reason = 'exit step', updated_at = ? WHERE "+runDue,
			append([]any{t}, due...)...).Error
	}
	if next > last {
		return n, tx.Exec("UPDATE automation_runs SET state = 'done', step = ?, updated_at = ? WHERE "+runDue,
			append([]any{next, t}, due...)...).Error
	}
	return n, tx.Exec("UPDATE automation_runs SET step = ?, due_at = ?, updated_at = ? WHERE "+runDue,
		append([]any{next, t, t}, due...)...).Error
}

// goTo moves the due runs of branch st matching extra to target (0 the
// next step, -1 the end).
func goTo(tx *gorm.DB, st AutomationStep, target int, t time.Time, extra string, args ...any) error {
	due := []any{st.AutomationID, st.Version, st.Position, t}
	if target == -1 {
		return tx.Exec("UPDATE automation_runs SET state = 'done', exit_reason = 'branch to the end', updated_at = ? WHERE "+runDue+extra,
			append(append([]any{t}, due...), args...)...).Error
	}
	if target == 0 {
		target = st.Position + 1
	}
	return tx.Exec("UPDATE automation_runs SET step = ?, due_at = ?, updated_at = ? WHERE "+runDue+extra,
		append(append([]any{target, t, t}, due...), args...)...).Error
}

// compileSegmentBranch compiles the segment of a segment branch at t; a
// deleted segment (SegmentID nil) matches no one.
func (s *Store) compileSegmentBranch(ctx context.Context, st *AutomationStep, t time.Time) error {
	if st.Kind != StepBranch || st.Cond != CondSegment {
		return nil
	}
	if st.SegmentID == nil {
		st.segSQL = "1 = 0"
		return nil
	}
	seg, err := s.Segment(ctx, *st.SegmentID)
	if errors.Is(err, ErrNotFound) {
		st.segSQL = "1 = 0"
		return nil
	}
	if err != nil {
		return err
	}
	st.segSQL, st.segArgs, err = s.compileConditions(ctx, seg.Conditions, t)
	return err
}

// listStep puts the due runs of st on its list (those without a row
// there: one who unsubscribed stays so) or takes them off it, with their
// consent-ledger rows (source automation). The ledger is a hash chain,
// so its rows are written in Go, one batch per step move.
func (s *Store) listStep(tx *gorm.DB, a *Automation, st AutomationStep, t time.Time) error {
	if st.TargetListID == nil {
		return nil // the list was deleted: nothing to do
	}
	due := []any{a.ID, st.Version, st.Position, t}
	var people []struct {
		ID    int64
		Email string
	}
	cond := "NOT EXISTS (SELECT 1 FROM subscriptions sp WHERE sp.subscriber_id = s.id AND sp.list_id = ?)"
	if st.Kind == StepListRemove {
		cond = "EXISTS (SELECT 1 FROM subscriptions sp WHERE sp.subscriber_id = s.id AND sp.list_id = ? AND sp.status <> 'unsubscribed')"
	}
	if err := tx.Raw(`SELECT s.id, s.email FROM subscribers s WHERE s.status = 'active' AND `+cond+`
		AND s.id IN (SELECT subscriber_id FROM automation_runs WHERE `+runDue+`) ORDER BY s.id`,
		append([]any{*st.TargetListID}, due...)...).Scan(&people).Error; err != nil {
		return err
	}
	if len(people) == 0 {
		return nil
	}
	ids := make([]int64, len(people))
	for i, p := range people {
		ids[i] = p.ID
	}
	wall := dbNow()
	ev := Evidence{Source: SourceAutomation, LawfulBasis: BasisLegitimate, Actor: fmt.Sprintf("automation %d", a.ID),
		Note: fmt.Sprintf("automation %q, step %d", a.Name, st.Position)}
	action := ConsentGranted
	d := s.sqlDialect()
	if st.Kind == StepListAdd {
		if err := tx.Exec(`INSERT INTO subscriptions (subscriber_id, list_id, status, created_at, updated_at)
			SELECT s.id, ?, 'confirmed', ?, ? FROM subscribers s WHERE s.id IN `+d.idSet()+`
			ON CONFLICT (subscriber_id, list_id) DO NOTHING`, *st.TargetListID, wall, wall, d.idArray(ids)).Error; err != nil {
			return err
		}
	} else {
		action = ConsentWithdrawn
		if err := tx.Exec(`UPDATE subscriptions SET status = 'unsubscribed', updated_at = ? WHERE list_id = ? AND subscriber_id IN `+d.idSet(),
			wall, *st.TargetListID, d.idArray(ids)).Error; err != nil {
			return err
		}
	}
	rows := make([]Consent, len(people))
	for i, p := range people {
		rows[i] = ev.row(action, p.ID, *st.TargetListID, p.Email)
	}
	return s.appendConsents(tx, rows)
}

// HookAutomationStep is the outgoing-webhook event of a webhook step.
const HookAutomationStep = "automation.step"

// webhookStep writes one HookAutomationStep event per due run of st to
// the outbox of the step's webhook; the event id (automation, step,
// subscriber) is unique per webhook, so a repeated move adds nothing.
// Payloads are JSON written in Go, one batch per step move.
func (s *Store) webhookStep(tx *gorm.DB, a *Automation, st AutomationStep, t time.Time) error {
	if st.WebhookID == nil {
		return nil // the webhook was deleted
	}
	var people []struct {
		ID         int64
		Email      string
		Test       bool
		Occurrence int
	}
	if err := tx.Raw(`SELECT s.id, s.email, r.test, r.occurrence FROM automation_runs r JOIN subscribers s ON s.id = r.subscriber_id
		WHERE r.automation_id = ? AND r.version = ? AND r.step = ? AND r.state = 'active' AND r.due_at <= ? ORDER BY s.id`,
		a.ID, st.Version, st.Position, t).Scan(&people).Error; err != nil {
		return err
	}
	at := dbTime(t)
	wall := dbNow()
	for i := 0; i < len(people); i += hookChunk {
		chunk := people[i:min(i+hookChunk, len(people))]
		var args []any
		for _, p := range chunk {
			id := fmt.Sprintf("%s_%d_%d_%d", HookAutomationStep, a.ID, st.ID, p.ID)
			if p.Occurrence != 0 {
				id += fmt.Sprintf("_%d", p.Occurrence) // each year's pass is an event of its own
			}
			body, err := json.Marshal(hookPayload{ID: id, Type: HookAutomationStep, CreatedAt: at.UTC(), Data: map[string]any{
				"automation_id": a.ID, "automation": a.Name, "version": st.Version, "step": st.Position,
				"subscriber_id": p.ID, "email": p.Email, "test": p.Test, "occurrence": p.Occurrence}})
			if err != nil {
				return err
			}
			args = append(args, *st.WebhookID, id, p.ID, HookAutomationStep, string(body), HookPending, wall, wall, wall)
		}
		if err := tx.Exec(`INSERT INTO webhook_deliveries (webhook_id, event_id, subscriber_id, event, payload, status, next_attempt_at, created_at, updated_at)
			VALUES `+strings.TrimSuffix(strings.Repeat("(?,?,?,?,?,?,?,?,?),", len(chunk)), ",")+` ON CONFLICT (webhook_id, event_id) DO NOTHING`,
			args...).Error; err != nil {
			return err
		}
	}
	return nil
}

// branchCond is the SQL condition on automation_runs of a branch step.
func branchCond(d dialectSQL, st AutomationStep) (string, []any) {
	switch st.Cond {
	case CondSegment:
		return `EXISTS (SELECT 1 FROM subscribers s WHERE s.id = automation_runs.subscriber_id AND (` + st.segSQL + `))`, st.segArgs
	case CondClicked, CondOpened:
		kind := "click"
		if st.Cond == CondOpened {
			kind = "open"
		}
		// The campaign of the send step named, in the run's version, and
		// of the run's occurrence (a later one has its own copy).
		return `EXISTS (SELECT 1 FROM automation_steps cs JOIN campaigns c ON (c.id = cs.campaign_id AND automation_runs.occurrence = 0)
				OR (c.occurrence_of = cs.campaign_id AND c.occurrence = automation_runs.occurrence)
			JOIN events e ON e.campaign_id = c.id
			WHERE cs.automation_id = automation_runs.automation_id AND cs.version = automation_runs.version AND cs.position = ?
			AND e.subscriber_id = automation_runs.subscriber_id AND e.kind = ? AND NOT e.machine)`, []any{st.CondStep, kind}
	case CondAttribute:
		return `EXISTS (SELECT 1 FROM subscribers s WHERE s.id = automation_runs.subscriber_id AND ` + d.attrText("s.attributes") + ` = ?)`,
			[]any{st.CondKey, st.CondValue}
	}
	return "", nil
}

// queueStep writes the deliveries of send step st for its due runs:
// queued at t, attributed to the automation's list when they are on it,
// else to their first list. subscriber_updated_at is left empty so the
// claim checks each address against every suppression (the unsubscribe
// check it makes anyway), which is how a suppression added during a wait
// stops the next message. The runs of occurrence 0 get the step's
// campaign; those of a later occurrence (an anniversary's year) that
// occurrence's copy of it, so each year's message is a delivery of its
// own while a repeated move still writes none twice.
func (s *Store) queueStep(tx *gorm.DB, a *Automation, st AutomationStep, t time.Time) (int64, error) {
	if st.CampaignID == nil {
		return 0, nil // its campaign was deleted: the step sends nothing
	}
	var occs []int
	if err := tx.Raw("SELECT DISTINCT occurrence FROM automation_runs WHERE "+runDue+" ORDER BY occurrence",
		a.ID, st.Version, st.Position, t).Scan(&occs).Error; err != nil {
		return 0, err
	}
	var total int64
	for _, occ := range occs {
		cid := *st.CampaignID
		if occ != 0 {
			var err error
			if cid, err = occurrenceCampaign(tx, cid, occ); err != nil {
				return total, err
			}
		}
		n, err := s.queueOccurrence(tx, a, st, cid, occ, t)
		if err != nil {
			return total, err
		}
		total += n
	}
	return total, nil
}

// queueOccurrence writes the deliveries of campaign cid for the due runs
// of send step st whose occurrence is occ.
func (s *Store) queueOccurrence(tx *gorm.DB, a *Automation, st AutomationStep, cid int64, occ int, t time.Time) (int64, error) {
	d := s.sqlDialect()
	var lists []int64
	if a.ListID != nil {
		lists = []int64{*a.ListID}
	}
	listExpr, largs := attribution(lists)
	args := append(append([]any{cid}, largs...), t, t, a.ID, st.Version, st.Position, t, occ)
	res := tx.Exec(`INSERT INTO deliveries (campaign_id, subscriber_id, list_id, domain, status, priority, attempts, next_attempt_at, created_at)
		SELECT ?, s.id, `+listExpr+`, `+d.emailDomain("s.email")+`, 'queued', 0, 0, ?, ?
		FROM automation_runs r JOIN subscribers s ON s.id = r.subscriber_id
		WHERE r.automation_id = ? AND r.version = ? AND r.step = ? AND r.state = 'active' AND r.due_at <= ? AND r.occurrence = ? AND s.status = 'active'
		AND `+eligibleOn(false)+`
		ON CONFLICT (campaign_id, subscriber_id) DO NOTHING`, args...)
	if res.Error != nil {
		return 0, res.Error
	}
	if res.RowsAffected > 0 {
		if err := tx.Exec("UPDATE campaigns SET queued = queued + ?, updated_at = ? WHERE id = ?", res.RowsAffected, dbNow(), cid).Error; err != nil {
			return 0, err
		}
	}
	return res.RowsAffected, nil
}

// waitStep moves the due runs of wait step st to the next step, due when
// the wait is over on each one's wall clock. Zones are few: the runs are
// grouped by zone, each group's end computed once, and updated per group.
func (s *Store) waitStep(tx *gorm.DB, a *Automation, st AutomationStep, t time.Time) error {
	next := st.Position + 1
	due := []any{a.ID, st.Version, st.Position, t}
	// Test runs wait the automation's test wait.
	if err := tx.Exec("UPDATE automation_runs SET step = ?, due_at = ?, updated_at = ? WHERE "+runDue+" AND test = ?",
		append(append([]any{next, dbTime(t.Add(time.Duration(a.TestWaitSeconds) * time.Second)), t}, due...), true)...).Error; err != nil {
		return err
	}
	zone, keyArg := zoneColumn(s.sqlDialect(), a.TZAttribute)
	var zones []string
	if err := tx.Raw(`SELECT DISTINCT `+zone+` FROM automation_runs r JOIN subscribers s ON s.id = r.subscriber_id
		WHERE r.automation_id = ? AND r.version = ? AND r.step = ? AND r.state = 'active' AND r.due_at <= ?`,
		append(keyArg, due...)...).Scan(&zones).Error; err != nil {
		return err
	}
	def := defaultZone(a.TZDefault)
	byAt := map[time.Time][]string{}
	for _, z := range zones {
		loc, _ := zoneOrDefault(z, def)
		at := dbTime(st.WaitEnd(t, loc))
		byAt[at] = append(byAt[at], z)
	}
	ats := make([]time.Time, 0, len(byAt))
	for at := range byAt {
		ats = append(ats, at)
	}
	sort.Slice(ats, func(i, j int) bool { return ats[i].Before(ats[j]) })
	// Every group but the last names its zones; the last takes the rest.
	for i, at := range ats {
		q := "UPDATE automation_runs SET step = ?, due_at = ?, updated_at = ? WHERE " + runDue
		args := append([]any{next, at, t}, due...)
		if i < len(ats)-1 {
			q += " AND subscriber_id IN (SELECT s.id FROM subscribers s WHERE " + zone + " IN ?)"
			args = append(append(args, keyArg...), byAt[at])
		}
		if err := tx.Exec(q, args...).Error; err != nil {
			return err
		}
	}
	return nil
}

// WaitEnd is when wait step st, begun at t, is over on the wall clock of
// loc: WaitDays calendar days and WaitSeconds later, then the next
// WaitUntil (on WaitWeekday when set).
func (st AutomationStep) WaitEnd(t time.Time, loc *time.Location) time.Time {
	end := t.In(loc).AddDate(0, 0, st.WaitDays).Add(time.Duration(st.WaitSeconds) * time.Second)
	hh, mm, ok := parseHHMM(st.WaitUntil)
	if !ok {
		return end
	}
	at := NextLocalTime(end, hh, mm, loc)
	for i := 0; st.WaitWeekday >= 0 && int(at.In(loc).Weekday()) != st.WaitWeekday && i < 7; i++ {
		l := at.In(loc)
		at = time.Date(l.Year(), l.Month(), l.Day()+1, hh, mm, 0, 0, loc)
	}
	return at
}

// EnterAutomation puts subscribers into automation id at now, at its
// first step, due at once; test marks them test runs (their waits last
// the automation's test wait). People already inside, or who were, stay
// as they are. It returns how many entered.
func (s *Store) EnterAutomation(ctx context.Context, id int64, subscriberIDs []int64, test bool, now time.Time) (int64, error) {
	var n int64
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var a Automation
		if err := tx.First(&a, id).Error; err != nil {
			return notFound(err)
		}
		if a.Status != AutomationActive && !test {
			return invalid(map[string]string{"status": "The automation is not active: activate it first, or enter a test address."})
		}
		t := dbTime(now)
		d := s.sqlDialect()
		for i := 0; i < len(subscriberIDs); i += 5000 {
			ids := subscriberIDs[i:min(i+5000, len(subscriberIDs))]
			res := tx.Exec(`INSERT INTO automation_runs (automation_id, subscriber_id, version, step, state, due_at, test, entered_at, updated_at)
				SELECT ?, s.id, ?, 1, 'active', ?, ?, ?, ? FROM `+d.idRows()+` CROSS JOIN subscribers s WHERE s.id = j.value AND s.status = 'active'
				ON CONFLICT (automation_id, subscriber_id, occurrence) DO NOTHING`, a.ID, a.Version, t, test, t, t, d.idArray(ids))
			if res.Error != nil {
				return res.Error
			}
			n += res.RowsAffected
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("models: enter automation %d: %w", id, err)
	}
	return n, nil
}

// ExitAutomation ends the active runs of subscriberIDs in automation id
// at now ("stop when they buy" told by an API call): they get no further
// step. A step's move already committed stays (its message may be on
// its way). It returns how many left.
func (s *Store) ExitAutomation(ctx context.Context, id int64, subscriberIDs []int64, reason string, now time.Time) (int64, error) {
	reason = strings.TrimSpace(reason)
	if reason == "" {
		reason = "exit by API"
	}
	if len(reason) > 200 {
		return 0, invalid(map[string]string{"reason": "Keep the reason under 200 characters."})
	}
	var n int64
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var found int64
		if err := tx.Raw("SELECT COUNT(*) FROM automations WHERE id = ?", id).Scan(&found).Error; err != nil {
			return err
		}
		if found == 0 {
			return fmt.Errorf("automation %d: %w", id, ErrNotFound)
		}
		d := s.sqlDialect()
		for i := 0; i < len(subscriberIDs); i += 5000 {
			ids := subscriberIDs[i:min(i+5000, len(subscriberIDs))]
			res := tx.Exec(`UPDATE automation_runs SET state = 'exited', exit_reason = ?, updated_at = ?
				WHERE automation_id = ? AND state = 'active' AND subscriber_id IN `+d.idSet(), reason, dbTime(now), id, d.idArray(ids))
			if res.Error != nil {
				return res.Error
			}
			n += res.RowsAffected
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("models: exit automation %d: %w", id, err)
	}
	return n, nil
}

// RestartTestRun deletes the run of a test subscriber (and what it
// passed) so the test address can walk the automation again.
func (s *Store) RestartTestRun(ctx context.Context, id, subscriberID int64) error {
	err := s.tx(ctx, func(tx *gorm.DB) error {
		if err := tx.Exec("DELETE FROM automation_passes WHERE automation_id = ? AND subscriber_id = ?", id, subscriberID).Error; err != nil {
			return err
		}
		return tx.Exec("DELETE FROM automation_runs WHERE automation_id = ? AND subscriber_id = ? AND test = ?", id, subscriberID, true).Error
	})
	if err != nil {
		return fmt.Errorf("models: restart test run: %w", err)
	}
	return nil
}

// AutomationRun is one person's place in an automation.
type AutomationRun struct {
	ID           int64
	AutomationID int64
	SubscriberID int64
	Version      int
	Step         int
	State        string
	ExitReason   string
	DueAt        time.Time
	Test         bool
	EnteredAt    time.Time
	UpdatedAt    time.Time
	// Occurrence is the anniversary's year of an anniversary trigger's
	// run (one run per person and year); 0 for the other triggers.
	Occurrence int
}

// AutomationRunOf returns subscriber's run in automation id (their
// latest occurrence's).
func (s *Store) AutomationRunOf(ctx context.Context, id, subscriberID int64) (*AutomationRun, error) {
	var r AutomationRun
	if err := s.conn(ctx).Where("automation_id = ? AND subscriber_id = ?", id, subscriberID).Order("occurrence DESC").First(&r).Error; err != nil {
		return nil, fmt.Errorf("models: automation run: %w", notFound(err))
	}
	return &r, nil
}

// StepFigures are one step's numbers.
type StepFigures struct {
	StepID   int64
	Position int
	Version  int
	Kind     string
	Waiting  int64 // active runs at this step now
	Passed   int64 // people who passed it
	// Send steps: the campaign's deliveries and events.
	Sent, Failed, Suppressed, Queued int64
	Opened, Clicked, Unsubscribed    int64 // distinct people
}

// AutomationFigures returns the figures of every step of automation id's
// version v (0: the current one).
func (s *Store) AutomationFigures(ctx context.Context, id int64, v int) ([]StepFigures, error) {
	steps, err := s.AutomationSteps(ctx, id, v)
	if err != nil {
		return nil, err
	}
	db := s.conn(ctx)
	out := make([]StepFigures, len(steps))
	for i, st := range steps {
		f := StepFigures{StepID: st.ID, Position: st.Position, Version: st.Version, Kind: st.Kind}
		if err := db.Raw("SELECT COUNT(*) FROM automation_runs WHERE automation_id = ? AND version = ? AND step = ? AND state = 'active'",
			id, st.Version, st.Position).Scan(&f.Waiting).Error; err != nil {
			return nil, fmt.Errorf("models: automation figures: %w", err)
		}
		if err := db.Raw("SELECT COUNT(*) FROM automation_passes WHERE step_id = ?", st.ID).Scan(&f.Passed).Error; err != nil {
			return nil, fmt.Errorf("models: automation figures: %w", err)
		}
		if st.CampaignID != nil {
			// The step's campaign and its copies for later occurrences.
			var c []Counters
			if err := db.Raw(`SELECT COALESCE(SUM(queued), 0) AS queued, COALESCE(SUM(sending), 0) AS sending, COALESCE(SUM(sent), 0) AS sent,
				COALESCE(SUM(deferred), 0) AS deferred, COALESCE(SUM(bounced), 0) AS bounced, COALESCE(SUM(failed), 0) AS failed,
				COALESCE(SUM(suppressed), 0) AS suppressed FROM campaigns WHERE id = ? OR occurrence_of = ?`, *st.CampaignID, *st.CampaignID).
				Scan(&c).Error; err != nil {
				return nil, fmt.Errorf("models: automation figures: %w", err)
			}
			if len(c) > 0 {
				f.Sent, f.Failed, f.Suppressed, f.Queued = c[0].Sent, c[0].Failed+c[0].Bounced, c[0].Suppressed, c[0].Queued+c[0].Sending+c[0].Deferred
			}
			var ev []struct {
				Kind string
				N    int64
			}
			if err := db.Raw(`SELECT kind, COUNT(DISTINCT subscriber_id) AS n FROM events
				WHERE campaign_id IN (SELECT id FROM campaigns WHERE id = ? OR occurrence_of = ?) AND NOT machine GROUP BY kind`,
				*st.CampaignID, *st.CampaignID).Scan(&ev).Error; err != nil {
				return nil, fmt.Errorf("models: automation figures: %w", err)
			}
			for _, e := range ev {
				switch e.Kind {
				case "open":
					f.Opened = e.N
				case "click":
					f.Clicked = e.N
				case "unsubscribe":
					f.Unsubscribed = e.N
				}
			}
		}
		out[i] = f
	}
	return out, nil
}

// AutomationPath returns the positions of the steps subscriber passed in
// automation id (their run's path, for the test mode).
func (s *Store) AutomationPath(ctx context.Context, id, subscriberID int64) ([]int, error) {
	var out []int
	if err := s.conn(ctx).Raw(`SELECT st.position FROM automation_passes p JOIN automation_steps st ON st.id = p.step_id
		WHERE p.automation_id = ? AND p.subscriber_id = ? ORDER BY st.position`, id, subscriberID).Scan(&out).Error; err != nil {
		return nil, fmt.Errorf("models: automation path: %w", err)
	}
	return out, nil
}
