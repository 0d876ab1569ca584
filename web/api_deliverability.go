package web

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/herald-mail/herald/models"
)

// --- suppressions ---

type apiSuppression struct {
	ID        int64     `json:"id"`
	Kind      string    `json:"kind"`
	Value     string    `json:"value"`
	Reason    string    `json:"reason"`
	Note      string    `json:"note"`
	CreatedAt time.Time `json:"created_at"`
}

func toAPISuppression(x *models.Suppression) apiSuppression {
	return apiSuppression{x.ID, x.Kind, x.Value, x.Reason, x.Note, x.CreatedAt}
}

func (s *apiHandlers) apiSuppressions(c echo.Context) error {
	q := models.SuppressionQuery{Search: strings.TrimSpace(c.QueryParam("q"))}
	var err error
	if q.Before, err = apiCursor(c, "before"); err != nil {
		return err
	}
	if q.Limit, err = apiLimit(c, 500); err != nil {
		return err
	}
	page, err := s.store.SearchSuppressions(c.Request().Context(), q)
	if err != nil {
		return err
	}
	out := make([]apiSuppression, len(page.Rows))
	for i := range page.Rows {
		out[i] = toAPISuppression(&page.Rows[i])
	}
	return apiPage(c, out, page.Next)
}

func (s *apiHandlers) apiAddSuppression(c echo.Context) error {
	var in struct {
		Value string `json:"value"`
		Kind  string `json:"kind"`
		Note  string `json:"note"`
	}
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	if in.Kind != "" && in.Kind != "address" && in.Kind != "domain" {
		return unprocessable("kind must be address or domain.", map[string]string{"kind": "address or domain"})
	}
	v, errs, err := s.suppress(c, in.Value, in.Kind, in.Note)
	if len(errs) > 0 {
		return unprocessable("The suppression is not valid: "+errs["value"], errs)
	}
	if err != nil {
		return err
	}
	x, err := s.store.SuppressionByValue(c.Request().Context(), v)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, map[string]any{"data": toAPISuppression(x)})
}

func (s *apiHandlers) apiRemoveSuppression(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	reason := strings.TrimSpace(c.QueryParam("reason"))
	if reason == "" {
		return unprocessable("Say why this address may be mailed again: ?reason=… (e.g. the person asked to be re-subscribed).",
			map[string]string{"reason": "required"})
	}
	if _, err := s.unsuppress(c, id, reason); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// --- bounces ---

type apiBounce struct {
	ID           int64     `json:"id"`
	Kind         string    `json:"kind"`
	Category     string    `json:"category"`
	Status       string    `json:"status"`
	Diagnostic   string    `json:"diagnostic"`
	RemoteMTA    string    `json:"remote_mta"`
	Reason       string    `json:"reason"`
	Email        string    `json:"email"`
	CampaignID   *int64    `json:"campaign_id"`
	SubscriberID *int64    `json:"subscriber_id"`
	DeliveryID   *int64    `json:"delivery_id"`
	CreatedAt    time.Time `json:"created_at"`
}

func (s *apiHandlers) apiBounces(c echo.Context) error {
	q := models.BounceQuery{Kind: c.QueryParam("type")}
	switch q.Kind {
	case "", models.BounceHard, models.BounceSoft, models.BounceComplaint:
	default:
		return badRequest("type must be hard, soft or complaint.")
	}
	var err error
	if q.CampaignID, err = apiCursor(c, "campaign"); err != nil {
		return err
	}
	if q.Before, err = apiCursor(c, "before"); err != nil {
		return err
	}
	if q.Limit, err = apiLimit(c, 500); err != nil {
		return err
	}
	rows, next, err := s.store.Bounces(c.Request().Context(), q)
	if err != nil {
		return err
	}
	out := make([]apiBounce, len(rows))
	for i, b := range rows {
		out[i] = apiBounce{b.ID, b.Kind, b.Category, b.Status, b.Diagnostic, b.RemoteMTA, b.Reason, b.Email,
			b.CampaignID, b.SubscriberID, b.DeliveryID, b.CreatedAt}
	}
	return apiPage(c, out, next)
}

// --- the event feed ---

type apiEvent struct {
	ID           string    `json:"id"`
	Type         string    `json:"type"`
	CampaignID   int64     `json:"campaign_id,omitempty"`
	SubscriberID int64     `json:"subscriber_id,omitempty"`
	DeliveryID   int64     `json:"delivery_id,omitempty"`
	Email        string    `json:"email,omitempty"`
	URL          string    `json:"url,omitempty"`
	Machine      bool      `json:"machine"`
	BounceKind   string    `json:"bounce_kind,omitempty"`
	Category     string    `json:"category,omitempty"`
	Status       string    `json:"status,omitempty"`
	Diagnostic   string    `json:"diagnostic,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
}

// eventCursor is the feed's opaque cursor: the last events and bounces
// rows seen, versioned so its form may change.
func eventCursor(k models.ActivityCursor) string {
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "v1:%d:%d", k.Event, k.Bounce))
}

func parseEventCursor(s string) (models.ActivityCursor, error) {
	var k models.ActivityCursor
	if s == "" {
		return k, nil
	}
	bad := badRequest("after is not a cursor this API gave; pass the cursor of the previous answer unchanged, or leave it out to start from the beginning.")
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return k, bad
	}
	parts := strings.Split(string(raw), ":")
	if len(parts) != 3 || parts[0] != "v1" {
		return k, bad
	}
	if k.Event, err = strconv.ParseInt(parts[1], 10, 64); err != nil || k.Event < 0 {
		return k, bad
	}
	if k.Bounce, err = strconv.ParseInt(parts[2], 10, 64); err != nil || k.Bounce < 0 {
		return k, bad
	}
	return k, nil
}

// apiEvents is the activity feed for incremental polling: everything after
// the cursor, oldest first, and the cursor to ask with next time.
func (s *apiHandlers) apiEvents(c echo.Context) error {
	q := models.ActivityQuery{}
	var err error
	if q.After, err = parseEventCursor(c.QueryParam("after")); err != nil {
		return err
	}
	if q.Limit, err = apiLimit(c, 1000); err != nil {
		return err
	}
	if q.CampaignID, err = apiCursor(c, "campaign"); err != nil {
		return err
	}
	if t := c.QueryParam("type"); t != "" {
		q.Kinds = strings.Split(t, ",")
	}
	rows, next, err := s.store.Activity(c.Request().Context(), q)
	var bk *models.BadKindError
	if errors.As(err, &bk) {
		return badRequest("type: " + bk.Error() + ", comma-separated.")
	}
	if err != nil {
		return err
	}
	out := make([]apiEvent, len(rows))
	for i, a := range rows {
		id := "e" + itoa(a.EventID)
		if a.BounceID != 0 {
			id = "b" + itoa(a.BounceID)
		}
		out[i] = apiEvent{id, a.Kind, a.CampaignID, a.SubscriberID, a.DeliveryID, a.Email, a.URL, a.Machine,
			a.BounceKind, a.Category, a.Status, a.Diagnostic, a.CreatedAt}
	}
	limit := q.Limit
	if limit == 0 {
		limit = 100
	}
	return c.JSON(200, map[string]any{"data": out, "cursor": eventCursor(next), "more": len(out) == limit})
}
