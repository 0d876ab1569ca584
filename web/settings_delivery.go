package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/herald-mail/herald/internal/config"
	"github.com/herald-mail/herald/mailer"
	"github.com/herald-mail/herald/models"
	"github.com/herald-mail/herald/views"
)

// deliveryPages serve Settings → Delivery: the transport, the relay(s)
// and the bounce mailbox, stored in the database (passwords sealed) and
// applied without a restart. What the environment or a flag sets wins
// and is shown read-only.
type deliveryPages struct{ *app }

// deliveryFields are the form's fields with the flag (config.Vars) whose
// environment variable wins over them.
var deliveryFields = map[string]string{
	"transport": "transport", "relay": "relay", "bounce_mailbox": "bounce-imap",
	"bounce_interval": "bounce-imap-interval", "bounce_move": "bounce-imap-move",
}

func (s *deliveryPages) setBy() map[string]string {
	m := map[string]string{}
	for field, flag := range deliveryFields {
		if src := s.cfg.Source(flag); src != "" {
			m[field] = src
		}
	}
	return m
}

// stored reads the saved settings; a password that no longer opens (the
// secret changed) is reported on its field, and the rest still shows.
func (s *deliveryPages) stored(ctx context.Context) (models.DeliverySettings, map[string]string, error) {
	d, err := s.store.DeliverySettings(ctx, s.cfg.Secrets())
	errs := map[string]string{}
	if errors.Is(err, models.ErrSettingSealed) {
		field := "relay"
		if strings.Contains(err.Error(), models.SettingBounceMailbox) {
			field = "bounce_mailbox"
		}
		errs[field] = "The saved " + strings.ReplaceAll(field, "_", " ") + " cannot be read: " + models.ErrSettingSealed.Error() + "."
		err = nil
	}
	return d, errs, err
}

// form shows the settings in effect: the environment's where it sets
// them, else the saved ones, passwords masked.
func (s *deliveryPages) form(d models.DeliverySettings, errs map[string]string) views.DeliveryForm {
	eff := mailer.Effective(s.cfg, d)
	f := views.DeliveryForm{Transport: eff.Transport, Relay: strings.Join(mailer.RedactURLs(eff.RelayURLs()), "\n"),
		BounceInterval: eff.BounceIMAPInterval, BounceMove: eff.BounceIMAPMove, SetBy: s.setBy(), Errors: errs}
	if eff.BounceIMAP != "" {
		f.BounceMailbox = mailer.RedactURLs([]string{eff.BounceIMAP})[0]
	}
	if f.Transport == "" {
		f.Transport = "capture"
	}
	f.InEffect = s.delivery().Transport
	if f.InEffect == "" {
		f.InEffect = "capture"
	}
	return f
}

func (s *deliveryPages) page(c echo.Context) error {
	d, errs, err := s.stored(c.Request().Context())
	if err != nil {
		return err
	}
	return s.render(c, 200, views.DeliverySettingsPage(s.app.page(c, "Delivery settings", "settings"), s.form(d, errs)))
}

// read takes the submitted settings over the stored ones: each field the
// environment does not set, checked. Masked passwords (xxxxx) keep the
// saved ones. errs says what is wrong, by field.
func (s *deliveryPages) read(c echo.Context, stored models.DeliverySettings) (d models.DeliverySettings, errs map[string]string) {
	d, errs = stored, map[string]string{}
	setBy := s.setBy()
	val := func(field string) (string, bool) {
		if setBy[field] != "" {
			return "", false
		}
		return strings.TrimSpace(c.FormValue(field)), true
	}
	if v, ok := val("transport"); ok {
		switch v {
		case "capture", "direct", "relay":
			d.Transport = v
		default:
			errs["transport"] = "Choose capture, direct or relay."
		}
	}
	if v, ok := val("relay"); ok {
		d.Relay = ""
		urls := (&config.Config{Relay: v}).RelayURLs()
		if len(urls) > 0 {
			kept, bad := mailer.KeepPasswords(urls, (&config.Config{Relay: stored.Relay}).RelayURLs())
			if bad >= 0 {
				errs["relay"] = fmt.Sprintf("Relay %d shows its password as xxxxx, but no password is saved for that user and host: type the password.", bad+1)
			} else if _, err := mailer.ParseRelays(kept); err != nil {
				errs["relay"] = plain(err)
			} else {
				d.Relay = strings.Join(kept, "\n")
			}
		}
	}
	if v, ok := val("bounce_mailbox"); ok {
		d.BounceMailbox = ""
		if v != "" {
			kept, bad := mailer.KeepPasswords([]string{v}, []string{stored.BounceMailbox})
			if bad >= 0 {
				errs["bounce_mailbox"] = "The password shows as xxxxx, but none is saved for that user and host: type the password."
			} else if _, err := mailer.NewPoller(nil, mailer.PollOptions{URL: kept[0]}); err != nil {
				errs["bounce_mailbox"] = plain(err)
			} else {
				d.BounceMailbox = kept[0]
			}
		}
	}
	if v, ok := val("bounce_interval"); ok {
		d.BounceInterval = v
		if dur, err := time.ParseDuration(v); v != "" && (err != nil || dur < time.Second) {
			errs["bounce_interval"] = fmt.Sprintf("%q is not a duration of at least 1s: write it like 30s, 1m or 5m.", v)
		}
	}
	if v, ok := val("bounce_move"); ok {
		d.BounceMove = v
		if len(v) > 200 {
			errs["bounce_move"] = "Keep the folder name under 200 characters."
		}
	}
	if len(errs) == 0 {
		eff := mailer.Effective(s.cfg, d)
		if eff.Transport == "relay" && len(eff.RelayURLs()) == 0 {
			errs["relay"] = "The relay transport needs a relay URL, such as smtp://user:password@smtp.example.com:587."
		} else if _, err := mailer.TransportFromConfig(eff, s.log); err != nil {
			errs["transport"] = plain(err)
		}
	}
	return d, errs
}

// plain drops the package prefix of an error for a person to read.
func plain(err error) string {
	msg := strings.TrimPrefix(err.Error(), "mailer: ")
	if msg != "" {
		msg = strings.ToUpper(msg[:1]) + msg[1:]
	}
	if !strings.HasSuffix(msg, ".") {
		msg += "."
	}
	return msg
}

// masked shows a setting in the audit log: URLs with their passwords hidden.
func masked(key, v string) string {
	if v == "" {
		return "(none)"
	}
	switch key {
	case models.SettingRelay:
		return strings.Join(mailer.RedactURLs((&config.Config{Relay: v}).RelayURLs()), " ")
	case models.SettingBounceMailbox:
		return mailer.RedactURLs([]string{v})[0]
	}
	return v
}

func (s *deliveryPages) save(c echo.Context) error {
	ctx := c.Request().Context()
	stored, serrs, err := s.stored(ctx)
	if err != nil {
		return err
	}
	d, errs := s.read(c, stored)
	if len(errs) > 0 {
		for k, v := range serrs {
			if _, ok := errs[k]; !ok {
				errs[k] = v
			}
		}
		f := s.form(d, errs)
		return s.render(c, http.StatusUnprocessableEntity, views.DeliverySettingsPage(s.app.page(c, "Delivery settings", "settings"), f))
	}
	values := func(x models.DeliverySettings) map[string]string {
		return map[string]string{models.SettingTransport: x.Transport, models.SettingRelay: x.Relay, models.SettingBounceMailbox: x.BounceMailbox,
			models.SettingBounceInterval: x.BounceInterval, models.SettingBounceMove: x.BounceMove}
	}
	before, after := values(stored), values(d)
	changed, err := s.store.SaveDeliverySettings(ctx, s.cfg.Secret, stored, d, func(key string) models.AuditEntry {
		return s.auditEntry(c, "settings.update", "setting", key, masked(key, before[key])+" → "+masked(key, after[key]))
	})
	if err != nil {
		return err
	}
	msg := "Nothing changed."
	if len(changed) > 0 {
		msg = "Delivery settings saved."
		if s.mailer != nil {
			if err := s.mailer.ReloadTransport(ctx); err != nil {
				s.log.Error("reload transport after saving the delivery settings", "err", err)
				msg = "Delivery settings saved, but the transport could not be rebuilt from them: " + plain(err)
			} else {
				msg += " Mail now leaves through " + s.delivery().Transport + "."
			}
		}
	}
	s.flash(c, msg)
	return seeOther(c, "/settings/delivery")
}

// testRelay connects to the relay(s) of the form (or of the environment,
// when it sets them) and says whether each took Herald's greeting, TLS
// and credentials.
func (s *deliveryPages) testRelay(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 45*time.Second)
	defer cancel()
	stored, _, err := s.stored(ctx)
	if err != nil {
		return err
	}
	d, errs := s.read(c, stored)
	var checks []views.ConnCheck
	urls := mailer.Effective(s.cfg, d).RelayURLs()
	switch {
	case errs["relay"] != "":
		checks = []views.ConnCheck{{Name: "Relay", Text: errs["relay"]}}
	case len(urls) == 0:
		checks = []views.ConnCheck{{Name: "Relay", Text: "There is no relay URL to test: enter one, such as smtp://user:password@smtp.example.com:587."}}
	default:
		res, err := mailer.CheckRelays(ctx, urls, "")
		if err != nil {
			checks = []views.ConnCheck{{Name: "Relay", Text: plain(err)}}
		}
		for _, r := range res {
			cc := views.ConnCheck{Name: r.Relay, OK: r.Err == nil, Text: r.Detail}
			if r.Err != nil {
				cc.Text = r.Err.Error()
			}
			checks = append(checks, cc)
		}
	}
	if isHTMX(c) {
		return s.render(c, 200, views.ConnResults(checks, "relay-result"))
	}
	f := s.form(d, map[string]string{})
	f.RelayTest = checks
	return s.render(c, 200, views.DeliverySettingsPage(s.app.page(c, "Delivery settings", "settings"), f))
}

// testMailbox logs in to the bounce mailbox of the form (or of the
// environment) and opens its folder, handling nothing.
func (s *deliveryPages) testMailbox(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 45*time.Second)
	defer cancel()
	stored, _, err := s.stored(ctx)
	if err != nil {
		return err
	}
	d, errs := s.read(c, stored)
	mailbox := mailer.Effective(s.cfg, d).BounceIMAP
	var check views.ConnCheck
	switch {
	case errs["bounce_mailbox"] != "":
		check = views.ConnCheck{Name: "Mailbox", Text: errs["bounce_mailbox"]}
	case mailbox == "":
		check = views.ConnCheck{Name: "Mailbox", Text: "There is no mailbox to test: enter one, such as imaps://user:password@imap.example.com:993/INBOX."}
	default:
		check.Name = mailer.RedactURLs([]string{mailbox})[0]
		n, err := mailer.CheckMailbox(ctx, mailbox, nil)
		if err != nil {
			check.Text = plain(err)
		} else {
			check.OK, check.Text = true, fmt.Sprintf("logged in; the folder holds %d message(s) waiting to be handled", n)
		}
	}
	checks := []views.ConnCheck{check}
	if isHTMX(c) {
		return s.render(c, 200, views.ConnResults(checks, "mailbox-result"))
	}
	f := s.form(d, map[string]string{})
	f.MailboxTest = checks
	return s.render(c, 200, views.DeliverySettingsPage(s.app.page(c, "Delivery settings", "settings"), f))
}
