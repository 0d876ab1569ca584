package web

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/herald-mail/herald/models"
	"github.com/herald-mail/herald/views"
)

// segmentPages are Subscribers → Segments: the list and the builder.
type segmentPages struct{ *app }

// segmentPreviewRows is how many matching people the builder shows.
const segmentPreviewRows = 10

func (s *segmentPages) segmentsPage(c echo.Context) error {
	segs, err := s.store.Segments(c.Request().Context())
	if err != nil {
		return err
	}
	return s.render(c, 200, views.SegmentsPage(s.page(c, "Segments", "subscribers"), segs))
}

// conditionsFromForm reads the builder's rows: one g_match per group, and
// per condition the same run of fields in order (c_group, c_field, …),
// hidden ones included, so the n-th of each belongs to the n-th condition.
func conditionsFromForm(c echo.Context) models.Conditions {
	form, _ := c.FormParams()
	at := func(name string, i int) string {
		if v := form[name]; i < len(v) {
			return strings.TrimSpace(v[i])
		}
		return ""
	}
	num := func(name string, i int) int {
		n, _ := strconv.Atoi(at(name, i))
		return n
	}
	out := models.Conditions{Match: form.Get("match")}
	for _, m := range form["g_match"] {
		out.Groups = append(out.Groups, models.ConditionGroup{Match: m})
	}
	for i := range form["c_field"] {
		g := num("c_group", i)
		if g < 0 || g >= len(out.Groups) {
			continue
		}
		list, _ := strconv.ParseInt(at("c_list", i), 10, 64)
		out.Groups[g].Conditions = append(out.Groups[g].Conditions, models.Condition{
			Field: at("c_field", i), Op: at("c_op", i), Key: at("c_key", i), Value: at("c_value", i), Value2: at("c_value2", i),
			ListID: list, Status: at("c_status", i), Days: num("c_days", i), Count: num("c_count", i),
		})
	}
	return out
}

// dropEmptyGroups removes groups left without a condition.
func dropEmptyGroups(c *models.Conditions) {
	c.Groups = slices.DeleteFunc(c.Groups, func(g models.ConditionGroup) bool { return len(g.Conditions) == 0 })
}

// fitOps gives a condition whose field changed the field's first operator.
func fitOps(c *models.Conditions) {
	for gi := range c.Groups {
		for ci := range c.Groups[gi].Conditions {
			x := &c.Groups[gi].Conditions[ci]
			for _, f := range models.SegmentFields {
				if f.Field == x.Field && !slices.Contains(f.Ops, x.Op) {
					x.Op = f.Ops[0]
				}
			}
		}
	}
}

func newCondition() models.Condition {
	return models.Condition{Field: models.FieldAttribute, Op: "equals"}
}

func (s *segmentPages) formVM(c echo.Context, g models.Segment, errs map[string]string) (views.SegmentFormVM, error) {
	ctx := c.Request().Context()
	vm := views.SegmentFormVM{Segment: g, Errs: errs}
	var err error
	if vm.Lists, err = s.store.Lists(ctx); err != nil {
		return vm, err
	}
	rules, err := s.store.DomainRules(ctx)
	if err != nil {
		return vm, err
	}
	for _, r := range rules {
		if !r.IsDefault {
			vm.Providers = append(vm.Providers, r.Name)
		}
	}
	vm.Providers = append(vm.Providers, models.ProviderOther)
	vm.Live, err = s.live(c, g.Conditions)
	return vm, err
}

// live counts and previews conditions; conditions not yet complete say
// what is missing instead.
func (s *segmentPages) live(c echo.Context, cond models.Conditions) (views.SegmentLiveVM, error) {
	ctx := c.Request().Context()
	var v views.SegmentLiveVM
	if cond.Count() == 0 {
		v.Err = "Add a condition to see who matches."
		return v, nil
	}
	n, err := s.store.CountSegment(ctx, cond)
	var ve *models.ValidationError
	if errors.As(err, &ve) {
		v.Err = ve.Fields["conditions"]
		return v, nil
	} else if err != nil {
		return v, err
	}
	v.Count = n
	if v.Preview, err = s.store.PreviewSegment(ctx, cond, segmentPreviewRows); err != nil {
		return v, err
	}
	return v, nil
}

func (s *segmentPages) newSegmentPage(c echo.Context) error {
	g := models.Segment{Conditions: models.Conditions{Match: "all", Groups: []models.ConditionGroup{{Match: "all",
		Conditions: []models.Condition{newCondition()}}}}}
	vm, err := s.formVM(c, g, nil)
	if err != nil {
		return err
	}
	return s.render(c, 200, views.SegmentForm(s.page(c, "New segment", "subscribers"), vm))
}

func (s *segmentPages) segmentPage(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	g, err := s.store.Segment(c.Request().Context(), id)
	if err != nil {
		return err
	}
	vm, err := s.formVM(c, *g, nil)
	if err != nil {
		return err
	}
	return s.render(c, 200, views.SegmentForm(s.page(c, "Segment “"+g.Name+"”", "subscribers"), vm))
}

// segmentBuilder re-renders the builder after a change of field or a
// button: add a condition to a group, add a group, remove a condition.
func (s *segmentPages) segmentBuilder(c echo.Context) error {
	cond := conditionsFromForm(c)
	action := c.FormValue("action")
	switch {
	case action == "add-group":
		cond.Groups = append(cond.Groups, models.ConditionGroup{Match: "all", Conditions: []models.Condition{newCondition()}})
	case strings.HasPrefix(action, "add:"):
		if g, err := strconv.Atoi(strings.TrimPrefix(action, "add:")); err == nil && g >= 0 && g < len(cond.Groups) {
			cond.Groups[g].Conditions = append(cond.Groups[g].Conditions, newCondition())
		}
	case strings.HasPrefix(action, "remove:"):
		if i, err := strconv.Atoi(strings.TrimPrefix(action, "remove:")); err == nil {
			n := 0
			for gi := range cond.Groups {
				cs := cond.Groups[gi].Conditions
				if i >= n && i < n+len(cs) {
					cond.Groups[gi].Conditions = slices.Delete(cs, i-n, i-n+1)
					break
				}
				n += len(cs)
			}
		}
	}
	dropEmptyGroups(&cond)
	fitOps(&cond)
	vm, err := s.formVM(c, models.Segment{Conditions: cond}, nil)
	if err != nil {
		return err
	}
	return s.render(c, 200, views.SegmentBuilderSwap(vm))
}

// segmentCount is the builder's live count and preview (htmx, debounced).
func (s *segmentPages) segmentCount(c echo.Context) error {
	cond := conditionsFromForm(c)
	dropEmptyGroups(&cond)
	v, err := s.live(c, cond)
	if err != nil {
		return err
	}
	return s.render(c, 200, views.SegmentLive(v))
}

func (s *segmentPages) saveSegment(c echo.Context, g models.Segment, title string) error {
	dropEmptyGroups(&g.Conditions)
	create := g.ID == 0
	chg, err := s.store.Begin(c.Request().Context())
	if err != nil {
		return err
	}
	defer chg.End()
	if create {
		err = s.store.CreateSegment(chg.Ctx(), &g)
	} else {
		err = s.store.UpdateSegment(chg.Ctx(), &g)
	}
	var ve *models.ValidationError
	if errors.As(err, &ve) {
		chg.End()
		vm, verr := s.formVM(c, g, ve.Fields)
		if verr != nil {
			return verr
		}
		return s.render(c, http.StatusUnprocessableEntity, views.SegmentForm(s.page(c, title, "subscribers"), vm))
	} else if err != nil {
		return err
	}
	action := "segment.update"
	if create {
		action = "segment.create"
	}
	if err := chg.Commit(s.auditEntry(c, action, "segment", itoa(g.ID), g.Name)); err != nil {
		return err
	}
	s.flash(c, fmt.Sprintf("Segment “%s” saved.", g.Name))
	return seeOther(c, fmt.Sprintf("/segments/%d", g.ID))
}

func (s *segmentPages) createSegment(c echo.Context) error {
	return s.saveSegment(c, models.Segment{Name: c.FormValue("name"), Conditions: conditionsFromForm(c)}, "New segment")
}

func (s *segmentPages) updateSegment(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	if _, err := s.store.Segment(c.Request().Context(), id); err != nil {
		return err
	}
	return s.saveSegment(c, models.Segment{ID: id, Name: c.FormValue("name"), Conditions: conditionsFromForm(c)}, "Edit segment")
}

func (s *segmentPages) deleteSegment(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	if err := s.removeSegment(c, id, ""); err != nil {
		return err
	}
	s.flash(c, "Segment deleted.")
	return seeOther(c, "/segments")
}

// removeSegment deletes segment id with its audit entry (summary says
// where from); a segment some campaign's audience uses is a conflict that
// names those campaigns.
func (s *app) removeSegment(c echo.Context, id int64, summary string) error {
	err := s.store.DeleteSegment(s.audited(c, "segment.delete", "segment", summary, &id), id)
	var inUse *models.SegmentInUseError
	if errors.As(err, &inUse) {
		if len(inUse.Campaigns) == 0 {
			return conflict("The segment is used by the automation(s) " + joinQuoted(inUse.Automations) + ": take it out of their trigger and branches first.")
		}
		return conflict("The segment is used by the campaign(s) " + joinQuoted(inUse.Campaigns) + ": take it out of their audience first.")
	}
	return err
}
