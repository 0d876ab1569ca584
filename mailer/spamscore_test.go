package mailer_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/herald-mail/herald/internal/spamdtest"
	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/mailer"
	"github.com/herald-mail/herald/mailer/defaults"
	"github.com/herald-mail/herald/mailer/spamc"
	"github.com/herald-mail/herald/models"
)

// spamCheck runs the checklist of campaign id and returns its content
// score check.
func spamCheck(t *testing.T, s *models.Store, e *mailer.Engine, id int64) mailer.Check {
	t.Helper()
	checks, err := (&mailer.Readiness{Store: s, DefaultCaptures: true, Spam: e.SpamScoring()}).CampaignChecks(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range checks {
		if c.ID == "campaign.spam_score" {
			return c
		}
	}
	t.Fatalf("no campaign.spam_score in %+v", checks)
	return mailer.Check{}
}

// spamEngine is a running engine that scores with a spamd of its own, on
// a new database with an organisation, a signing domain and a list of
// one subscriber.
func spamEngine(t *testing.T) (*models.Store, *mailer.Engine, int64, *models.SendingDomain) {
	t.Helper()
	ctx := context.Background()
	addr := spamdtest.Start(t)
	s := testdb.SQLite(t)
	for k, v := range map[string]string{models.SettingOrgName: "Example Books", models.SettingPostalAddress: "1 Example Street, London"} {
		if err := s.SetSetting(ctx, k, v); err != nil {
			t.Fatal(err)
		}
	}
	secret := "spam-score-test-secret"
	sd, err := s.CreateSendingDomain(ctx, "books.example", secret, models.SendingDomainOptions{})
	if err != nil {
		t.Fatal(err)
	}
	list := seed(t, s, 1, []string{"example.org"})
	e := mailer.New(mailer.Options{Logger: testLogger(t), Secrets: []string{secret}, RootURL: "https://news.books.example",
		Spamd: &spamc.Client{Addr: addr}}, s)
	runEngine(t, e)
	// SampleMessageOf answers "not started" until the engine has read its
	// setup. (SampleMessage of a campaign that does not exist answered
	// "not found" before looking, which let the tests race the start.)
	waitFor(t, 10e9, "engine setup", func() bool {
		_, err := e.SampleMessageOf(ctx, &models.Campaign{})
		return !strings.Contains(fmt.Sprint(err), "not started")
	})
	return s, e, list, sd
}

// TestDefaultTemplateSpamScore shows the default newsletter, signed and
// tracked as a subscriber gets it, to a real spamd: with tracking on it
// must score under 1.0 (the open pixel in short mail once drew
// SpamAssassin's image-only rules), and the checklist lists the rules.
func TestDefaultTemplateSpamScore(t *testing.T) {
	ctx := context.Background()
	s, e, list, sd := spamEngine(t)

	scores := map[bool]float64{}
	for _, tracked := range []bool{true, false} {
		id := campaign(t, s, list, "news@books.example", &sd.ID, func(c *models.Campaign) {
			c.Subject, c.HTML, c.TrackOpens, c.TrackClicks = defaults.NewsletterSubject, defaults.NewsletterHTML, tracked, tracked
		})
		msg, err := e.SampleMessage(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(msg), "DKIM-Signature:") || !strings.Contains(string(msg), "List-Unsubscribe-Post:") {
			t.Errorf("the sample message is not signed or lacks the list headers:\n%s", msg)
		}
		if got := strings.Contains(string(msg), "/t/o/"); got != tracked {
			t.Errorf("tracked %v: open pixel present = %v", tracked, got)
		}
		c := spamCheck(t, s, e, id)
		if c.Score == nil {
			t.Fatalf("tracked %v: no score: %+v", tracked, c)
		}
		scores[tracked] = *c.Score
		var rules []string
		for _, r := range c.Rules {
			rules = append(rules, fmt.Sprintf("%s=%.1f", r.Name, r.Score))
		}
		t.Logf("default template, tracking %v: score %.1f, rules %s", tracked, *c.Score, strings.Join(rules, " "))
		if len(c.Rules) == 0 || !strings.Contains(c.Detail, "Score") {
			t.Errorf("tracked %v: check without rules or detail: %+v", tracked, c)
		}
	}
	if scores[true] >= 1.0 {
		t.Errorf("the default template with tracking scores %.1f, want under 1.0", scores[true])
	}
}

// TestShortMailSpamScore: a short message's open pixel does not make it
// image-only mail, while a short message with a picture of its own is
// still scored as one, and Herald's own check says so first.
func TestShortMailSpamScore(t *testing.T) {
	ctx := context.Background()
	s, e, list, sd := spamEngine(t)

	const short = `<html><body><p>Hello {{.Subscriber.Name}}, our shop opens on Monday at nine. See <a href="https://books.example/hours">the opening hours</a>.</p>%s
<p><a href="{{.UnsubscribeURL}}">Unsubscribe</a> · {{.Org.Name}} · {{.Org.PostalAddress}}</p></body></html>`
	for _, tc := range []struct {
		name      string
		img       string
		wantImage bool // an HTML_IMAGE_ONLY rule hits, and campaign.image_only warns
	}{
		{"pixel only", "", false},
		{"own picture", `<p><img src="https://books.example/shop.jpg" width="600" height="400" alt="The shop"></p>`, true},
	} {
		id := campaign(t, s, list, "news@books.example", &sd.ID, func(c *models.Campaign) {
			c.Subject, c.HTML, c.TrackOpens, c.TrackClicks = "Opening hours", fmt.Sprintf(short, tc.img), true, true
		})
		msg, err := e.SampleMessage(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(msg), "/t/o/") {
			t.Errorf("%s: no open pixel in the message", tc.name)
		}
		checks, err := (&mailer.Readiness{Store: s, DefaultCaptures: true, Spam: e.SpamScoring()}).CampaignChecks(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		var score, image mailer.Check
		for _, c := range checks {
			switch c.ID {
			case "campaign.spam_score":
				score = c
			case "campaign.image_only":
				image = c
			}
		}
		if score.Score == nil {
			t.Fatalf("%s: no score: %+v", tc.name, score)
		}
		hit := false
		var rules []string
		for _, r := range score.Rules {
			rules = append(rules, fmt.Sprintf("%s=%.1f", r.Name, r.Score))
			if strings.HasPrefix(r.Name, "HTML_IMAGE_ONLY_") {
				hit = true
				if r.Hint == "" {
					t.Errorf("%s: no hint for %s", tc.name, r.Name)
				}
			}
		}
		t.Logf("short mail, %s, tracking on: score %.1f, rules %s", tc.name, *score.Score, strings.Join(rules, " "))
		if hit != tc.wantImage {
			t.Errorf("%s: image-only rule hit = %v, want %v", tc.name, hit, tc.wantImage)
		}
		if image.OK == tc.wantImage {
			t.Errorf("%s: campaign.image_only OK = %v (%s), want %v", tc.name, image.OK, image.Detail, !tc.wantImage)
		}
		if !tc.wantImage && *score.Score >= 1.0 {
			t.Errorf("%s: score %.1f, want under 1.0", tc.name, *score.Score)
		}
	}
}
