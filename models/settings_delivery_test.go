package models_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

// TestDeliverySettingsSealed: the relay and mailbox URLs are stored
// sealed (no password in the table), read back in clear with the secret
// (or an older one), refused with another; each save that changes
// something moves the stamp and writes its audit entries in the same
// transaction; AdoptSecret re-seals them under the new secret.
func TestDeliverySettingsSealed(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		const secret, other = "0123456789abcdef0123456789abcdef", "ffffffffffffffffffffffffffffffff"
		d := models.DeliverySettings{Transport: "relay", Relay: "smtp://ann:s3cret-pw@relay.test:587?connections=2",
			BounceMailbox: "imaps://b:mbox-pw@imap.test/INBOX", BounceInterval: "30s", BounceMove: "Done"}
		changed, err := s.SaveDeliverySettings(ctx, secret, models.DeliverySettings{}, d, func(key string) models.AuditEntry {
			return models.AuditEntry{Actor: "admin@example.com", Action: "settings.update", ObjectType: "setting", ObjectID: key}
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(changed) != 5 {
			t.Errorf("changed = %v, want all 5 keys", changed)
		}
		all, err := s.Settings(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{models.SettingRelay, models.SettingBounceMailbox} {
			// The passwords themselves, not a fragment: two letters such
			// as "pw" turn up in the sealed text's base64 by chance.
			if strings.Contains(all[k], "s3cret-pw") || strings.Contains(all[k], "mbox-pw") || !strings.HasPrefix(all[k], "v1:") {
				t.Errorf("stored %s = %q, want it sealed", k, all[k])
			}
		}
		if all[models.SettingTransport] != "relay" || all[models.SettingDeliveryStamp] == "" {
			t.Errorf("transport %q stamp %q", all[models.SettingTransport], all[models.SettingDeliveryStamp])
		}
		var n int64
		s.DB().Raw("SELECT COUNT(*) FROM audit_log WHERE action = 'settings.update'").Scan(&n)
		if n != 5 {
			t.Errorf("%d audit entries, want 5", n)
		}

		got, err := s.DeliverySettings(ctx, []string{secret})
		if err != nil {
			t.Fatal(err)
		}
		if got.Relay != d.Relay || got.BounceMailbox != d.BounceMailbox || got.BounceInterval != "30s" || got.BounceMove != "Done" {
			t.Errorf("read back %+v, want %+v", got, d)
		}
		if got2, err := s.DeliverySettings(ctx, []string{other, secret}); err != nil || got2.Relay != d.Relay {
			t.Errorf("with the old secret second: %+v, %v", got2, err)
		}
		if _, err := s.DeliverySettings(ctx, []string{other}); !errors.Is(err, models.ErrSettingSealed) {
			t.Errorf("with another secret: %v, want ErrSettingSealed", err)
		}

		// Saving the same again changes nothing, not even the stamp.
		if changed, err := s.SaveDeliverySettings(ctx, secret, got, got, nil); err != nil || len(changed) != 0 {
			t.Errorf("unchanged save = %v, %v", changed, err)
		}
		if st, _ := s.Setting(ctx, models.SettingDeliveryStamp); st != got.Stamp {
			t.Errorf("stamp moved on an unchanged save: %q → %q", got.Stamp, st)
		}
		next := got
		next.Transport = "capture"
		if changed, err := s.SaveDeliverySettings(ctx, secret, got, next, nil); err != nil || len(changed) != 1 || changed[0] != models.SettingTransport {
			t.Errorf("transport change = %v, %v", changed, err)
		}
		if st, _ := s.Setting(ctx, models.SettingDeliveryStamp); st == got.Stamp {
			t.Error("stamp did not move on a change")
		}

		// The database's own secret was secret; the environment now gives other.
		if err := s.SetSetting(ctx, models.SettingSecret, secret); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.AdoptSecret(ctx, other); err != nil {
			t.Fatal(err)
		}
		if got, err := s.DeliverySettings(ctx, []string{other}); err != nil || got.Relay != d.Relay || got.BounceMailbox != d.BounceMailbox {
			t.Errorf("after AdoptSecret: %+v, %v; want the URLs re-sealed under the new secret", got, err)
		}
	})
}
