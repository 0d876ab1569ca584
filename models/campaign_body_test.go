package models_test

import (
	"context"
	"io/fs"
	"testing"

	"github.com/pressly/goose/v3"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/migrations"
	"github.com/herald-mail/herald/models"
)

// A campaign starts from a copy of its template's content; editing one
// campaign's content changes neither the template nor another campaign,
// and a clone takes the campaign's own content.
func TestCampaignOwnsItsBody(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		tpl := &models.Template{Kind: models.TemplateCampaign, Name: "Base", Subject: "News for {{.Subscriber.Name}}",
			HTML: "<p>Write your message here.</p>", Text: ""}
		if err := s.CreateTemplate(ctx, tpl); err != nil {
			t.Fatal(err)
		}
		l := newList(t, s, "L")
		a := &models.Campaign{Name: "A", TemplateID: &tpl.ID, FromEmail: "news@example.com"}
		b := &models.Campaign{Name: "B", TemplateID: &tpl.ID, FromEmail: "news@example.com", Subject: "Own subject"}
		for _, c := range []*models.Campaign{a, b} {
			if err := s.CreateCampaign(ctx, c, []int64{l.ID}); err != nil {
				t.Fatal(err)
			}
		}
		a, _ = s.Campaign(ctx, a.ID)
		b, _ = s.Campaign(ctx, b.ID)
		if a.Subject != tpl.Subject || a.HTML != tpl.HTML || a.Text != "" || a.Format != models.FormatHTML {
			t.Errorf("A = %q %q %q %q, want the template's content", a.Subject, a.HTML, a.Text, a.Format)
		}
		if b.Subject != "Own subject" || b.HTML != tpl.HTML {
			t.Errorf("B = %q %q, want its subject and the template's body", b.Subject, b.HTML)
		}

		a.Subject, a.Preheader, a.HTML, a.Text, a.Format = "Spring", "Fresh news", "# Spring\n\nBuds.", "", models.FormatMarkdown
		if errs := a.Validate(); len(errs) > 0 {
			t.Fatalf("Validate() = %v", errs)
		}
		if err := s.UpdateCampaign(ctx, a, []int64{l.ID}); err != nil {
			t.Fatal(err)
		}
		got, _ := s.Campaign(ctx, a.ID)
		if got.Subject != "Spring" || got.Preheader != "Fresh news" || got.HTML != "# Spring\n\nBuds." || got.Format != models.FormatMarkdown {
			t.Errorf("after update A = %+v", got)
		}
		tpl2, _ := s.Template(ctx, tpl.ID)
		if tpl2.Subject != tpl.Subject || tpl2.HTML != tpl.HTML || tpl2.Text != tpl.Text {
			t.Errorf("template changed: %+v", tpl2)
		}
		b2, _ := s.Campaign(ctx, b.ID)
		if b2.Subject != b.Subject || b2.HTML != b.HTML || b2.Preheader != "" || b2.Format != models.FormatHTML {
			t.Errorf("campaign B changed: %+v", b2)
		}

		cl, err := s.CloneCampaign(ctx, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		if cl.HTML != got.HTML || cl.Preheader != got.Preheader || cl.Format != got.Format || cl.Subject != got.Subject {
			t.Errorf("clone = %+v, want A's content", cl)
		}

		list, err := s.Campaigns(ctx, 0, 10)
		if err != nil || len(list) != 3 {
			t.Fatalf("Campaigns() = %d, %v", len(list), err)
		}
		for _, c := range list {
			if c.HTML != "" || c.Subject == "" {
				t.Errorf("Campaigns() row %d: body %q, subject %q; want no body, the subject", c.ID, c.HTML, c.Subject)
			}
		}

		bad := *got
		bad.Format = "word"
		bad.HTML = ""
		if errs := bad.Validate(); errs["format"] == "" || errs["html"] == "" {
			t.Errorf("Validate(bad format, no body) = %v", errs)
		}
	})
}

// Migration 36 gives campaigns made before it their template's content, so
// they send what they sent before.
func TestMigrationCopiesTemplateContent(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		tpl := &models.Template{Kind: models.TemplateCampaign, Name: "Old", Subject: "Old subject", HTML: "<p>Old body</p>", Text: "Old text"}
		if err := s.CreateTemplate(ctx, tpl); err != nil {
			t.Fatal(err)
		}
		p := migrator(t, s)
		if _, err := p.DownTo(ctx, 35); err != nil {
			t.Fatal(err)
		}
		// Two campaigns as they were: one overriding the subject, one not.
		for _, subj := range []string{"", "Kept"} {
			if err := s.DB().Exec(`INSERT INTO campaigns (name, template_id, subject, from_email, status, created_at, updated_at)
				VALUES (?, ?, ?, 'news@example.com', 'draft', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)`, "c"+subj, tpl.ID, subj).Error; err != nil {
				t.Fatal(err)
			}
		}
		if _, err := p.Up(ctx); err != nil {
			t.Fatal(err)
		}
		cs, err := s.Campaigns(ctx, 0, 10)
		if err != nil || len(cs) != 2 {
			t.Fatalf("Campaigns() = %d, %v", len(cs), err)
		}
		for _, c := range cs {
			c, err := s.Campaign(ctx, c.ID) // the list leaves the bodies out
			if err != nil {
				t.Fatal(err)
			}
			want := "Old subject"
			if c.Name == "cKept" {
				want = "Kept"
			}
			if c.Subject != want || c.HTML != tpl.HTML || c.Text != tpl.Text || c.Format != models.FormatHTML || c.Preheader != "" {
				t.Errorf("%s after migration = %q %q %q %q", c.Name, c.Subject, c.HTML, c.Text, c.Format)
			}
		}
	})
}

// migrator returns a goose provider over s's database and its dialect's
// migrations, for tests that go down and up again.
func migrator(t *testing.T, s *models.Store) *goose.Provider {
	t.Helper()
	sqlDB, err := s.DB().DB()
	if err != nil {
		t.Fatal(err)
	}
	dialect, gd := "sqlite", goose.DialectSQLite3
	if s.Dialect() == models.Postgres {
		dialect, gd = "postgres", goose.DialectPostgres
	}
	dir, _ := fs.Sub(migrations.FS, dialect)
	p, err := goose.NewProvider(gd, sqlDB, dir)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
