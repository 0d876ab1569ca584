package main

import (
	"context"
	"io"
	"log/slog"

	"github.com/herald-mail/herald/internal/config"
	"github.com/herald-mail/herald/models"
)

// adoptSecret moves a database that ran on its stored secret to the one
// given in the configuration: DKIM keys are re-sealed under it (the stored
// secret sits in the same database), and the stored one still verifies
// links in mail sent before.
func adoptSecret(ctx context.Context, cfg *config.Config, store *models.Store, stderr io.Writer) error {
	prev, n, err := store.AdoptSecret(ctx, cfg.Secret)
	if err != nil {
		return err
	}
	if prev != "" {
		cfg.PreviousSecrets = append(cfg.PreviousSecrets, prev)
	}
	if n > 0 {
		slog.New(slog.NewTextHandler(stderr, nil)).Info("re-sealed DKIM keys under the configured secret (they were sealed under the secret stored in the database)", "domains", n)
	}
	return nil
}
