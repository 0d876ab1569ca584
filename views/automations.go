package views

import (
	"fmt"

	"github.com/herald-mail/herald/models"
)

// AutomationFormVM is what the automation builder shows.
type AutomationFormVM struct {
	A         models.Automation
	Steps     []models.AutomationStep
	Lists     []models.List
	Segments  []models.Segment
	Campaigns []models.Campaign // the latest, for the campaign-event trigger
	Webhooks  []models.Webhook
	Live      bool // people entered: saving makes a new version
	Errs      map[string]string
}

// AutomationVM is an automation's page: its steps with their figures and
// the test mode.
type AutomationVM struct {
	A         models.Automation
	Steps     []models.AutomationStep
	Figures   []models.StepFigures
	TestEmail string
	TestRun   *models.AutomationRun
	TestPath  []int // the positions the test address passed
	Errs      map[string]string
}

// StepSummary says what a step does, in words.
func StepSummary(st models.AutomationStep) string {
	target := func(n int) string {
		switch n {
		case 0:
			return "the next step"
		case -1:
			return "the end"
		}
		return fmt.Sprintf("step %d", n)
	}
	switch st.Kind {
	case models.StepSend:
		return fmt.Sprintf("Send “%s”", st.Subject)
	case models.StepWait:
		s := "Wait"
		if st.WaitDays > 0 {
			s += fmt.Sprintf(" %d day(s)", st.WaitDays)
		}
		if st.WaitSeconds > 0 {
			s += fmt.Sprintf(" %d hour(s)", st.WaitSeconds/3600)
		}
		if st.WaitUntil != "" {
			s += " until " + st.WaitUntil
		}
		return s + " on the subscriber's clock"
	case models.StepBranch:
		var cond string
		switch st.Cond {
		case models.CondClicked:
			cond = fmt.Sprintf("clicked the message of step %d", st.CondStep)
		case models.CondOpened:
			cond = fmt.Sprintf("opened the message of step %d", st.CondStep)
		case models.CondSegment:
			cond = "in the segment"
			if st.SegmentID != nil {
				cond = fmt.Sprintf("in segment %d", *st.SegmentID)
			}
		default:
			cond = fmt.Sprintf("attribute %s is %q", st.CondKey, st.CondValue)
		}
		return fmt.Sprintf("If %s: go to %s; else %s", cond, target(st.ThenStep), target(st.ElseStep))
	case models.StepListAdd, models.StepListRemove:
		list := "a deleted list"
		if st.TargetListID != nil {
			list = fmt.Sprintf("list %d", *st.TargetListID)
		}
		if st.Kind == models.StepListAdd {
			return "Put them on " + list
		}
		return "Unsubscribe them from " + list
	case models.StepSetAttr:
		return fmt.Sprintf("Set attribute %s to %q", st.AttrKey, st.AttrValue)
	case models.StepWebhook:
		if st.WebhookID == nil {
			return "Notify a deleted webhook (nothing is sent)"
		}
		return fmt.Sprintf("Notify webhook %d", *st.WebhookID)
	case models.StepExit:
		return "Exit"
	}
	return st.Kind
}

// TriggerSummary names an automation's trigger, with an anniversary's
// settings.
func TriggerSummary(a models.Automation) string {
	if a.TriggerKind != models.TriggerAnniversary {
		return a.TriggerKind
	}
	at := a.TriggerTime
	if at == "" {
		at = models.DefaultTriggerTime
	}
	when := "on the day"
	if a.TriggerDays > 0 {
		when = fmt.Sprintf("%d days before", a.TriggerDays)
	}
	return fmt.Sprintf("the anniversary of %s, %s, at %s on each subscriber's clock", a.TriggerAttribute, when, at)
}

func triggerValue(a models.Automation) string {
	if a.TriggerValue == nil {
		return ""
	}
	return *a.TriggerValue
}

func stepHours(st models.AutomationStep) string {
	if st.WaitSeconds == 0 {
		return ""
	}
	return fmt.Sprint(st.WaitSeconds / 3600)
}

func figureOf(figs []models.StepFigures, i int) models.StepFigures {
	if i < len(figs) {
		return figs[i]
	}
	return models.StepFigures{}
}

func passedStep(path []int, pos int) bool {
	for _, p := range path {
		if p == pos {
			return true
		}
	}
	return false
}

// runEnd says how a run that is no longer active ended: its exit reason
// (a branch to the end, an exit step, an unsubscribe…), or the end of
// the steps.
func runEnd(reason string) string {
	if reason == "" {
		return "after the last step"
	}
	return reason
}
