package models

import (
	"context"
	"fmt"

	"gorm.io/gorm"
)

// AdoptSecret makes secret, given from outside the database (HERALD_SECRET
// or a secret file), the one that seals DKIM private keys. A database that
// ran without it holds a generated secret beside the keys it sealed, so a
// dump of the database gave both; each key sealed under that stored
// secret is re-sealed under secret (and so are the sealed passwords of
// Settings → Delivery), in one transaction. It returns the stored secret
// (still needed to check links in mail sent before; "" when there is
// none or it is secret) and how many domains were re-sealed.
func (s *Store) AdoptSecret(ctx context.Context, secret string) (previous string, resealed int, err error) {
	stored, err := s.Setting(ctx, SettingSecret)
	if err != nil || stored == "" || stored == secret {
		return "", 0, err
	}
	err = s.conn(ctx).Transaction(func(tx *gorm.DB) error {
		var domains []SendingDomain
		if err := tx.Find(&domains).Error; err != nil {
			return err
		}
		for _, d := range domains {
			if d.RSAPrivate == "" {
				continue
			}
			if _, err := open(secret, d.RSAPrivate); err == nil {
				continue // sealed under secret already
			}
			rsa, err := open(stored, d.RSAPrivate)
			if err != nil {
				continue // under neither: left alone, signing reports it
			}
			up := map[string]any{}
			if up["rsa_private"], err = seal(secret, rsa); err != nil {
				return err
			}
			if d.Ed25519Private != "" {
				ed, err := open(stored, d.Ed25519Private)
				if err != nil {
					return fmt.Errorf("ed25519 key of %s: %w", d.Domain, ErrBadSecret)
				}
				if up["ed25519_private"], err = seal(secret, ed); err != nil {
					return err
				}
			}
			if err := tx.Table("sending_domains").Where("id = ?", d.ID).Updates(up).Error; err != nil {
				return err
			}
			resealed++
		}
		// The relay and bounce mailbox passwords of Settings → Delivery.
		for _, key := range sealedSettings {
			var v []string
			if err := tx.Raw("SELECT value FROM settings WHERE key = ?", key).Scan(&v).Error; err != nil {
				return err
			}
			if len(v) == 0 || v[0] == "" {
				continue
			}
			if _, err := open(secret, v[0]); err == nil {
				continue
			}
			plain, err := open(stored, v[0])
			if err != nil {
				continue // under neither: the page asks for it again
			}
			sealed, err := seal(secret, plain)
			if err != nil {
				return err
			}
			if err := tx.Exec("UPDATE settings SET value = ? WHERE key = ?", sealed, key).Error; err != nil {
				return err
			}
		}
		return resealTOTP(tx, stored, secret)
	})
	if err != nil {
		return "", 0, fmt.Errorf("models: re-seal DKIM keys: %w", err)
	}
	return stored, resealed, nil
}

// resealTOTP re-seals the TOTP secrets sealed under stored with secret.
func resealTOTP(tx *gorm.DB, stored, secret string) error {
	var users []User
	if err := tx.Where("totp_secret <> ''").Find(&users).Error; err != nil {
		return err
	}
	for _, u := range users {
		if _, err := open(secret, u.TOTPSecret); err == nil {
			continue
		}
		plain, err := open(stored, u.TOTPSecret)
		if err != nil {
			continue // under neither: the user's admin resets their 2FA
		}
		sealed, err := seal(secret, plain)
		if err != nil {
			return err
		}
		if err := tx.Exec("UPDATE users SET totp_secret = ? WHERE id = ?", sealed, u.ID).Error; err != nil {
			return err
		}
	}
	return nil
}
