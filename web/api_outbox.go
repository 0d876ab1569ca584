package web

import (
	"strconv"
	"time"

	"github.com/herald-mail/herald/models"
	"github.com/labstack/echo/v4"
)

func (s *apiHandlers) apiOutbox(c echo.Context) error {
	campaign, _ := strconv.ParseInt(c.QueryParam("campaign"), 10, 64)
	before, _ := strconv.ParseInt(c.QueryParam("before"), 10, 64)
	msgs, err := s.store.Outbox(c.Request().Context(), models.OutboxQuery{CampaignID: campaign, Before: before})
	if err != nil {
		return err
	}
	type row struct {
		ID         int64     `json:"id"`
		CampaignID int64     `json:"campaign_id"`
		To         string    `json:"to"`
		Subject    string    `json:"subject"`
		MessageID  string    `json:"message_id"`
		CreatedAt  time.Time `json:"created_at"`
	}
	out := make([]row, len(msgs))
	for i, m := range msgs {
		out[i] = row{m.ID, m.CampaignID, m.RcptTo, m.Subject, m.MessageID, m.CreatedAt}
	}
	return c.JSON(200, map[string]any{"data": out})
}
