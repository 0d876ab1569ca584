package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"unicode"

	"github.com/labstack/echo/v4"

	"github.com/herald-mail/herald/internal/token"
	"github.com/herald-mail/herald/models"
	"github.com/herald-mail/herald/views"
)

// prefSubscriber resolves the preference-centre token of the URL. A forged,
// altered or other-kind token, and a subscriber who no longer exists, are
// all "not found": nothing is shown and nothing changes.
func (p *publicPages) prefSubscriber(c echo.Context) (*models.Subscriber, error) {
	ids, err := p.keys.Verify(c.Param("token"), token.Preferences, 1)
	if err != nil {
		return nil, notFoundErr("This link to your preferences is not valid. If you copied it from an email, check that you copied all of it.")
	}
	sub, err := p.store.Subscriber(c.Request().Context(), ids[0])
	if errors.Is(err, models.ErrNotFound) {
		return nil, notFoundErr("This address is no longer in our lists; nothing more will be sent to it.")
	}
	return sub, err
}

func prefBase(c echo.Context) string { return "/p/" + c.Param("token") }

// prefLists are the lists the preference centre offers: every public list
// (only those they are on when the subscriber is blocklisted), then the
// private lists they are on, which they may leave but not rejoin.
func (p *publicPages) prefLists(c echo.Context, sub *models.Subscriber) ([]views.PrefList, error) {
	ctx := c.Request().Context()
	public, err := p.store.PublicLists(ctx)
	if err != nil {
		return nil, err
	}
	subs, err := p.store.SubscriptionsOf(ctx, sub.ID)
	if err != nil {
		return nil, err
	}
	status := make(map[int64]string, len(subs))
	for _, s := range subs {
		status[s.ListID] = s.Status
	}
	live := func(id int64) bool { st := status[id]; return st == models.SubConfirmed || st == models.SubUnconfirmed }
	var out []views.PrefList
	isPublic := map[int64]bool{}
	for _, l := range public {
		isPublic[l.ID] = true
		if sub.Status != models.SubscriberActive && !live(l.ID) {
			continue
		}
		out = append(out, views.PrefList{ID: l.ID, Name: l.Name, Description: l.Description,
			On: live(l.ID), Pending: status[l.ID] == models.SubUnconfirmed})
	}
	for _, s := range subs {
		// A snapshot list is Herald's record of who a system campaign
		// went to, not something they joined: not theirs to manage.
		if !isPublic[s.ListID] && live(s.ListID) && s.ListKind != models.ListKindSnapshot {
			out = append(out, views.PrefList{ID: s.ListID, Name: s.ListName, On: true, LeaveOnly: true})
		}
	}
	return out, nil
}

// prefSaved are the confirmations shown after a change (?saved=…); the
// query names one of them, so nothing typed in the URL reaches the page.
var prefSaved = map[string]string{
	"lists": "Your lists are saved.",
	"name":  "Your name is saved.",
}

// preferences shows the preference centre.
func (p *publicPages) preferences(c echo.Context) error {
	sub, err := p.prefSubscriber(c)
	if err != nil {
		return err
	}
	return p.renderPreferences(c, http.StatusOK, sub, nil)
}

func (p *publicPages) renderPreferences(c echo.Context, status int, sub *models.Subscriber, errs map[string]string) error {
	ctx := c.Request().Context()
	lists, err := p.prefLists(c, sub)
	if err != nil {
		return err
	}
	rows, err := p.store.ConsentsBySubscriber(ctx, sub.ID)
	if err != nil {
		return err
	}
	all, err := p.store.Lists(ctx)
	if err != nil {
		return err
	}
	names := make(map[int64]string, len(all))
	for _, l := range all {
		names[l.ID] = l.Name
	}
	history := make([]views.PrefEvent, 0, len(rows))
	for _, r := range rows {
		e := views.PrefEvent{At: r.CreatedAt, Action: r.Action, Source: r.Source, List: "all lists"}
		if r.ListID != nil {
			e.List = names[*r.ListID]
			if e.List == "" {
				e.List = "a list that no longer exists"
			}
		}
		history = append(history, e)
	}
	v := views.PreferencesView{
		Brand: brandOf(ctx, p.store), Base: prefBase(c), Email: sub.Email, Name: sub.Name,
		Lists: lists, History: history, Saved: prefSaved[c.QueryParam("saved")], Errors: errs,
	}
	return renderPublic(c, status, views.PreferencesPage(v))
}

// saveLists applies the ticked boxes: joins ticked public lists, confirms
// ticked pending ones, leaves unticked ones. Lists the page did not offer
// (private lists they are not on, ids typed into the form) are ignored. The
// signed link came in an email to the address, so joining here needs no
// further confirmation.
func (p *publicPages) saveLists(c echo.Context) error {
	sub, err := p.prefSubscriber(c)
	if err != nil {
		return err
	}
	form, err := c.FormParams()
	if err != nil {
		return badRequest("The form could not be read; reload the page and try again.")
	}
	ticked := map[int64]bool{}
	for _, v := range form["list"] {
		if id, err := strconv.ParseInt(v, 10, 64); err == nil {
			ticked[id] = true
		}
	}
	lists, err := p.prefLists(c, sub)
	if err != nil {
		return err
	}
	change := map[int64]string{}
	for _, l := range lists {
		switch want := ticked[l.ID]; {
		case want && !l.LeaveOnly && (!l.On || l.Pending):
			change[l.ID] = models.SubConfirmed
		case !want && l.On:
			change[l.ID] = models.SubUnsubscribed
		}
	}
	ev := subscriberEvidence(c, models.SourcePreference, "/p/")
	ev.Note = "preference centre, reached by the signed link emailed to the address"
	if err := p.store.SetSubscriptions(c.Request().Context(), sub.ID, change, ev); err != nil {
		return err
	}
	if len(change) > 0 {
		p.log.Info("preferences saved", "subscriber", sub.ID, "changes", len(change), "ip", c.RealIP())
	}
	return c.Redirect(http.StatusSeeOther, prefBase(c)+"?saved=lists")
}

// saveName changes the subscriber's name.
func (p *publicPages) saveName(c echo.Context) error {
	sub, err := p.prefSubscriber(c)
	if err != nil {
		return err
	}
	name := strings.TrimSpace(c.FormValue("name"))
	switch {
	case len(name) > 200:
		return p.renderPreferences(c, http.StatusUnprocessableEntity, sub, map[string]string{"name": "Keep your name under 200 characters."})
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return p.renderPreferences(c, http.StatusUnprocessableEntity, sub, map[string]string{"name": "Use letters, spaces and punctuation only (no line breaks or control characters)."})
	}
	ctx := c.Request().Context()
	if name != sub.Name {
		if err := p.store.SetSubscriberName(ctx, sub.ID, name); err != nil {
			return err
		}
		// The name itself stays out of the log: erasure could not reach it there.
		if err := p.store.Audit(ctx, models.AuditEntry{Actor: "subscriber", Action: "subscriber.name", ObjectType: "subscriber",
			ObjectID: strconv.FormatInt(sub.ID, 10), Summary: "name changed in the preference centre", IP: c.RealIP()}); err != nil {
			p.log.Error("audit failed", "err", err, "action", "subscriber.name")
		}
	}
	return c.Redirect(http.StatusSeeOther, prefBase(c)+"?saved=name")
}

// export sends everything Herald holds on the subscriber as a JSON file.
func (p *publicPages) export(c echo.Context) error {
	sub, err := p.prefSubscriber(c)
	if err != nil {
		return err
	}
	data, err := p.store.SubjectExport(c.Request().Context(), sub.ID)
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(data, "", "  ")
	if err != nil {
		return err
	}
	p.log.Info("subject data downloaded", "subscriber", sub.ID, "ip", c.RealIP())
	noStore(c)
	c.Response().Header().Set(echo.HeaderContentDisposition, fmt.Sprintf(`attachment; filename="my-data-%d.json"`, sub.ID))
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSONCharsetUTF8, b)
}

// erasePage asks the subscriber to confirm erasure; opening it erases nothing.
func (p *publicPages) erasePage(c echo.Context) error {
	sub, err := p.prefSubscriber(c)
	if err != nil {
		return err
	}
	return renderPublic(c, http.StatusOK, views.EraseConfirmPage(brandOf(c.Request().Context(), p.store), prefBase(c), sub.Email))
}

// erase erases the subscriber through the one erasure the compliance centre
// also uses, then says it is done. The link stops working with it.
func (p *publicPages) erase(c echo.Context) error {
	sub, err := p.prefSubscriber(c)
	if err != nil {
		return err
	}
	if c.FormValue("confirm") != "yes" {
		return badRequest("Nothing was erased: use the Erase button on the confirmation page.")
	}
	ctx := c.Request().Context()
	ev := models.Evidence{Source: models.SourcePreference, Actor: "subscriber", Note: "erasure requested by the subscriber in the preference centre"}
	if err := p.store.EraseSubscriber(ctx, sub.ID, ev); err != nil {
		return err
	}
	p.log.Info("subscriber erased themselves", "subscriber", sub.ID)
	return renderPublic(c, http.StatusOK, views.ErasedPage(brandOf(ctx, p.store)))
}
