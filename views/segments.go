package views

import (
	"fmt"
	"slices"

	"github.com/herald-mail/herald/models"
)

// SegmentFormVM is what the segment builder shows.
type SegmentFormVM struct {
	Segment   models.Segment
	Lists     []models.List
	Providers []string
	Live      SegmentLiveVM
	Errs      map[string]string
}

// SegmentLiveVM is the builder's live count and preview.
type SegmentLiveVM struct {
	Count   int64
	Err     string // why the conditions cannot be counted yet
	Preview []models.Subscriber
}

// SegmentRow is one condition of the builder, with its place.
type SegmentRow struct {
	Group, Index int // Index: among all conditions, for remove
	C            models.Condition
}

// segmentRows numbers the conditions of the form.
func segmentGroups(c models.Conditions) [][]SegmentRow {
	out := make([][]SegmentRow, len(c.Groups))
	i := 0
	for g, gr := range c.Groups {
		for _, x := range gr.Conditions {
			out[g] = append(out[g], SegmentRow{g, i, x})
			i++
		}
	}
	return out
}

func segmentOps(field string) []string {
	for _, f := range models.SegmentFields {
		if f.Field == field {
			return f.Ops
		}
	}
	return nil
}

func opLabel(op string) string {
	if l, ok := models.SegmentOpLabels[op]; ok {
		return l
	}
	return op
}

// segmentNeeds says which operand inputs a condition shows: key, value,
// value2, list, status, days, count.
func segmentNeeds(c models.Condition, what string) bool {
	f, op := c.Field, c.Op
	switch what {
	case "key":
		return f == models.FieldAttribute
	case "value":
		switch f {
		case models.FieldAttribute:
			return op != "is_set" && op != "not_set"
		case models.FieldEmailDomain, models.FieldProvider, models.FieldSignupSource:
			return true
		case models.FieldSignupDate:
			return op != "in_last_days"
		case models.FieldLawfulBasis:
			return op == "is"
		case models.FieldBounced:
			return true
		}
	case "value2":
		return op == "between" || op == "between_dates"
	case "list":
		return f == models.FieldList || (f == models.FieldLawfulBasis && op != "is")
	case "status":
		return f == models.FieldList
	case "days":
		return op == "in_last_days" || op == "not_in_last_days"
	case "count":
		return f == models.FieldReceived
	}
	return false
}

// segmentValueKind is how the value is entered: text, number, date, or
// the name of a choice list (provider, source, basis, bounce).
func segmentValueKind(c models.Condition) string {
	switch c.Field {
	case models.FieldProvider:
		return "provider"
	case models.FieldSignupSource:
		return "source"
	case models.FieldLawfulBasis:
		return "basis"
	case models.FieldBounced:
		return "bounce"
	case models.FieldSignupDate:
		return "date"
	}
	switch c.Op {
	case "before", "after", "between_dates":
		return "date"
	case "greater_than", "less_than", "between":
		return "number"
	}
	return "text"
}

func segmentChoices(kind string, providers []string) [][2]string {
	var out [][2]string
	switch kind {
	case "provider":
		for _, p := range providers {
			out = append(out, [2]string{p, p})
		}
	case "source":
		for _, s := range models.SignupSources {
			out = append(out, [2]string{s, s})
		}
	case "basis":
		for _, b := range models.LawfulBases {
			out = append(out, [2]string{b, b})
		}
	case "bounce":
		out = [][2]string{{"", "any kind"}, {"hard", "hard"}, {"soft", "soft"}}
	}
	return out
}

func itoa64(n int64) string { return fmt.Sprint(n) }

func intOrEmpty(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprint(n)
}

func segmentAction(g models.Segment) string {
	if g.ID == 0 {
		return "/segments"
	}
	return fmt.Sprintf("/segments/%d", g.ID)
}

func hasChoice(cs [][2]string, v string) bool {
	return slices.ContainsFunc(cs, func(c [2]string) bool { return c[0] == v })
}
