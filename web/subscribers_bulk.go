package web

import (
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/herald-mail/herald/models"
	"github.com/herald-mail/herald/views"
)

// bulkMax is the most subscribers one bulk action from the page changes:
// beyond it the request would outlive any browser's patience, and the
// marketer is asked to narrow the search (or use the API).
const bulkMax = 10000

// bulkActions are the actions on a selection or on every match, with the
// words the confirmation uses; those that destroy or withdraw ask first.
var bulkActions = map[string]struct {
	verb    string
	confirm bool
}{
	"add":         {"add to the list", false},
	"export":      {"export", false},
	"remove":      {"remove from the list (their membership is marked unsubscribed)", true},
	"unsubscribe": {"unsubscribe from every list", true},
	"delete":      {"delete", true},
}

// bulkSubscribers runs a bulk action on the ticked subscribers or on every
// subscriber the search matches. Destructive actions first show what will
// happen to how many people and need a second, explicit post.
func (s *subscriberPages) bulkSubscribers(c echo.Context) error {
	ctx := c.Request().Context()
	f, q := subscriberQuery(c)
	back := "/subscribers?" + f.Query()
	action, ok := bulkActions[c.FormValue("action")]
	if !ok {
		return s.bulkRefused(c, back, "Choose what to do with the subscribers.")
	}
	all := c.FormValue("scope") == "all"
	if !all {
		form, _ := c.FormParams()
		for _, v := range form["id"] {
			if id, err := strconv.ParseInt(v, 10, 64); err == nil {
				q.IDs = append(q.IDs, id)
			}
		}
		if len(q.IDs) == 0 {
			return s.bulkRefused(c, back, "Tick the subscribers to act on, or choose “every match”.")
		}
		if len(q.IDs) > 500 {
			return s.bulkRefused(c, back, "At most 500 ticked subscribers at a time; choose “every match” for more.")
		}
	}
	var list *models.List
	if name := c.FormValue("action"); name == "add" || name == "remove" {
		id, _ := strconv.ParseInt(c.FormValue("target_list"), 10, 64)
		l, err := s.store.List(ctx, id)
		if err != nil {
			return s.bulkRefused(c, back, "Choose the list to "+action.verb+".")
		}
		list = l
	}
	if c.FormValue("action") == "export" {
		q.Before = 0
		return s.exportCSV(c, "subscribers.csv", q)
	}
	ids, more, err := s.store.SubscriberIDs(ctx, q, bulkMax)
	if err != nil {
		return err
	}
	if more {
		return s.bulkRefused(c, back, fmt.Sprintf("More than %d subscribers match. Narrow the search (a list, a status or an attribute) and repeat, or use the API.", bulkMax))
	}
	if len(ids) == 0 {
		return s.bulkRefused(c, back, "No subscriber matches any more; nothing was changed.")
	}
	if action.confirm && c.FormValue("confirm") != "yes" {
		form, _ := c.FormParams()
		sample, err := s.store.SearchSubscribers(ctx, models.SubscriberQuery{IDs: ids[:min(len(ids), 10)], Limit: 10})
		if err != nil {
			return err
		}
		listName := ""
		if list != nil {
			listName = list.Name
		}
		return s.render(c, 200, views.BulkConfirm(s.page(c, "Confirm bulk action", "subscribers"), views.BulkConfirmation{
			Verb: action.verb, Action: c.FormValue("action"), ListName: listName, Count: len(ids),
			Sample: sample.Rows, Form: bulkHidden(form), Back: back,
		}))
	}
	return s.applyBulk(c, c.FormValue("action"), ids, list, back)
}

// applyBulk does the action to each subscriber, each change audited and
// with its consent ledger rows, like the same change made one by one.
func (s *subscriberPages) applyBulk(c echo.Context, action string, ids []int64, list *models.List, back string) error {
	ev := evidence(c, models.SourceAdmin)
	for _, id := range ids {
		var err error
		switch action {
		case "add":
			err = s.store.SetSubscriptions(s.audited(c, "subscriber.subscription", "subscriber", fmt.Sprintf("bulk: list %d → confirmed", list.ID), &id),
				id, map[int64]string{list.ID: models.SubConfirmed}, ev)
		case "remove":
			err = s.store.SetSubscriptions(s.audited(c, "subscriber.subscription", "subscriber", fmt.Sprintf("bulk: list %d → unsubscribed", list.ID), &id),
				id, map[int64]string{list.ID: models.SubUnsubscribed}, ev)
		case "unsubscribe":
			err = s.store.UnsubscribeEverywhere(s.audited(c, "subscriber.unsubscribe", "subscriber", "bulk: every list", &id), id, ev)
		case "delete":
			err = s.store.DeleteSubscriber(s.audited(c, "subscriber.delete", "subscriber", "bulk", &id), id, ev)
		}
		if err != nil {
			return fmt.Errorf("bulk %s of subscriber %d: %w", action, id, err)
		}
	}
	done := map[string]string{"add": "added to " + quotedList(list), "remove": "removed from " + quotedList(list),
		"unsubscribe": "unsubscribed from every list", "delete": "deleted"}[action]
	s.flash(c, fmt.Sprintf("%d %s %s.", len(ids), plural(len(ids), "subscriber", "subscribers"), done))
	return seeOther(c, back)
}

func quotedList(l *models.List) string {
	if l == nil {
		return ""
	}
	return "“" + l.Name + "”"
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// bulkRefused sends the marketer back to the search with what to change.
func (s *subscriberPages) bulkRefused(c echo.Context, back, msg string) error {
	s.flash(c, msg)
	return seeOther(c, back)
}

// bulkHidden is the posted form minus the CSRF token and the confirmation,
// carried through the confirmation page as hidden fields.
func bulkHidden(form url.Values) []views.Hidden {
	var out []views.Hidden
	for _, k := range slices.Sorted(maps.Keys(form)) {
		if k == "_csrf" || k == "confirm" {
			continue
		}
		for _, v := range form[k] {
			out = append(out, views.Hidden{Name: k, Value: v})
		}
	}
	return out
}
