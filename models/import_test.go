package models_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"strings"
	"testing"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

func newList(t *testing.T, s *models.Store, name string) *models.List {
	t.Helper()
	l := &models.List{Name: name, Optin: models.OptinSingle, Visibility: models.ListPublic}
	if err := s.CreateList(context.Background(), l); err != nil {
		t.Fatal(err)
	}
	return l
}

// importOpts maps the columns email,name,city of the test files.
func importOpts(listID int64, mode string) models.ImportOptions {
	return models.ImportOptions{
		ListID: listID, Mode: mode, LawfulBasis: models.BasisConsent, Source: "sign-up sheet, Lyon fair",
		EmailColumn: 0, NameColumn: 1, AttributeColumns: map[string]int{"city": 2},
		Status:   models.SubConfirmed,
		Evidence: models.Evidence{Actor: "user:1", IP: "192.0.2.7"},
	}
}

// runImport imports data and returns the finished import and RunImport's error.
func runImport(t *testing.T, s *models.Store, data string, opts models.ImportOptions) (*models.Import, error) {
	t.Helper()
	ctx := context.Background()
	im := &models.Import{Filename: "test.csv", ListID: opts.ListID, Mode: opts.Mode}
	if err := s.CreateImport(ctx, im); err != nil {
		t.Fatal(err)
	}
	runErr := s.RunImport(ctx, im.ID, strings.NewReader(data), int64(len(data)), opts)
	got, err := s.Import(ctx, im.ID)
	if err != nil {
		t.Fatal(err)
	}
	return got, runErr
}

func errorReport(t *testing.T, s *models.Store, id int64) [][]string {
	t.Helper()
	var buf bytes.Buffer
	if err := s.WriteImportErrors(context.Background(), id, &buf); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatalf("error report is not CSV: %v\n%s", err, buf.String())
	}
	if len(recs) == 0 || strings.Join(recs[0], ",") != "row,email,reason" {
		t.Fatalf("error report header = %v", recs)
	}
	return recs[1:]
}

func counts(im *models.Import) [5]int64 {
	return [5]int64{im.RowsRead, im.Inserted, im.Updated, im.Skipped, im.Failed}
}

func TestImportHappyPath(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		l := newList(t, s, "News")
		data := "\uFEFFEmail;Name;City\r\nana@Example.COM;Ana Lima;Lyon\r\n\"bo@example.org\";\"Bo; the second\";\r\ncy@exämple.de;Cy;Berlin\r\n"
		im, err := runImport(t, s, data, importOpts(l.ID, models.ImportUpdate))
		if err != nil {
			t.Fatalf("RunImport() = %v", err)
		}
		if im.Status != models.ImportFinished || counts(im) != [5]int64{3, 3, 0, 0, 0} || im.Percent() != 100 || im.ReadBytes != int64(len(data)) {
			t.Fatalf("import = %+v, want finished with 3 inserted and all bytes read", im)
		}
		sub, err := s.SubscriberByEmail(ctx, "ana@example.com")
		if err != nil {
			t.Fatal(err)
		}
		if sub.Email != "ana@example.com" || sub.Name != "Ana Lima" || sub.Attributes["city"] != "Lyon" {
			t.Errorf("ana = %+v", sub)
		}
		bo, err := s.SubscriberByEmail(ctx, "bo@example.org")
		if err != nil {
			t.Fatal(err)
		}
		if bo.Name != "Bo; the second" || len(bo.Attributes) != 0 {
			t.Errorf("bo = %+v, want the quoted name and no attributes (empty cell)", bo)
		}
		if _, err := s.SubscriberByEmail(ctx, "cy@xn--exmple-cua.de"); err != nil {
			t.Errorf("internationalised domain not stored as punycode: %v", err)
		}
		subs, err := s.SubscriptionsOf(ctx, sub.ID)
		if err != nil || len(subs) != 1 || subs[0].ListID != l.ID || subs[0].Status != models.SubConfirmed {
			t.Fatalf("subscriptions of ana = %+v, %v", subs, err)
		}
		list, err := s.List(ctx, l.ID)
		if err != nil || list.Confirmed != 3 {
			t.Errorf("list counts = %+v, %v; want 3 confirmed", list, err)
		}
		hist, err := s.ConsentsBySubscriber(ctx, sub.ID)
		if err != nil || len(hist) != 1 {
			t.Fatalf("consents of ana = %+v, %v", hist, err)
		}
		c := hist[0]
		if c.Action != models.ConsentImported || c.LawfulBasis != models.BasisConsent || c.Source != models.SourceImport ||
			c.Actor != "user:1" || c.IP != "192.0.2.7" || !strings.Contains(c.Note, "Lyon fair") || c.Email != "ana@example.com" {
			t.Errorf("consent = %+v", c)
		}
		brk, n, err := s.VerifyConsents(ctx)
		if err != nil || brk != nil || n != 3 {
			t.Errorf("VerifyConsents() = %+v, %d, %v; want nil, 3, nil", brk, n, err)
		}
		if rep := errorReport(t, s, im.ID); len(rep) != 0 {
			t.Errorf("error report = %v, want empty", rep)
		}
	})
}

func TestImportUpdateAndSkip(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		l := newList(t, s, "News")
		other := newList(t, s, "Other")
		ev := models.Evidence{Source: models.SourceAdmin, Actor: "admin"}
		mk := func(email, name string, attrs models.Attributes, lists map[int64]string) int64 {
			sub := &models.Subscriber{Email: email, Name: name, Attributes: attrs}
			if err := s.CreateSubscriber(ctx, sub, lists, ev); err != nil {
				t.Fatal(err)
			}
			return sub.ID
		}
		old := mk("old@example.com", "Old Name", models.Attributes{"plan": "free", "city": "Oslo"}, map[int64]string{other.ID: models.SubConfirmed})
		pending := mk("pending@example.com", "P", nil, map[int64]string{l.ID: models.SubUnconfirmed})
		gone := mk("gone@example.com", "G", nil, map[int64]string{l.ID: models.SubConfirmed})
		if err := s.SetSubscriptions(ctx, gone, map[int64]string{l.ID: models.SubUnsubscribed}, ev); err != nil {
			t.Fatal(err)
		}
		same := mk("same@example.com", "Same", models.Attributes{"city": "Rome"}, map[int64]string{l.ID: models.SubConfirmed})
		data := "email,name,city\nOLD@example.com,New Name,Lyon\npending@example.com,,\ngone@example.com,G,\nsame@example.com,Same,Rome\nnew@example.com,New,\n"

		// Skip: existing people are left exactly as they were.
		consentsBefore := consentCount(t, s)
		im, err := runImport(t, s, data, importOpts(l.ID, models.ImportSkip))
		if err != nil {
			t.Fatal(err)
		}
		if counts(im) != [5]int64{5, 1, 0, 4, 0} {
			t.Fatalf("skip counts (read, inserted, updated, skipped, failed) = %v, want [5 1 0 4 0]", counts(im))
		}
		sub, _ := s.Subscriber(ctx, old)
		if sub.Name != "Old Name" || sub.Attributes["city"] != "Oslo" {
			t.Errorf("skip changed old: %+v", sub)
		}
		if got := consentCount(t, s) - consentsBefore; got != 1 {
			t.Errorf("skip wrote %d consent rows, want 1 (the new subscriber)", got)
		}

		// Update: names and attributes from the file, joined or confirmed on
		// the list; the one who unsubscribed stays unsubscribed.
		consentsBefore = consentCount(t, s)
		im, err = runImport(t, s, data, importOpts(l.ID, models.ImportUpdate))
		if err != nil {
			t.Fatal(err)
		}
		if counts(im) != [5]int64{5, 0, 2, 2, 1} {
			t.Fatalf("update counts = %v, want [5 0 2 2 1] (old+pending updated; same+new unchanged; gone refused)", counts(im))
		}
		sub, _ = s.Subscriber(ctx, old)
		if sub.Name != "New Name" || sub.Attributes["city"] != "Lyon" || sub.Attributes["plan"] != "free" {
			t.Errorf("update of old = %+v, want new name, city Lyon, plan kept", sub)
		}
		status := func(id int64) string {
			subs, err := s.SubscriptionsOf(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			for _, x := range subs {
				if x.ListID == l.ID {
					return x.Status
				}
			}
			return ""
		}
		if got := status(old); got != models.SubConfirmed {
			t.Errorf("old on list = %q, want confirmed", got)
		}
		if got := status(pending); got != models.SubConfirmed {
			t.Errorf("pending on list = %q, want confirmed", got)
		}
		if got := status(gone); got != models.SubUnsubscribed {
			t.Errorf("gone on list = %q, want still unsubscribed", got)
		}
		if p, _ := s.Subscriber(ctx, pending); p.Name != "P" {
			t.Errorf("empty name cell overwrote the name: %q", p.Name)
		}
		if sm, _ := s.Subscriber(ctx, same); sm.Attributes["city"] != "Rome" {
			t.Errorf("same = %+v", sm)
		}
		if got := consentCount(t, s) - consentsBefore; got != 2 {
			t.Errorf("update wrote %d consent rows, want 2 (old joined, pending confirmed)", got)
		}
		rep := errorReport(t, s, im.ID)
		if len(rep) != 1 || rep[0][0] != "4" || !strings.Contains(rep[0][2], "unsubscribed") {
			t.Errorf("error report = %v, want line 4 unsubscribed", rep)
		}
		list, _ := s.List(ctx, l.ID)
		if list.Confirmed != 4 || list.Unsubscribed != 1 || list.Unconfirmed != 0 {
			t.Errorf("list counts = %d/%d/%d, want 4 confirmed, 1 unsubscribed", list.Confirmed, list.Unconfirmed, list.Unsubscribed)
		}
		if brk, _, err := s.VerifyConsents(ctx); brk != nil || err != nil {
			t.Errorf("VerifyConsents() = %+v, %v", brk, err)
		}
	})
}

func consentCount(t *testing.T, s *models.Store) int64 {
	t.Helper()
	var n int64
	if err := s.DB().Raw("SELECT count(*) FROM consents").Scan(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

func TestImportBadRowsKeepGoodOnes(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		l := newList(t, s, "News")
		blocked := &models.Subscriber{Email: "blocked@example.com"}
		if err := s.CreateSubscriber(ctx, blocked, nil, models.Evidence{Source: models.SourceAdmin}); err != nil {
			t.Fatal(err)
		}
		if err := s.SetBlocklisted(ctx, blocked.ID, true, models.Evidence{Source: models.SourceAdmin}); err != nil {
			t.Fatal(err)
		}
		if err := s.AddSuppression(ctx, "bounced@example.com", models.SuppressHardBounce, ""); err != nil {
			t.Fatal(err)
		}
		if err := s.AddSuppression(ctx, "@spamtrap.example", models.SuppressManual, ""); err != nil {
			t.Fatal(err)
		}
		lines := []string{
			"email,name,city",
			"good1@example.com,One,Lyon",         // 2
			"not-an-address,Two,Lyon",            // 3 invalid
			"good2@example.com,Two,Lyon",         // 4
			"GOOD1@example.com,Dup,Lyon",         // 5 duplicate of line 2
			"blocked@example.com,B,Lyon",         // 6 blocklisted
			"bounced@example.com,S,Lyon",         // 7 suppressed address
			"x@spamtrap.example,S,Lyon",          // 8 suppressed domain
			"short@example.com,Short",            // 9 too few columns
			"long@example.com,L,Lyon,extra",      // 10 too many columns
			"latin@example.com,Jos\xe9,Lyon",     // 11 not UTF-8
			`quote@example.com,Bad "quote",Lyon`, // 12 bare quote
			",Nobody,Lyon",                       // 13 no address
			",,",                                 // blank: ignored
			"good3@example.com,Three,Lyon",       // 15
			"'=formula@example.com,Quoted,Lyon",  // 16 exported formula guard
		}
		data := strings.Join(lines, "\n") + "\n"
		im, err := runImport(t, s, data, importOpts(l.ID, models.ImportUpdate))
		if err != nil {
			t.Fatalf("RunImport() = %v", err)
		}
		if im.Status != models.ImportFinished || counts(im) != [5]int64{14, 4, 0, 0, 10} {
			t.Fatalf("import = %s %v, want finished [14 4 0 0 10]", im.Status, counts(im))
		}
		for _, e := range []string{"good1@example.com", "good2@example.com", "good3@example.com", "=formula@example.com"} {
			if _, err := s.SubscriberByEmail(ctx, e); err != nil {
				t.Errorf("good row %s lost: %v", e, err)
			}
		}
		for _, e := range []string{"bounced@example.com", "x@spamtrap.example", "short@example.com", "long@example.com", "latin@example.com", "quote@example.com"} {
			if _, err := s.SubscriberByEmail(ctx, e); !errors.Is(err, models.ErrNotFound) {
				t.Errorf("bad row %s stored (err %v)", e, err)
			}
		}
		want := map[string]string{
			"3": "valid email", "5": "line 2", "6": "blocklisted", "7": "hard bounce", "8": "domain spamtrap.example",
			"9": "2 columns", "10": "4 columns", "11": "UTF-8", "12": "quote", "13": "no email address",
		}
		rep := errorReport(t, s, im.ID)
		if len(rep) != len(want) {
			t.Errorf("error report has %d rows, want %d: %v", len(rep), len(want), rep)
		}
		for _, r := range rep {
			if w, ok := want[r[0]]; !ok || !strings.Contains(r[2], w) {
				t.Errorf("report line %v, want reason containing %q", r, w)
			}
		}
		if rep[0][1] != "not-an-address" {
			t.Errorf("report email = %q, want the address as written", rep[0][1])
		}
		// The blocked subscriber had no lists, so only the four imports wrote.
		if n := consentCount(t, s); n != 4 {
			t.Errorf("consent rows = %d, want 4", n)
		}
		if brk, _, err := s.VerifyConsents(ctx); brk != nil || err != nil {
			t.Errorf("VerifyConsents() = %+v, %v", brk, err)
		}
	})
}

func TestImportFileProblems(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		l := newList(t, s, "News")
		opts := importOpts(l.ID, models.ImportSkip)

		im, err := runImport(t, s, "email,name,city\na@example.com,A,B\n", func() models.ImportOptions { o := opts; o.EmailColumn = -1; return o }())
		if !errors.Is(err, models.ErrImportOptions) || im.Status != models.ImportFailed || !strings.Contains(im.Message, "email addresses") {
			t.Errorf("no email column: err %v, import %s %q", err, im.Status, im.Message)
		}
		im, err = runImport(t, s, "", opts)
		var ce *models.CSVError
		if !errors.As(err, &ce) || im.Status != models.ImportFailed || im.Message != "The file is empty." {
			t.Errorf("empty file: err %v, import %s %q", err, im.Status, im.Message)
		}
		ctx := context.Background()
		big := &models.Import{Filename: "big.csv"}
		if err := s.CreateImport(ctx, big); err != nil {
			t.Fatal(err)
		}
		err = s.RunImport(ctx, big.ID, strings.NewReader("email\n"), models.MaxImportBytes+1, opts)
		if got, _ := s.Import(ctx, big.ID); !errors.As(err, &ce) || !strings.Contains(got.Message, "largest file") {
			t.Errorf("oversized: err %v, message %q", err, got.Message)
		}
		// Running an import twice is refused.
		if err := s.RunImport(ctx, big.ID, strings.NewReader("email\n"), 6, opts); !errors.Is(err, models.ErrConflict) {
			t.Errorf("second run = %v, want ErrConflict", err)
		}
	})
}

func TestReadCSVHeader(t *testing.T) {
	tests := []struct {
		name, data string
		want       []string
		wantErr    string
	}{
		{"comma", "Email,Name\na@example.com,A\n", []string{"Email", "Name"}, ""},
		{"semicolon", "email;first name;city\na@example.com;A;Lyon\n", []string{"email", "first name", "city"}, ""},
		{"tab", "email\tname\na@example.com\tA\n", []string{"email", "name"}, ""},
		{"bom and CRLF", "\uFEFF email , name \r\na@example.com,A\r\n", []string{"email", "name"}, ""},
		{"one column", "email\na@example.com\n", []string{"email"}, ""},
		{"quoted delimiter", "\"last, first\";email\n\"A, B\";a@example.com\n", []string{"last, first", "email"}, ""},
		{"empty", "", nil, "The file is empty."},
		{"blank", "\n\n  \n", nil, "The file is empty."},
		{"header only", "email,name\n", nil, "no rows below it"},
		{"latin-1", "email,name\na@example.com,Ren\xe9\nb@example.com,Jos\xe9\n", nil, "Line 2: this line and most others are not UTF-8"},
		// One bad row among good ones is the import's to reject, alone.
		{"one bad row", "email,name\na@example.com,A\nb@example.com,Jos\xe9\nc@example.com,C\n", []string{"email", "name"}, ""},
		{"utf-16", "\xff\xfee\x00m\x00", nil, "UTF-16"},
		{"workbook", "PK\x03\x04rest", nil, "workbook"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := models.ReadCSVHeader(strings.NewReader(tt.data))
			if tt.wantErr != "" {
				var ce *models.CSVError
				if !errors.As(err, &ce) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ReadCSVHeader() error = %v, want a CSVError containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Fatalf("ReadCSVHeader() = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestImportOptionsValidate(t *testing.T) {
	o := models.ImportOptions{EmailColumn: 5, NameColumn: -1, AttributeColumns: map[string]int{"": 0, "x": 9}}
	errs := o.Validate(3)
	for _, f := range []string{"list", "mode", "lawful_basis", "source", "email_column", "attributes", "status"} {
		if errs[f] == "" {
			t.Errorf("Validate() has no message for %s: %v", f, errs)
		}
	}
	ok := importOpts(1, models.ImportUpdate)
	if errs := ok.Validate(3); len(errs) != 0 {
		t.Errorf("Validate() = %v, want none", errs)
	}
}

// On PostgreSQL new subscribers are copied straight into their table. An
// address the lookup before the copy did not find but the unique index
// refuses (as one added by someone else meanwhile would be: here a trigger
// turns it into a taken one) fails the copy; the batch is then merged
// through the staging table, which leaves that row out and reports it,
// and the rest of the batch is imported.
func TestImportCopyFallsBackOnTakenAddress(t *testing.T) {
	s := testdb.Postgres(t)
	ctx := context.Background()
	l := newList(t, s, "News")
	if err := s.CreateSubscriber(ctx, &models.Subscriber{Email: "taken@example.com"}, nil, models.Evidence{Source: models.SourceAdmin}); err != nil {
		t.Fatal(err)
	}
	err := s.DB().Exec(`CREATE FUNCTION import_race() RETURNS trigger AS $$
		BEGIN
			IF NEW.email = 'race@example.com' THEN NEW.email := 'taken@example.com'; END IF;
			RETURN NEW;
		END $$ LANGUAGE plpgsql`).Error
	if err == nil {
		err = s.DB().Exec(`CREATE TRIGGER import_race BEFORE INSERT ON subscribers FOR EACH ROW EXECUTE FUNCTION import_race()`).Error
	}
	if err != nil {
		t.Fatal(err)
	}
	data := "email,name,city\na@example.com,A,Lyon\nrace@example.com,R,Lyon\nc@example.com,C,Lyon\n"
	im, err := runImport(t, s, data, importOpts(l.ID, models.ImportUpdate))
	if err != nil {
		t.Fatalf("RunImport() = %v", err)
	}
	if got, want := counts(im), [5]int64{3, 2, 0, 0, 1}; got != want || im.Status != models.ImportFinished {
		t.Fatalf("import %s, counts (read, inserted, updated, skipped, failed) = %v, want finished, %v", im.Status, got, want)
	}
	rep := errorReport(t, s, im.ID)
	if len(rep) != 1 || strings.Join(rep[0], ",") != "3,race@example.com,An existing subscriber has this address (written with different letter case)." {
		t.Errorf("error report = %q", rep)
	}
	for _, e := range []string{"a@example.com", "c@example.com"} {
		sub, err := s.SubscriberByEmail(ctx, e)
		if err != nil {
			t.Fatalf("%s lost with the failed copy: %v", e, err)
		}
		if sub.Name == "" || sub.Attributes["city"] != "Lyon" {
			t.Errorf("%s imported as %+v, want its name and city", e, sub)
		}
	}
	var members int64
	if err := s.DB().Raw(`SELECT count(*) FROM subscriptions WHERE list_id = ?`, l.ID).Scan(&members).Error; err != nil || members != 2 {
		t.Errorf("list members = %d (%v), want 2", members, err)
	}
	if brk, _, err := s.VerifyConsents(ctx); brk != nil || err != nil {
		t.Errorf("VerifyConsents() = %+v, %v", brk, err)
	}
}
