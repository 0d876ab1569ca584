package web

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/herald-mail/herald/models"
)

type apiSegmentJS struct {
	ID         int64             `json:"id"`
	Name       string            `json:"name"`
	Conditions models.Conditions `json:"conditions"`
	CreatedAt  time.Time         `json:"created_at"`
	UpdatedAt  time.Time         `json:"updated_at"`
}

func toAPISegment(g *models.Segment) apiSegmentJS {
	return apiSegmentJS{g.ID, g.Name, g.Conditions, g.CreatedAt, g.UpdatedAt}
}

type segmentInput struct {
	Name       string            `json:"name"`
	Conditions models.Conditions `json:"conditions"`
}

func (s *apiHandlers) apiSegments(c echo.Context) error {
	segs, err := s.store.Segments(c.Request().Context())
	if err != nil {
		return err
	}
	out := make([]apiSegmentJS, len(segs))
	for i := range segs {
		out[i] = toAPISegment(&segs[i])
	}
	return c.JSON(200, map[string]any{"data": out})
}

func (s *apiHandlers) apiSegment(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	g, err := s.store.Segment(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(200, map[string]any{"data": toAPISegment(g)})
}

func segmentInvalid(err error) error {
	var ve *models.ValidationError
	if errors.As(err, &ve) {
		return unprocessable("The segment is not valid: "+firstMessage(ve.Fields), ve.Fields)
	}
	return err
}

func firstMessage(fields map[string]string) string {
	for _, k := range []string{"name", "conditions"} {
		if m := fields[k]; m != "" {
			return m
		}
	}
	for _, m := range fields {
		return m
	}
	return ""
}

func (s *apiHandlers) apiCreateSegment(c echo.Context) error {
	var in segmentInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	g := &models.Segment{Name: in.Name, Conditions: in.Conditions}
	chg, err := s.store.Begin(c.Request().Context())
	if err != nil {
		return err
	}
	defer chg.End()
	if err := s.store.CreateSegment(chg.Ctx(), g); err != nil {
		return segmentInvalid(err)
	}
	if err := chg.Commit(s.auditEntry(c, "segment.create", "segment", itoa(g.ID), g.Name+" (api)")); err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, map[string]any{"data": toAPISegment(g)})
}

func (s *apiHandlers) apiUpdateSegment(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	var in segmentInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	g := &models.Segment{ID: id, Name: in.Name, Conditions: in.Conditions}
	chg, err := s.store.Begin(c.Request().Context())
	if err != nil {
		return err
	}
	defer chg.End()
	if err := s.store.UpdateSegment(chg.Ctx(), g); err != nil {
		return segmentInvalid(err)
	}
	if err := chg.Commit(s.auditEntry(c, "segment.update", "segment", itoa(id), g.Name+" (api)")); err != nil {
		return err
	}
	return s.apiSegment(c)
}

func (s *apiHandlers) apiDeleteSegment(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	if err := s.removeSegment(c, id, "(api)"); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func joinQuoted(names []string) string {
	out := ""
	for i, n := range names {
		if i > 0 {
			out += ", "
		}
		out += "“" + n + "”"
	}
	return out
}

// apiSegmentCount answers {"count": n}: the active subscribers the saved
// segment matches now.
func (s *apiHandlers) apiSegmentCount(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	g, err := s.store.Segment(ctx, id)
	if err != nil {
		return err
	}
	n, err := s.store.CountSegment(ctx, g.Conditions)
	if err != nil {
		return segmentInvalid(err)
	}
	return c.JSON(200, map[string]any{"data": map[string]any{"count": n}})
}

// apiSegmentPreview answers the first matching people (?limit=, at most
// 100; 20 by default).
func (s *apiHandlers) apiSegmentPreview(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	limit := 20
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			return unprocessable("limit must be a number from 1 to 100.", map[string]string{"limit": "from 1 to 100"})
		}
		limit = n
	}
	ctx := c.Request().Context()
	g, err := s.store.Segment(ctx, id)
	if err != nil {
		return err
	}
	subs, err := s.store.PreviewSegment(ctx, g.Conditions, limit)
	if err != nil {
		return segmentInvalid(err)
	}
	out := make([]apiSubscriber, len(subs))
	for i, sub := range subs {
		out[i] = apiSubscriber{ID: sub.ID, Email: sub.Email, Name: sub.Name, Status: sub.Status, Attributes: sub.Attributes, CreatedAt: sub.CreatedAt}
	}
	return c.JSON(200, map[string]any{"data": out})
}
