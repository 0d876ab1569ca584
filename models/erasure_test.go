package models_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

// erasedPII are the traces of the erased person the test plants in every
// place personal data can reach; none may survive erasure, in any column of
// any table.
var erasedPII = []string{
	"ada.erase@lovelace-q7.example", "lovelace-q7", "adaqz", "markerson", "attrville-51", "q7-rectified",
	"203.0.113.77", "markerbrowser", "pagemarker.example",
}

// TestEraseSubscriberLeavesNoPersonalData plants one person's data through
// the store's own write paths (subscription with evidence, campaign
// deliveries, a transactional message, opens and clicks, a bounce with a
// diagnostic quoting the address, a captured message, an import error, an
// audit entry), erases them, and then reads every column of every table in
// the database, tables added later included: no trace may remain except the
// hashed suppression and the ledger's hashes. A second person's data must be
// untouched.
func TestEraseSubscriberLeavesNoPersonalData(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		const email = "Ada.Erase@Lovelace-Q7.example"
		subID, deliveries := sentCampaigns(t, s, email, 2)
		sub, err := s.Subscriber(ctx, subID)
		if err != nil {
			t.Fatal(err)
		}
		sub.Name, sub.Attributes = "Adaqz Markerson", models.Attributes{"city": "Attrville-51"}
		if err := s.UpdateSubscriber(ctx, sub); err != nil {
			t.Fatal(err)
		}
		other := &models.List{Name: "Offers", Optin: models.OptinDouble, Visibility: models.ListPublic}
		if err := s.CreateList(ctx, other); err != nil {
			t.Fatal(err)
		}
		ev := models.Evidence{Source: models.SourceForm, IP: "203.0.113.77", UserAgent: "MarkerBrowser/9.9",
			Page: "https://pagemarker.example/signup", ConsentText: "Yes, send me offers"}
		if err := s.SetSubscriptions(ctx, subID, map[int64]string{other.ID: models.SubUnconfirmed}, ev); err != nil {
			t.Fatal(err)
		}
		camp, err := s.Delivery(ctx, deliveries[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := s.InsertEvents(ctx, []models.Event{
			{DeliveryID: deliveries[0], CampaignID: *camp.CampaignID, SubscriberID: subID, Kind: models.EventOpen,
				IP: "203.0.113.77", UserAgent: "MarkerBrowser/9.9", CreatedAt: time.Now()},
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.RecordBounce(ctx, models.BounceNotice{DeliveryID: deliveries[1], Kind: models.BounceHard,
			Category: "user_unknown", Status: "5.1.1", Diagnostic: "550 5.1.1 <" + email + ">: no such user",
			RemoteMTA: "mx.lovelace-q7.example"}); err != nil {
			t.Fatal(err)
		}
		tpl := &models.Template{Kind: models.TemplateTransactional, Name: "welcome", Subject: "Hi", Text: "Hello"}
		must(t, s.CreateTemplate(ctx, tpl))
		tx, err := s.EnqueueTransactional(ctx, models.TransactionalMessage{TemplateID: tpl.ID, Email: strings.ToLower(email), Name: "Adaqz Markerson",
			Data: `{"city":"Attrville-51"}`})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SaveOutbox(ctx, &models.OutboxMessage{DeliveryID: tx, MailFrom: "news@example.com",
			RcptTo: strings.ToLower(email), Subject: "Hello Adaqz", Raw: "To: Adaqz Markerson <" + email + ">\r\n\r\nHi"}); err != nil {
			t.Fatal(err)
		}
		db := s.DB().WithContext(ctx)
		// What an SMTP answer and an import of a bad row leave behind.
		must(t, db.Exec("UPDATE deliveries SET last_text = ? WHERE id = ?", "250 ok queued for <"+email+">", deliveries[0]).Error)
		must(t, db.Exec(`INSERT INTO imports (id, filename, mode, lawful_basis, source, status, created_at)
			VALUES (900, 'x.csv', 'add', 'consent', 'import', 'done', ?)`, time.Now()).Error)
		must(t, db.Exec(`INSERT INTO import_errors (import_id, row_num, email, reason) VALUES (900, 2, ?, 'bad attributes')`,
			strings.ToLower(email)).Error)
		must(t, s.Audit(ctx, models.AuditEntry{Action: "subscriber.update", ObjectType: "subscriber",
			ObjectID: fmt.Sprint(subID), Summary: "name of " + email + ": Ada → Adaqz Markerson"}))
		// A data-subject request about them, then a rectified address: the
		// old one lives on in the ledger, the request and the audit log.
		must(t, s.CreateDSR(ctx, &models.DSRRequest{Kind: models.DSRRectification, SubjectEmail: email, SubscriberID: &subID}))
		sub.Email = "ada@q7-rectified.example"
		must(t, s.UpdateSubscriber(ctx, sub))
		must(t, s.Audit(ctx, models.AuditEntry{Action: "dsr.rectify", ObjectType: "subscriber",
			ObjectID: fmt.Sprint(subID), Summary: `email "` + email + `" → "ada@q7-rectified.example"`}))

		// Someone else, who must keep everything.
		keep := &models.Subscriber{Email: "grace@hopper.example", Name: "Grace Hopper"}
		must(t, s.CreateSubscriber(ctx, keep, map[int64]string{other.ID: models.SubConfirmed},
			models.Evidence{Source: models.SourceForm, IP: "198.51.100.9"}))

		if err := s.EraseSubscriber(ctx, subID, models.Evidence{Source: "compliance", Actor: "dpo@example.com",
			IP: "203.0.113.77", UserAgent: "MarkerBrowser/9.9"}); err != nil {
			t.Fatal(err)
		}

		for table, hits := range scanTables(t, s, erasedPII) {
			t.Errorf("table %s still holds personal data after erasure: %v", table, hits)
		}
		if left := scanTables(t, s, []string{"grace@hopper.example", "grace hopper", "198.51.100.9"}); len(left) == 0 {
			t.Error("the other subscriber's data is gone too")
		}
		if _, err := s.Subscriber(ctx, subID); !errors.Is(err, models.ErrNotFound) {
			t.Errorf("Subscriber() after erasure = %v, want ErrNotFound", err)
		}
		if brk, _, err := s.VerifyConsents(ctx); err != nil || brk != nil {
			t.Errorf("VerifyConsents() after erasure = %+v, %v; the tombstones must keep the chain intact", brk, err)
		}
		var erased int64
		must(t, db.Raw("SELECT COUNT(*) FROM consents WHERE subscriber_id = ? AND action = ?", subID, models.ConsentErased).Scan(&erased).Error)
		if erased != 2 {
			t.Errorf("erased ledger rows = %d, want one per list (2)", erased)
		}
		// The hash keeps the address from coming back by mistake.
		again := &models.Subscriber{Email: email}
		if err := s.CreateSubscriber(ctx, again, nil, models.Evidence{Source: models.SourceImport}); !errors.Is(err, models.ErrSuppressed) {
			t.Errorf("re-adding an erased address = %v, want ErrSuppressed", err)
		}
		// Campaign numbers survive: the deliveries are still counted.
		var n int64
		must(t, db.Raw("SELECT COUNT(*) FROM deliveries WHERE id IN ?", deliveries).Scan(&n).Error)
		if n != 2 {
			t.Errorf("deliveries kept = %d, want 2 (anonymised, not deleted)", n)
		}
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// scanTables reads every column of every row of every table and returns,
// per table, the needles (lower case) found in it.
func scanTables(t *testing.T, s *models.Store, needles []string) map[string][]string {
	t.Helper()
	db := s.DB()
	var tables []string
	q := "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
	if s.Dialect() == models.Postgres {
		q = "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
	}
	must(t, db.Raw(q).Scan(&tables).Error)
	if len(tables) < 10 {
		t.Fatalf("found only %d tables: %v", len(tables), tables)
	}
	found := map[string][]string{}
	for _, table := range tables {
		rows, err := db.Raw(fmt.Sprintf(`SELECT * FROM %q`, table)).Rows()
		must(t, err)
		cols, err := rows.Columns()
		must(t, err)
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		for rows.Next() {
			must(t, rows.Scan(ptrs...))
			for i, v := range vals {
				var text string
				switch v := v.(type) {
				case []byte:
					text = string(v)
				case nil:
					continue
				default:
					text = fmt.Sprint(v)
				}
				text = strings.ToLower(text)
				for _, n := range needles {
					if strings.Contains(text, n) {
						found[table] = append(found[table], cols[i]+"~"+n)
					}
				}
			}
		}
		must(t, rows.Err())
		rows.Close()
	}
	return found
}

// TestSubjectExportHoldsEverything checks an access request's answer
// carries each kind of data Herald keeps on the person.
func TestSubjectExportHoldsEverything(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		const email = "lin@example.org"
		subID, deliveries := sentCampaigns(t, s, email, 2)
		camp, err := s.Delivery(ctx, deliveries[0])
		must(t, err)
		must(t, s.InsertEvents(ctx, []models.Event{{DeliveryID: deliveries[0], CampaignID: *camp.CampaignID,
			SubscriberID: subID, Kind: models.EventOpen, IP: "192.0.2.4", UserAgent: "Mail/1", CreatedAt: time.Now()}}))
		_, err = s.RecordBounce(ctx, models.BounceNotice{DeliveryID: deliveries[1], Kind: models.BounceHard,
			Category: "user_unknown", Status: "5.1.1", Diagnostic: "550 no such user"})
		must(t, err)

		got, err := s.SubjectExport(ctx, subID)
		must(t, err)
		if got.Profile.Email != email || len(got.Memberships) != 1 || len(got.Deliveries) != 2 ||
			len(got.Events) != 1 || got.Events[0].IP != "192.0.2.4" || len(got.Bounces) != 1 ||
			got.Suppression == nil || got.Suppression.Reason != models.SuppressHardBounce {
			t.Errorf("SubjectExport() = %+v", got)
		}
		// A hard bounce suppresses; it does not touch the membership.
		if len(got.Consents) != 1 || got.Consents[0].Action != models.ConsentGranted || got.Memberships[0].List != "News" {
			t.Errorf("consents = %+v, memberships = %+v", got.Consents, got.Memberships)
		}
		if _, err := s.SubjectExport(ctx, subID+1000); !errors.Is(err, models.ErrNotFound) {
			t.Errorf("SubjectExport(unknown) = %v, want ErrNotFound", err)
		}
	})
}
