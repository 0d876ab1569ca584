package web

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/a-h/templ"
	"github.com/labstack/echo/v4"

	"github.com/herald-mail/herald/internal/token"
	"github.com/herald-mail/herald/models"
	"github.com/herald-mail/herald/views"
)

// unsubTarget is who an unsubscribe link is for and which of their
// subscriptions it covers.
type unsubTarget struct {
	ref        models.DeliveryRef
	subscriber *models.Subscriber
	names      []string // names of the lists the link is about that they are or were on
	active     []int64  // ids of those they are still on
}

var errBadUnsubLink = notFoundErr("This unsubscribe link is not valid. If you copied it from an email, check that you copied all of it.")

// unsubTarget resolves an unsubscribe token: the delivery's subscriber and
// their subscriptions to the campaign's lists (and to the list the message
// was sent for, should the campaign's lists have changed since).
func (t *Tracking) unsubTarget(ctx context.Context, tok string) (*unsubTarget, error) {
	id, err := t.keys.Delivery(tok, token.Unsubscribe)
	if err != nil {
		return nil, errBadUnsubLink
	}
	ref, err := t.store.DeliveryRef(ctx, id)
	if errors.Is(err, models.ErrNotFound) {
		return nil, notFoundErr("This unsubscribe link has expired: the mailing it came from no longer exists. Nothing more will be sent from it.")
	} else if err != nil {
		return nil, err
	}
	if ref.CampaignID == 0 || ref.SubscriberID == 0 {
		return nil, errBadUnsubLink
	}
	sub, err := t.store.Subscriber(ctx, ref.SubscriberID)
	if errors.Is(err, models.ErrNotFound) {
		return nil, notFoundErr("This address is no longer in our lists; nothing more will be sent to it.")
	} else if err != nil {
		return nil, err
	}
	lists, err := t.store.CampaignLists(ctx, ref.CampaignID)
	if err != nil {
		return nil, err
	}
	if ref.ListID != 0 && !slices.Contains(lists, ref.ListID) {
		lists = append(lists, ref.ListID)
	}
	subs, err := t.store.SubscriptionsOf(ctx, sub.ID)
	if err != nil {
		return nil, err
	}
	// A campaign to a snapshot list (re-engagement, re-permission) was
	// sent for the lists its people are on: its link leaves all of them.
	everywhere := false
	for _, s := range subs {
		everywhere = everywhere || (s.ListKind == models.ListKindSnapshot && slices.Contains(lists, s.ListID))
	}
	u := &unsubTarget{ref: *ref, subscriber: sub}
	for _, s := range subs {
		covered := slices.Contains(lists, s.ListID)
		if everywhere {
			covered = s.ListKind == models.ListKindList
		}
		if !covered {
			continue
		}
		u.names = append(u.names, s.ListName)
		if s.Status != models.SubUnsubscribed {
			u.active = append(u.active, s.ListID)
		}
	}
	return u, nil
}

func (t *Tracking) unsubView(c echo.Context, u *unsubTarget, state string) views.UnsubscribeView {
	return views.UnsubscribeView{
		Brand: brandOf(c.Request().Context(), t.store),
		State: state, Email: u.subscriber.Email, Lists: u.names, Action: c.Request().URL.Path,
		PreferencesURL: "/p/" + t.keys.Sign(token.Preferences, u.subscriber.ID),
	}
}

// unsubscribePage shows what the link would do and a button to do it.
// Opening it changes nothing: link scanners fetch every URL in a message.
func (t *Tracking) unsubscribePage(c echo.Context) error {
	u, err := t.unsubTarget(c.Request().Context(), c.Param("token"))
	if err != nil {
		return err
	}
	state := views.UnsubscribeConfirm
	if len(u.active) == 0 {
		state = views.UnsubscribeAlready
	}
	return renderPublic(c, http.StatusOK, views.UnsubscribePage(t.unsubView(c, u, state)))
}

// unsubscribe is the RFC 8058 one-click POST (body
// "List-Unsubscribe=One-Click", sent by the mailbox provider without cookies)
// and the target of the page's button, which sends the same field. It
// withdraws the subscriber from the campaign's lists at once, through the
// consent ledger; a replay finds nothing left to change and changes
// nothing.
func (t *Tracking) unsubscribe(c echo.Context) error {
	r := c.Request()
	r.Body = http.MaxBytesReader(c.Response(), r.Body, 64<<10)
	if !strings.EqualFold(strings.TrimSpace(c.FormValue("List-Unsubscribe")), "One-Click") {
		return badRequest(`Send the form field List-Unsubscribe=One-Click to unsubscribe (RFC 8058).`)
	}
	ctx := r.Context()
	u, err := t.unsubTarget(ctx, c.Param("token"))
	if err != nil {
		return err
	}
	state := views.UnsubscribeAlready
	if len(u.active) > 0 {
		lists := make(map[int64]string, len(u.active))
		for _, id := range u.active {
			lists[id] = models.SubUnsubscribed
		}
		ev := models.Evidence{
			Source: models.SourceOneClick, IP: c.RealIP(), UserAgent: r.UserAgent(), Page: "/u/",
			Actor: "subscriber", Note: fmt.Sprintf("campaign %d, delivery %d", u.ref.CampaignID, u.ref.ID),
		}
		if err := t.store.SetSubscriptions(ctx, u.subscriber.ID, lists, ev); err != nil {
			return err
		}
		t.log.Info("one-click unsubscribe", "subscriber", u.subscriber.ID, "campaign", u.ref.CampaignID,
			"delivery", u.ref.ID, "lists", u.active, "ip", c.RealIP())
		t.record(ctx, models.Event{DeliveryID: u.ref.ID, CampaignID: u.ref.CampaignID, SubscriberID: u.subscriber.ID,
			Kind: models.EventUnsubscribe, IP: c.RealIP(), UserAgent: r.UserAgent(), CreatedAt: t.now()})
		state = views.UnsubscribeDone
	}
	return renderPublic(c, http.StatusOK, views.UnsubscribePage(t.unsubView(c, u, state)))
}

// renderPublic writes a public page through a pooled buffer, never cached:
// its URL carries a personal token.
func renderPublic(c echo.Context, status int, comp templ.Component) error {
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer bufPool.Put(buf)
	if err := comp.Render(c.Request().Context(), buf); err != nil {
		return err
	}
	noStore(c)
	return c.HTMLBlob(status, buf.Bytes())
}
