package web

import (
	"errors"
	"net/http"
	"strings"

	"github.com/herald-mail/herald/mailer"
	"github.com/herald-mail/herald/models"
	"github.com/labstack/echo/v4"
)

type txInput struct {
	Template   string         `json:"template"`
	TemplateID int64          `json:"template_id"`
	To         string         `json:"to"`
	Name       string         `json:"name"`
	From       string         `json:"from"`
	FromName   string         `json:"from_name"`
	ReplyTo    string         `json:"reply_to"`
	Data       map[string]any `json:"data"`
	// OverrideSuppression sends even to a suppressed address (password
	// resets, receipts); it must be asked for explicitly.
	OverrideSuppression bool `json:"override_suppression"`
}

// apiTransactional sends one transactional message ahead of campaign traffic.
func (s *apiHandlers) apiTransactional(c echo.Context) error {
	var in txInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	// An override is queued together with its entry (models.Tx); other
	// messages, the hot path, need no transaction of their own.
	ctx := c.Request().Context()
	var chg *models.Tx
	if in.OverrideSuppression {
		var err error
		if chg, err = s.store.Begin(ctx); err != nil {
			return err
		}
		defer chg.End()
		ctx = chg.Ctx()
	}
	id, err := s.mailer.SendTransactional(ctx, mailer.TransactionalRequest{
		Template: in.Template, TemplateID: in.TemplateID, To: in.To, Name: in.Name,
		From: in.From, FromName: in.FromName, ReplyTo: in.ReplyTo, Data: in.Data, OverrideSuppression: in.OverrideSuppression,
	})
	if errors.Is(err, mailer.ErrInvalidRequest) {
		return unprocessable(strings.TrimPrefix(err.Error(), "mailer: invalid request: "), nil)
	}
	if err != nil {
		return err
	}
	if in.OverrideSuppression {
		// Overrides are rare and consequential: each is in the audit log.
		if err := chg.Commit(s.auditEntry(c, "tx.override_suppression", "delivery", itoa(id), "transactional message to "+in.To+" sent past any suppression")); err != nil {
			return err
		}
	}
	return c.JSON(http.StatusAccepted, map[string]any{"data": map[string]any{"delivery_id": id}})
}
