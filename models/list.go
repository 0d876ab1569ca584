package models

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"gorm.io/gorm"
)

// List opt-in modes and visibilities.
const (
	OptinSingle = "single"
	OptinDouble = "double"

	ListPublic  = "public"
	ListPrivate = "private"

	ListKindList     = "list"     // a list people join
	ListKindSnapshot = "snapshot" // filled by Herald with an audience at one moment (CreateSnapshotCampaign)
)

// List is a mailing list.
type List struct {
	ID          int64
	Name        string
	Description string
	Optin       string
	Visibility  string
	// Kind is ListKindList, or ListKindSnapshot for a list Herald filled
	// itself: no one opted into it, so it has no consent rows of its own.
	Kind      string `gorm:"default:list"`
	CreatedAt time.Time
	UpdatedAt time.Time

	// Counts by subscription status, filled by the queries that list lists.
	Unconfirmed  int64 `gorm:"->;-:migration"`
	Confirmed    int64 `gorm:"->;-:migration"`
	Unsubscribed int64 `gorm:"->;-:migration"`
}

// MaxListDescriptionLength is the longest list description, in
// characters: it shows on the public subscribe page and in the
// preference centre.
const MaxListDescriptionLength = 2000

// Validate trims the name and description and returns a field→message
// map, empty when the list may be saved. The dashboard and the API both
// call it, so the same input is refused the same way on both.
func (l *List) Validate() map[string]string {
	errs := map[string]string{}
	l.Name = strings.TrimSpace(l.Name)
	l.Description = strings.TrimSpace(l.Description)
	if l.Name == "" {
		errs["name"] = "Give the list a name."
	} else if utf8.RuneCountInString(l.Name) > MaxNameLength {
		errs["name"] = fmt.Sprintf("Keep the name under %d characters.", MaxNameLength)
	}
	if utf8.RuneCountInString(l.Description) > MaxListDescriptionLength {
		errs["description"] = fmt.Sprintf("Keep the description under %d characters.", MaxListDescriptionLength)
	}
	if l.Optin != OptinSingle && l.Optin != OptinDouble {
		errs["optin"] = "Choose single or double opt-in (optin: \"single\" or \"double\")."
	}
	if l.Visibility != ListPublic && l.Visibility != ListPrivate {
		errs["visibility"] = "Choose public or private (visibility: \"public\" or \"private\")."
	}
	return errs
}

const listColumns = `lists.*, COALESCE(ls.unconfirmed, 0) AS unconfirmed,
	COALESCE(ls.confirmed, 0) AS confirmed, COALESCE(ls.unsubscribed, 0) AS unsubscribed`

// Lists returns every list with its counts, by name.
func (s *Store) Lists(ctx context.Context) ([]List, error) {
	var out []List
	err := s.conn(ctx).Table("lists").Select(listColumns).
		Joins("LEFT JOIN list_stats ls ON ls.list_id = lists.id").Order("lower(lists.name), lists.id").Scan(&out).Error
	if err != nil {
		return nil, fmt.Errorf("models: lists: %w", err)
	}
	return out, nil
}

// PublicLists returns the lists a subscriber may join on their own.
func (s *Store) PublicLists(ctx context.Context) ([]List, error) {
	var out []List
	err := s.conn(ctx).Where("visibility = ? AND kind = ?", ListPublic, ListKindList).Order("lower(name), id").Find(&out).Error
	if err != nil {
		return nil, fmt.Errorf("models: public lists: %w", err)
	}
	return out, nil
}

// List returns one list with its counts.
func (s *Store) List(ctx context.Context, id int64) (*List, error) {
	var out []List
	err := s.conn(ctx).Table("lists").Select(listColumns).
		Joins("LEFT JOIN list_stats ls ON ls.list_id = lists.id").Where("lists.id = ?", id).Scan(&out).Error
	if err != nil {
		return nil, fmt.Errorf("models: list %d: %w", id, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("models: list %d: %w", id, ErrNotFound)
	}
	return &out[0], nil
}

// CreateList stores a new list; call Validate first.
func (s *Store) CreateList(ctx context.Context, l *List) error {
	l.CreatedAt, l.UpdatedAt = dbNow(), dbNow()
	if err := s.conn(ctx).Omit("Unconfirmed", "Confirmed", "Unsubscribed").Create(l).Error; err != nil {
		return fmt.Errorf("models: create list: %w", err)
	}
	return nil
}

// UpdateList saves a list's name, description, opt-in and visibility.
func (s *Store) UpdateList(ctx context.Context, l *List) error {
	res := s.conn(ctx).Model(&List{}).Where("id = ?", l.ID).Updates(map[string]any{
		"name": l.Name, "description": l.Description, "optin": l.Optin,
		"visibility": l.Visibility, "updated_at": dbNow(),
	})
	if res.Error != nil {
		return fmt.Errorf("models: update list %d: %w", l.ID, res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("models: update list %d: %w", l.ID, ErrNotFound)
	}
	return nil
}

// DeleteList removes a list and its subscriptions. The subscribers stay, and
// the ledger records a withdrawal for everyone who was subscribed.
func (s *Store) DeleteList(ctx context.Context, id int64, ev Evidence) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		var n int64
		if err := tx.Model(&List{}).Where("id = ?", id).Count(&n).Error; err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("models: delete list %d: %w", id, ErrNotFound)
		}
		// One ledger row per live subscription, written in chunks so a big
		// list does not need its members in memory at once.
		var after int64
		for {
			var subs []struct {
				SubscriberID int64
				Email        string
			}
			err := tx.Raw(`SELECT s.subscriber_id, b.email FROM subscriptions s JOIN subscribers b ON b.id = s.subscriber_id
				WHERE s.list_id = ? AND s.status <> 'unsubscribed' AND s.subscriber_id > ? ORDER BY s.subscriber_id LIMIT 5000`, id, after).Scan(&subs).Error
			if err != nil {
				return err
			}
			if len(subs) == 0 {
				break
			}
			rows := make([]Consent, len(subs))
			for i, sub := range subs {
				rows[i] = ev.row(ConsentWithdrawn, sub.SubscriberID, id, sub.Email)
				rows[i].Note = strings.TrimSpace("list deleted " + ev.Note)
			}
			if err := s.appendConsents(tx, rows); err != nil {
				return err
			}
			after = subs[len(subs)-1].SubscriberID
		}
		if err := tx.Exec("DELETE FROM subscriptions WHERE list_id = ?", id).Error; err != nil {
			return err
		}
		return tx.Exec("DELETE FROM lists WHERE id = ?", id).Error
	})
}

// ValidateSubscriptionStatus checks a membership status a caller asks
// for (the dashboard's membership form, the API's PUT of a subscription);
// it returns a field→message map, empty when valid.
func ValidateSubscriptionStatus(status string) map[string]string {
	switch status {
	case SubConfirmed, SubUnconfirmed, SubUnsubscribed:
		return map[string]string{}
	}
	return map[string]string{"status": "Choose confirmed, unconfirmed or unsubscribed (status: \"confirmed\", \"unconfirmed\" or \"unsubscribed\")."}
}
