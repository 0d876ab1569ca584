package models

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"gorm.io/gorm"
)

// SettingOptinFrom is the sender address of the mail Herald writes to
// subscribers on its own (double opt-in confirmations). Empty: no-reply at
// the root URL's host.
const SettingOptinFrom = "optin_from"

// OptinTemplate names the built-in transactional template of double opt-in
// confirmations. EnsureOptinTemplate creates it on first use; an admin may
// edit it like any other template. It sees .Data.list (the list's name),
// .Data.confirm_url and .Data.preferences_url.
const OptinTemplate = "double-opt-in"

const optinSubject = `Please confirm your subscription to {{.Data.list}}`

const optinHTML = `<!DOCTYPE html>
<html><body style="font-family:sans-serif;line-height:1.5">
<p>Hello{{with .Subscriber.Name}} {{.}}{{end}},</p>
<p>Someone, we hope you, asked to subscribe {{.Subscriber.Email}} to <strong>{{.Data.list}}</strong>{{with .Org.Name}} from {{.}}{{end}}.</p>
<p><a href="{{.Data.confirm_url}}" style="display:inline-block;padding:.6em 1.2em;background:#4f46e5;color:#fff;text-decoration:none;border-radius:.3em">Yes, subscribe me</a></p>
<p>If you did not ask for this, ignore this message: you will not be subscribed and we will not write again about it.</p>
<p style="font-size:small;color:#555">Manage your subscriptions or see what we hold about you: <a href="{{.Data.preferences_url}}">preference centre</a>.{{with .Org.PostalAddress}}<br>{{.}}{{end}}</p>
</body></html>`

const optinText = `Hello{{with .Subscriber.Name}} {{.}}{{end}},

Someone, we hope you, asked to subscribe {{.Subscriber.Email}} to {{.Data.list}}{{with .Org.Name}} from {{.}}{{end}}.

To confirm, open this link and press the button:

{{.Data.confirm_url}}

If you did not ask for this, ignore this message: you will not be subscribed and we will not write again about it.

Manage your subscriptions: {{.Data.preferences_url}}
`

// EnsureOptinTemplate returns the double opt-in confirmation template,
// creating the built-in one when it does not exist yet. Concurrent first
// uses agree on one row.
func (s *Store) EnsureOptinTemplate(ctx context.Context) (*Template, error) {
	t := dbNow()
	err := s.conn(ctx).Exec(`INSERT INTO templates (kind, name, subject, html, text, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (kind, name) DO NOTHING`,
		TemplateTransactional, OptinTemplate, optinSubject, optinHTML, optinText, t, t).Error
	if err != nil {
		return nil, fmt.Errorf("models: ensure opt-in template: %w", err)
	}
	return s.TemplateByName(ctx, TemplateTransactional, OptinTemplate)
}

// Signup outcomes: what a public sign-up did. The subscribe page answers
// all of them with the same words, so it does not reveal who is on a list.
const (
	SignupSubscribed = "subscribed" // single opt-in: on the list now
	SignupPending    = "pending"    // double opt-in: unconfirmed; send the confirmation
	SignupUnchanged  = "unchanged"  // already on the list; nothing to do
	SignupRefused    = "refused"    // suppressed or blocklisted: nothing done, nothing sent
)

// SignupResult is what SignupFromForm did.
type SignupResult struct {
	Outcome      string // one of the Signup… constants
	SubscriberID int64  // 0 when refused before a subscriber was found or made
	List         List
}

// SignupFromForm subscribes an address to a public list from a public
// form. A new address becomes a subscriber; an existing one keeps its name
// (a stranger must not be able to change it). On a single opt-in list the
// subscription is confirmed at once; on a double opt-in list it stays
// unconfirmed until ConfirmSubscription. Suppressed and blocklisted
// addresses are left alone. The list must be public, or ErrNotFound. The
// address must be normalised; ev is the form's evidence.
func (s *Store) SignupFromForm(ctx context.Context, email, name string, listID int64, ev Evidence) (*SignupResult, error) {
	res := &SignupResult{}
	err := s.tx(ctx, func(tx *gorm.DB) error {
		if err := tx.Where("id = ? AND visibility = ?", listID, ListPublic).First(&res.List).Error; err != nil {
			return notFound(err)
		}
		if err := s.checkSuppressed(tx, email); errors.Is(err, ErrSuppressed) {
			res.Outcome = SignupRefused
			return nil
		} else if err != nil {
			return err
		}
		var sub Subscriber
		err := tx.Where("lower(email) = lower(?)", email).First(&sub).Error
		switch {
		case errors.Is(err, gorm.ErrRecordNotFound):
			sub = Subscriber{Email: email, Name: strings.TrimSpace(name), Status: SubscriberActive,
				Attributes: Attributes{}, CreatedAt: dbNow(), UpdatedAt: dbNow()}
			if err := tx.Create(&sub).Error; err != nil {
				return err
			}
		case err != nil:
			return err
		}
		res.SubscriberID = sub.ID
		if sub.Status != SubscriberActive {
			res.Outcome = SignupRefused
			return nil
		}
		var current []string
		if err := tx.Raw("SELECT status FROM subscriptions WHERE subscriber_id = ? AND list_id = ?", sub.ID, listID).
			Scan(&current).Error; err != nil {
			return err
		}
		was := ""
		if len(current) > 0 {
			was = current[0]
		}
		want := SubConfirmed
		res.Outcome = SignupSubscribed
		if res.List.Optin == OptinDouble {
			want, res.Outcome = SubUnconfirmed, SignupPending
		}
		switch {
		case was == SubConfirmed:
			res.Outcome = SignupUnchanged
			return nil
		case was == SubUnconfirmed:
			// Single opt-in: already mailed as it is. Double: still
			// waiting, so the confirmation goes out again.
			if res.List.Optin != OptinDouble {
				res.Outcome = SignupUnchanged
			}
			return nil
		}
		return s.setSubscriptions(tx, &sub, map[int64]string{listID: want}, ev)
	})
	if err != nil {
		return nil, fmt.Errorf("models: sign up to list %d: %w", listID, err)
	}
	return res, nil
}

// Confirmation outcomes.
const (
	ConfirmDone    = "done"    // was unconfirmed, now confirmed
	ConfirmAlready = "already" // was confirmed already: nothing written
	ConfirmStale   = "stale"   // left the list, or never joined: nothing written
)

// ConfirmSubscription confirms a double opt-in subscription that is
// waiting for it and records ev (IP, user agent, time) in the ledger as the
// proof. Confirming twice changes nothing the second time. ErrNotFound
// when the subscriber or the list no longer exists.
func (s *Store) ConfirmSubscription(ctx context.Context, subscriberID, listID int64, ev Evidence) (string, error) {
	out := ""
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var sub Subscriber
		if err := tx.First(&sub, subscriberID).Error; err != nil {
			return notFound(err)
		}
		var n int64
		if err := tx.Model(&List{}).Where("id = ?", listID).Count(&n).Error; err != nil {
			return err
		}
		if n == 0 {
			return ErrNotFound
		}
		var current []string
		if err := tx.Raw("SELECT status FROM subscriptions WHERE subscriber_id = ? AND list_id = ?", subscriberID, listID).
			Scan(&current).Error; err != nil {
			return err
		}
		switch {
		case len(current) == 0 || current[0] == SubUnsubscribed || sub.Status != SubscriberActive:
			out = ConfirmStale
			return nil
		case current[0] == SubConfirmed:
			out = ConfirmAlready
			return nil
		}
		out = ConfirmDone
		return s.setSubscriptions(tx, &sub, map[int64]string{listID: SubConfirmed}, ev)
	})
	if err != nil {
		return "", fmt.Errorf("models: confirm subscription of %d to %d: %w", subscriberID, listID, err)
	}
	return out, nil
}

// SetSubscriberName changes only a subscriber's name (the preference
// centre's form: the address is the identity and stays).
func (s *Store) SetSubscriberName(ctx context.Context, id int64, name string) error {
	res := s.conn(ctx).Exec("UPDATE subscribers SET name = ?, updated_at = ? WHERE id = ?", name, dbNow(), id)
	if res.Error != nil {
		return fmt.Errorf("models: set name of subscriber %d: %w", id, res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("models: set name of subscriber %d: %w", id, ErrNotFound)
	}
	return nil
}
