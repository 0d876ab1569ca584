package models

import (
	"context"
	"errors"
	"fmt"
	"strconv"
)

// Delivery setting keys: what the Settings → Delivery page stores. The
// relay and bounce mailbox URLs carry passwords, so they are stored
// sealed with the server secret (as DKIM keys are) and never shown back
// in clear. HERALD_* variables and flags still win over them.
const (
	SettingTransport      = "delivery.transport"       // capture, direct or relay; "" = the default
	SettingRelay          = "delivery.relay"           // sealed: the relay URL(s)
	SettingBounceMailbox  = "delivery.bounce_mailbox"  // sealed: imaps://user:pass@host/INBOX
	SettingBounceInterval = "delivery.bounce_interval" // a Go duration
	SettingBounceMove     = "delivery.bounce_move"     // folder for handled messages
	// SettingDeliveryStamp changes with every save, so every node's
	// engine can tell its transport is out of date.
	SettingDeliveryStamp = "delivery.stamp"
)

// sealedSettings are the settings stored sealed with the server secret.
var sealedSettings = []string{SettingRelay, SettingBounceMailbox}

// DeliverySettings are the delivery settings stored from the dashboard,
// passwords in clear (as the engine needs them); "" means unset.
type DeliverySettings struct {
	Transport, Relay, BounceMailbox, BounceInterval, BounceMove string
	// Stamp identifies the saved version ("" before the first save).
	Stamp string
}

// ErrSettingSealed is returned when a stored sealed setting does not
// open with any of the server's secrets.
var ErrSettingSealed = errors.New("a stored password does not decrypt with this server secret; enter it again on Settings → Delivery")

// DeliverySettings reads the stored delivery settings, opening the sealed
// ones with the first of secrets that opens them (the newest first).
func (s *Store) DeliverySettings(ctx context.Context, secrets []string) (DeliverySettings, error) {
	all, err := s.Settings(ctx)
	if err != nil {
		return DeliverySettings{}, err
	}
	d := DeliverySettings{Transport: all[SettingTransport], BounceInterval: all[SettingBounceInterval],
		BounceMove: all[SettingBounceMove], Stamp: all[SettingDeliveryStamp]}
	for key, dst := range map[string]*string{SettingRelay: &d.Relay, SettingBounceMailbox: &d.BounceMailbox} {
		if all[key] == "" {
			continue
		}
		if *dst, err = openSetting(secrets, all[key]); err != nil {
			return d, fmt.Errorf("models: setting %s: %w", key, err)
		}
	}
	return d, nil
}

func openSetting(secrets []string, sealed string) (string, error) {
	for _, sec := range secrets {
		if b, err := open(sec, sealed); err == nil {
			return string(b), nil
		}
	}
	return "", ErrSettingSealed
}

// SaveDeliverySettings stores d (sealing the relay and mailbox URLs with
// secret) and a new stamp, in one transaction with the audit entries ctx
// and audit carry. It returns the keys whose value changed.
func (s *Store) SaveDeliverySettings(ctx context.Context, secret string, before, d DeliverySettings, audit func(key string) AuditEntry) ([]string, error) {
	t, err := s.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer t.End()
	var changed []string
	var entries []AuditEntry
	for _, f := range []struct {
		key, old, new string
		sealed        bool
	}{
		{SettingTransport, before.Transport, d.Transport, false},
		{SettingRelay, before.Relay, d.Relay, true},
		{SettingBounceMailbox, before.BounceMailbox, d.BounceMailbox, true},
		{SettingBounceInterval, before.BounceInterval, d.BounceInterval, false},
		{SettingBounceMove, before.BounceMove, d.BounceMove, false},
	} {
		if f.old == f.new {
			continue
		}
		v := f.new
		if f.sealed && v != "" {
			if v, err = seal(secret, []byte(v)); err != nil {
				return nil, err
			}
		}
		if err := s.SetSetting(t.Ctx(), f.key, v); err != nil {
			return nil, err
		}
		changed = append(changed, f.key)
		if audit != nil {
			entries = append(entries, audit(f.key))
		}
	}
	if len(changed) == 0 {
		return nil, nil
	}
	if err := s.SetSetting(t.Ctx(), SettingDeliveryStamp, strconv.FormatInt(dbNow().UnixNano(), 36)); err != nil {
		return nil, err
	}
	if err := t.Commit(entries...); err != nil {
		return nil, err
	}
	return changed, nil
}
