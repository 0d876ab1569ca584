package web

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/herald-mail/herald/internal/token"
	"github.com/herald-mail/herald/mailer"
	"github.com/herald-mail/herald/models"
	"github.com/herald-mail/herald/views"
)

var errNoSuchForm = notFoundErr("There is no sign-up form at this address. Check the link, or ask the sender for the right one.")

// publicList returns the public list named by the :list parameter; private
// and unknown lists are both "not found", so private ones stay unseen.
func (p *publicPages) publicList(c echo.Context) (*models.List, error) {
	id, err := strconv.ParseInt(c.Param("list"), 10, 64)
	if err != nil || id <= 0 {
		return nil, errNoSuchForm
	}
	l, err := p.store.List(c.Request().Context(), id)
	if errors.Is(err, models.ErrNotFound) || (err == nil && l.Visibility != models.ListPublic) {
		return nil, errNoSuchForm
	} else if err != nil {
		return nil, err
	}
	return l, nil
}

func (p *publicPages) subscribeView(c echo.Context, l *models.List) views.SubscribeView {
	return views.SubscribeView{
		Brand: brandOf(c.Request().Context(), p.store), List: *l,
		Form: views.SubscribeForm{Action: c.Request().URL.Path, Consent: views.ConsentText(l.Name)},
	}
}

// subscribePage shows a public list's sign-up form.
func (p *publicPages) subscribePage(c echo.Context) error {
	l, err := p.publicList(c)
	if err != nil {
		return err
	}
	return renderPublic(c, http.StatusOK, views.SubscribePage(p.subscribeView(c, l)))
}

// subscribe takes a sign-up. Whatever happened to the address (new,
// already subscribed, suppressed, blocklisted, a bot caught by the
// honeypot) the answer is the same thank-you, so the form cannot be used to
// find out who is on a list.
func (p *publicPages) subscribe(c echo.Context) error {
	ctx := c.Request().Context()
	if !p.signups.take("ip:"+c.RealIP(), signupsPerMinute) {
		return &userError{http.StatusTooManyRequests, "too_many_requests",
			"Too many sign-ups from your network in the last minute. Wait a minute, then send the form again.", nil}
	}
	l, err := p.publicList(c)
	if err != nil {
		return err
	}
	v := p.subscribeView(c, l)
	f := &v.Form
	f.Email, f.Name = strings.TrimSpace(c.FormValue("email")), strings.TrimSpace(c.FormValue("name"))
	f.Agreed = c.FormValue("consent") == "yes"
	f.Errors = map[string]string{}
	email, err := models.NormalizeEmail(f.Email)
	if err != nil {
		f.Errors["email"] = err.Error() + ". Check it and try again."
	}
	if len(f.Name) > 200 {
		f.Errors["name"] = "Keep the name under 200 characters."
	}
	if !f.Agreed {
		f.Errors["consent"] = "Tick the box to agree to receive this list; we cannot subscribe you without your consent."
	}
	if len(f.Errors) > 0 {
		return renderPublic(c, http.StatusUnprocessableEntity, views.SubscribePage(v))
	}
	v.Done = true
	if c.FormValue("website") != "" {
		p.log.Info("sign-up dropped: honeypot filled", "list", l.ID, "ip", c.RealIP())
		return renderPublic(c, http.StatusOK, views.SubscribePage(v))
	}
	ev := subscriberEvidence(c, models.SourceForm, c.Request().URL.Path)
	ev.ConsentText = f.Consent
	res, err := p.store.SignupFromForm(ctx, email, f.Name, l.ID, ev)
	if err != nil {
		return err
	}
	p.log.Info("sign-up", "list", l.ID, "subscriber", res.SubscriberID, "outcome", res.Outcome, "ip", c.RealIP())
	if res.Outcome == models.SignupPending {
		if err := p.sendConfirmation(ctx, res.SubscriberID, email, f.Name, &res.List); err != nil {
			// The subscription is recorded; the address just did not get
			// its link. Signing up again sends it again.
			p.log.Error("confirmation email not queued", "subscriber", res.SubscriberID, "list", l.ID, "err", err)
		}
	}
	return renderPublic(c, http.StatusOK, views.SubscribePage(v))
}

// sendConfirmation queues the double opt-in email ahead of campaign
// traffic, with the signed confirmation link.
func (p *publicPages) sendConfirmation(ctx context.Context, subscriberID int64, email, name string, l *models.List) error {
	if _, err := p.store.EnsureOptinTemplate(ctx); err != nil {
		return err
	}
	from, err := p.optinSender(ctx)
	if err != nil {
		return err
	}
	org, err := p.store.Setting(ctx, models.SettingOrgName)
	if err != nil {
		return err
	}
	_, err = p.mailer.SendTransactional(ctx, mailer.TransactionalRequest{
		Template: models.OptinTemplate, To: email, Name: name, From: from, FromName: org,
		Data: map[string]any{
			"list":            l.Name,
			"confirm_url":     p.root + "/confirm/" + p.keys.Sign(token.Confirm, subscriberID, l.ID),
			"preferences_url": p.root + "/p/" + p.keys.Sign(token.Preferences, subscriberID),
		},
	})
	return err
}

// optinSender is the From address of confirmation emails: the optin_from
// setting, else defaultOptinSender.
func (p *publicPages) optinSender(ctx context.Context) (string, error) {
	from, err := p.store.Setting(ctx, models.SettingOptinFrom)
	if err != nil || from != "" {
		return from, err
	}
	return defaultOptinSender(p.root), nil
}

// defaultOptinSender is no-reply at the root URL's host.
func defaultOptinSender(root string) string {
	host := "localhost.localdomain"
	if u, err := url.Parse(root); err == nil && strings.Contains(u.Hostname(), ".") && net.ParseIP(u.Hostname()) == nil {
		host = u.Hostname()
	}
	return "no-reply@" + host
}

// confirmTarget resolves a confirmation token to its subscriber and list.
func (p *publicPages) confirmTarget(c echo.Context) (*models.Subscriber, *models.List, error) {
	bad := notFoundErr("This confirmation link is not valid. If you copied it from an email, check that you copied all of it.")
	ids, err := p.keys.Verify(c.Param("token"), token.Confirm, 2)
	if err != nil {
		return nil, nil, bad
	}
	ctx := c.Request().Context()
	sub, err := p.store.Subscriber(ctx, ids[0])
	if errors.Is(err, models.ErrNotFound) {
		return nil, nil, notFoundErr("This address is no longer in our lists. To subscribe again, use the list's sign-up form.")
	} else if err != nil {
		return nil, nil, err
	}
	l, err := p.store.List(ctx, ids[1])
	if errors.Is(err, models.ErrNotFound) {
		return nil, nil, notFoundErr("The list this link was for no longer exists.")
	} else if err != nil {
		return nil, nil, err
	}
	return sub, l, nil
}

func (p *publicPages) confirmView(c echo.Context, sub *models.Subscriber, l *models.List, state string) views.ConfirmView {
	return views.ConfirmView{
		Brand: brandOf(c.Request().Context(), p.store), State: state, Email: sub.Email, List: l.Name,
		Action: c.Request().URL.Path, PreferencesURL: "/p/" + p.keys.Sign(token.Preferences, sub.ID),
	}
}

// confirmPage shows the confirm button. Opening it changes nothing: mail
// security scanners fetch every link in a message, and a GET that
// confirmed would let them subscribe anyone.
func (p *publicPages) confirmPage(c echo.Context) error {
	sub, l, err := p.confirmTarget(c)
	if err != nil {
		return err
	}
	subs, err := p.store.SubscriptionsOf(c.Request().Context(), sub.ID)
	if err != nil {
		return err
	}
	state := views.ConfirmStale
	for _, s := range subs {
		if s.ListID != l.ID {
			continue
		}
		switch s.Status {
		case models.SubUnconfirmed:
			state = views.ConfirmAsk
		case models.SubConfirmed:
			state = views.ConfirmAlready
		}
	}
	return renderPublic(c, http.StatusOK, views.ConfirmPage(p.confirmView(c, sub, l, state)))
}

// confirm is the button's POST: it confirms the subscription and records
// the IP, user agent and time in the ledger as proof. A replay finds it
// confirmed and writes nothing.
func (p *publicPages) confirm(c echo.Context) error {
	sub, l, err := p.confirmTarget(c)
	if err != nil {
		return err
	}
	ev := subscriberEvidence(c, models.SourceForm, "/confirm/")
	ev.Note = "double opt-in confirmed from the emailed link"
	out, err := p.store.ConfirmSubscription(c.Request().Context(), sub.ID, l.ID, ev)
	if errors.Is(err, models.ErrNotFound) {
		return notFoundErr("This address or list no longer exists.")
	} else if err != nil {
		return err
	}
	state := map[string]string{models.ConfirmDone: views.ConfirmDone, models.ConfirmAlready: views.ConfirmAlready}[out]
	if state == "" {
		state = views.ConfirmStale
	}
	if out == models.ConfirmDone {
		p.log.Info("double opt-in confirmed", "subscriber", sub.ID, "list", l.ID, "ip", c.RealIP())
	}
	return renderPublic(c, http.StatusOK, views.ConfirmPage(p.confirmView(c, sub, l, state)))
}
