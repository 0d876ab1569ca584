package models_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

// segmentFixture is a handful of people who differ in every way a segment
// condition can test.
type segmentFixture struct {
	ids               map[string]int64
	listA, listB, exc int64
}

func seedSegmentFixture(t *testing.T, s *models.Store) segmentFixture {
	t.Helper()
	ctx := context.Background()
	f := segmentFixture{ids: map[string]int64{}}
	for _, l := range []struct {
		name, optin string
		id          *int64
	}{{"A", models.OptinSingle, &f.listA}, {"B", models.OptinDouble, &f.listB}, {"Exclude", models.OptinSingle, &f.exc}} {
		list := &models.List{Name: l.name, Optin: l.optin, Visibility: models.ListPrivate}
		if err := s.CreateList(ctx, list); err != nil {
			t.Fatal(err)
		}
		*l.id = list.ID
	}
	withPage := models.Evidence{Source: models.SourceForm, Page: "https://example.com/join", Actor: "subscriber"}
	imported := models.Evidence{Source: models.SourceImport, LawfulBasis: models.BasisLegitimate, Note: "customers 2023", Actor: "admin"}
	bare := models.Evidence{Source: models.SourceAdmin, Actor: "admin"} // no evidence: lacks a basis
	people := []struct {
		email, attrs string
		lists        map[int64]string
		ev           models.Evidence
	}{
		{"paris@gmail.com", `{"city":"Paris","age":34,"vip":true,"joined":"2024-03-10"}`, map[int64]string{f.listA: models.SubConfirmed}, withPage},
		{"lyon@yahoo.com", `{"city":"Lyon","age":"19","joined":"2023-12-01T10:00:00Z","code":"50%_off"}`, map[int64]string{f.listA: models.SubConfirmed}, imported},
		{"paris2@corp.example", `{"city":"paris","age":70.5}`, map[int64]string{f.listB: models.SubUnconfirmed}, bare},
		{"gone@gmail.com", `{"city":""}`, map[int64]string{f.listA: models.SubConfirmed}, withPage},
		{"berlin@outlook.com", `{"city":"Berlin","vip":false,"age":"old"}`, map[int64]string{f.listA: models.SubConfirmed, f.exc: models.SubConfirmed}, bare},
	}
	for _, p := range people {
		a, err := models.ParseAttributes(p.attrs)
		if err != nil {
			t.Fatal(err)
		}
		sub := &models.Subscriber{Email: p.email, Attributes: a}
		if err := s.CreateSubscriber(ctx, sub, p.lists, p.ev); err != nil {
			t.Fatal(err)
		}
		f.ids[strings.Split(p.email, "@")[0]] = sub.ID
	}
	if err := s.SetSubscriptions(ctx, f.ids["gone"], map[int64]string{f.listA: models.SubUnsubscribed}, bare); err != nil {
		t.Fatal(err)
	}
	db := s.DB()
	old := time.Date(2020, 1, 15, 12, 0, 0, 0, time.UTC)
	if err := db.Exec("UPDATE subscribers SET created_at = ? WHERE id = ?", old, f.ids["lyon"]).Error; err != nil {
		t.Fatal(err)
	}
	var cs []int64
	for _, n := range []string{"Earlier 1", "Earlier 2", "Earlier 3"} {
		c := &models.Campaign{Name: n, FromEmail: "news@example.com"}
		if err := s.CreateCampaign(ctx, c, []int64{f.listA}); err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c.ID)
	}
	c := struct{ ID int64 }{cs[0]}
	now := time.Now().UTC()
	// paris received 3 campaigns, lyon 1, paris2 none sent (one queued).
	seen := map[string]int{}
	for _, d := range []struct {
		who, status string
	}{{"paris", "sent"}, {"paris", "sent"}, {"paris", "sent"}, {"lyon", "sent"}, {"paris2", "queued"}, {"berlin", "sent"}} {
		if err := db.Exec(`INSERT INTO deliveries (campaign_id, subscriber_id, domain, status, attempts, next_attempt_at, mx_host, created_at)
			VALUES (?, ?, 'x', ?, 1, ?, ?, ?)`, cs[seen[d.who]], f.ids[d.who], d.status, now, "mx.example.net", now).Error; err != nil {
			t.Fatal(err)
		}
		seen[d.who]++
	}
	// paris2@corp.example's mail went to a Microsoft-hosted MX.
	if err := db.Exec("UPDATE deliveries SET mx_host = 'corp-example.mail.protection.outlook.com' WHERE subscriber_id = ?", f.ids["paris2"]).Error; err != nil {
		t.Fatal(err)
	}
	evs := []models.Event{
		{DeliveryID: 1, CampaignID: c.ID, SubscriberID: f.ids["paris"], Kind: "open", CreatedAt: now.Add(-48 * time.Hour)},
		{DeliveryID: 2, CampaignID: c.ID, SubscriberID: f.ids["paris"], Kind: "open", CreatedAt: now.Add(-24 * time.Hour)},
		{DeliveryID: 1, CampaignID: c.ID, SubscriberID: f.ids["paris"], Kind: "click", Machine: true, CreatedAt: now},
		{DeliveryID: 4, CampaignID: c.ID, SubscriberID: f.ids["lyon"], Kind: "click", CreatedAt: now.Add(-40 * 24 * time.Hour)},
		{DeliveryID: 4, CampaignID: c.ID, SubscriberID: f.ids["lyon"], Kind: "open", CreatedAt: now.Add(-40 * 24 * time.Hour)},
		{DeliveryID: 6, CampaignID: c.ID, SubscriberID: f.ids["berlin"], Kind: "open", Machine: true, CreatedAt: now},
	}
	if err := s.InsertEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	for _, b := range []struct {
		who, kind string
		at        time.Time
	}{{"lyon", "hard", now.Add(-100 * 24 * time.Hour)}, {"berlin", "complaint", now}, {"paris2", "soft", now}} {
		if err := db.Exec("INSERT INTO bounces (subscriber_id, kind, created_at) VALUES (?, ?, ?)", f.ids[b.who], b.kind, b.at).Error; err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func one(c models.Condition) models.Conditions {
	return models.Conditions{Groups: []models.ConditionGroup{{Conditions: []models.Condition{c}}}}
}

func segmentNames(t *testing.T, s *models.Store, f segmentFixture, c models.Conditions) []string {
	t.Helper()
	ctx := context.Background()
	subs, err := s.PreviewSegment(ctx, c, 100)
	if err != nil {
		t.Fatal(err)
	}
	n, err := s.CountSegment(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(len(subs)) {
		t.Errorf("count %d, preview %d people", n, len(subs))
	}

	var out []string
	for _, sub := range subs {
		out = append(out, strings.Split(sub.Email, "@")[0])
	}
	slices.Sort(out)
	return out
}

// Every field and operator, on both databases, against people chosen so
// that each case has people on both sides.
func TestSegmentConditions(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		f := seedSegmentFixture(t, s)
		attr := func(key, op, v, v2 string) models.Condition {
			return models.Condition{Field: "attribute", Key: key, Op: op, Value: v, Value2: v2}
		}
		cases := []struct {
			name string
			c    models.Conditions
			want string
		}{
			{"list in", one(models.Condition{Field: "list", Op: "in", ListID: f.listA}), "berlin lyon paris"},
			{"list in status", one(models.Condition{Field: "list", Op: "in", ListID: f.listA, Status: "unsubscribed"}), "gone"},
			{"list not in", one(models.Condition{Field: "list", Op: "not_in", ListID: f.listA}), "gone paris2"},
			{"attr equals, any case", one(attr("city", "equals", "PARIS", "")), "paris paris2"},
			{"attr not equals (missing counts)", one(attr("city", "not_equals", "paris", "")), "berlin gone lyon"},
			{"attr equals boolean", one(attr("vip", "equals", "true", "")), "paris"},
			{"attr equals number", one(attr("age", "equals", "34", "")), "paris"},
			{"attr contains", one(attr("city", "contains", "ri", "")), "paris paris2"},
			{"attr contains literal %_", one(attr("code", "contains", "%_", "")), "lyon"},
			{"attr starts with", one(attr("city", "starts_with", "l", "")), "lyon"},
			{"attr greater than (numbers and numeric text)", one(attr("age", "greater_than", "18", "")), "lyon paris paris2"},
			{"attr less than", one(attr("age", "less_than", "34.5", "")), "lyon paris"},
			{"attr between", one(attr("age", "between", "20", "70.5")), "paris paris2"},
			{"attr before", one(attr("joined", "before", "2024-01-01", "")), "lyon"},
			{"attr after", one(attr("joined", "after", "2023-12-01", "")), "paris"},
			{"attr between dates", one(attr("joined", "between_dates", "2023-12-01", "2024-03-10")), "lyon paris"},
			{"attr is set (empty is not)", one(attr("city", "is_set", "", "")), "berlin lyon paris paris2"},
			{"attr not set", one(attr("vip", "not_set", "", "")), "gone lyon paris2"},
			{"email domain", one(models.Condition{Field: "email_domain", Op: "equals", Value: "GMAIL.com"}), "gone paris"},
			{"email domain not", one(models.Condition{Field: "email_domain", Op: "not_equals", Value: "gmail.com"}), "berlin lyon paris2"},
			{"provider by domain", one(models.Condition{Field: "provider", Op: "equals", Value: "google"}), "gone paris"},
			{"provider by MX", one(models.Condition{Field: "provider", Op: "equals", Value: "microsoft"}), "berlin paris2"},
			{"provider other", one(models.Condition{Field: "provider", Op: "equals", Value: "other"}), ""},
			{"provider not", one(models.Condition{Field: "provider", Op: "not_equals", Value: "yahoo"}), "berlin gone paris paris2"},
			{"signup before", one(models.Condition{Field: "signup_date", Op: "before", Value: "2020-01-16"}), "lyon"},
			{"signup after", one(models.Condition{Field: "signup_date", Op: "after", Value: "2020-01-15"}), "berlin gone paris paris2"},
			{"signup between", one(models.Condition{Field: "signup_date", Op: "between_dates", Value: "2020-01-15", Value2: "2020-01-15"}), "lyon"},
			{"signup in last days", one(models.Condition{Field: "signup_date", Op: "in_last_days", Days: 7}), "berlin gone paris paris2"},
			{"signup source", one(models.Condition{Field: "signup_source", Op: "equals", Value: "import"}), "lyon"},
			{"signup source not", one(models.Condition{Field: "signup_source", Op: "not_equals", Value: "form"}), "berlin lyon paris2"},
			{"basis lacks", one(models.Condition{Field: "lawful_basis", Op: "lacks"}), "berlin paris2"},
			{"basis lacks on list", one(models.Condition{Field: "lawful_basis", Op: "lacks", ListID: f.listB}), "paris2"},
			{"basis has", one(models.Condition{Field: "lawful_basis", Op: "has"}), "lyon paris"},
			{"basis has on list", one(models.Condition{Field: "lawful_basis", Op: "has", ListID: f.listA}), "lyon paris"},
			{"basis is", one(models.Condition{Field: "lawful_basis", Op: "is", Value: "legitimate_interest"}), "lyon"},
			{"opened in last days (people only)", one(models.Condition{Field: "opened", Op: "in_last_days", Days: 7}), "paris"},
			{"opened not in last days", one(models.Condition{Field: "opened", Op: "not_in_last_days", Days: 7}), "berlin gone lyon paris2"},
			{"opened ever", one(models.Condition{Field: "opened", Op: "ever"}), "lyon paris"},
			{"opened never (machine opens left out)", one(models.Condition{Field: "opened", Op: "never"}), "berlin gone paris2"},
			{"clicked in last days (scanner left out)", one(models.Condition{Field: "clicked", Op: "in_last_days", Days: 30}), ""},
			{"clicked in last 60 days", one(models.Condition{Field: "clicked", Op: "in_last_days", Days: 60}), "lyon"},
			{"clicked never", one(models.Condition{Field: "clicked", Op: "never"}), "berlin gone paris paris2"},
			{"received at least", one(models.Condition{Field: "received", Op: "at_least", Count: 2}), "paris"},
			{"received fewer than", one(models.Condition{Field: "received", Op: "fewer_than", Count: 1}), "gone paris2"},
			{"bounced ever", one(models.Condition{Field: "bounced", Op: "ever"}), "lyon paris2"},
			{"bounced hard", one(models.Condition{Field: "bounced", Op: "ever", Value: "hard"}), "lyon"},
			{"bounced in last days", one(models.Condition{Field: "bounced", Op: "in_last_days", Days: 30}), "paris2"},
			{"bounced never", one(models.Condition{Field: "bounced", Op: "never"}), "berlin gone paris"},
			{"complained ever", one(models.Condition{Field: "complained", Op: "ever"}), "berlin"},
			{"complained never", one(models.Condition{Field: "complained", Op: "never"}), "gone lyon paris paris2"},
			{"AND in a group", models.Conditions{Groups: []models.ConditionGroup{{Match: "all", Conditions: []models.Condition{
				attr("city", "equals", "paris", ""), {Field: "list", Op: "in", ListID: f.listA}}}}}, "paris"},
			{"OR in a group", models.Conditions{Groups: []models.ConditionGroup{{Match: "any", Conditions: []models.Condition{
				attr("city", "equals", "berlin", ""), {Field: "received", Op: "at_least", Count: 3}}}}}, "berlin paris"},
			// Attribute tests are read together, apart from the others
			// (attrScope): negated ones and numbers among them.
			{"OR of attributes and others", models.Conditions{Groups: []models.ConditionGroup{{Match: "any", Conditions: []models.Condition{
				attr("vip", "not_set", "", ""), {Field: "bounced", Op: "ever", Value: "soft"}, attr("city", "equals", "berlin", "")}}}}, "berlin gone lyon paris2"},
			{"AND of attributes and others", models.Conditions{Groups: []models.ConditionGroup{{Match: "all", Conditions: []models.Condition{
				attr("age", "greater_than", "18", ""), {Field: "list", Op: "in", ListID: f.listA}, attr("city", "not_equals", "paris", "")}}}}, "lyon"},
			{"groups ANDed", models.Conditions{Match: "all", Groups: []models.ConditionGroup{
				{Match: "any", Conditions: []models.Condition{attr("city", "equals", "paris", ""), attr("city", "equals", "lyon", "")}},
				{Conditions: []models.Condition{{Field: "opened", Op: "ever"}}}}}, "lyon paris"},
			{"groups ORed", models.Conditions{Match: "any", Groups: []models.ConditionGroup{
				{Conditions: []models.Condition{attr("city", "equals", "berlin", "")}},
				{Conditions: []models.Condition{{Field: "bounced", Op: "ever", Value: "soft"}}}}}, "berlin paris2"},
		}
		for _, tc := range cases {
			got := strings.Join(segmentNames(t, s, f, tc.c), " ")
			if got != tc.want {
				t.Errorf("%s: got [%s], want [%s]", tc.name, got, tc.want)
			}
		}
	})
}

// Bad conditions are refused with a message that says where and what.
func TestSegmentConditionErrors(t *testing.T) {
	s := testdb.SQLite(t)
	ctx := context.Background()
	for _, tc := range []struct {
		c    models.Condition
		want string
	}{
		{models.Condition{Field: "shoe_size", Op: "equals"}, `field "shoe_size" is unknown`},
		{models.Condition{Field: "attribute", Op: "like", Key: "city"}, "attribute takes the operators"},
		{models.Condition{Field: "attribute", Op: "equals", Value: "x"}, "name the attribute"},
		{models.Condition{Field: "attribute", Op: "equals", Key: `a"b`, Value: "x"}, "no quote"},
		{models.Condition{Field: "attribute", Op: "greater_than", Key: "age", Value: "ten"}, `"ten" is not a number`},
		{models.Condition{Field: "attribute", Op: "before", Key: "d", Value: "10/03/2024"}, "write it as YYYY-MM-DD"},
		{models.Condition{Field: "signup_date", Op: "between_dates", Value: "2024-02-01", Value2: "2024-01-01"}, "the last day comes before the first"},
		{models.Condition{Field: "opened", Op: "in_last_days"}, "give a number of days"},
		{models.Condition{Field: "list", Op: "in", ListID: 999}, "list 999 does not exist"},
		{models.Condition{Field: "provider", Op: "equals", Value: "aol-ish"}, `provider "aol-ish" is unknown`},
		{models.Condition{Field: "lawful_basis", Op: "is", Value: "whim"}, "basis must be one of"},
	} {
		_, err := s.CountSegment(ctx, one(tc.c))
		var ve *models.ValidationError
		if !errors.As(err, &ve) {
			t.Errorf("%+v: want a validation error, got %v", tc.c, err)
			continue
		}
		if msg := ve.Fields["conditions"]; !strings.Contains(msg, tc.want) || !strings.HasPrefix(msg, "Group 1, condition 1: ") {
			t.Errorf("%+v: message %q, want it to contain %q", tc.c, msg, tc.want)
		}
	}
	if _, err := models.ParseConditions([]byte(`{"groups":[{"conditions":[{"field":"list","op":"in","list":3}]}]}`)); err == nil ||
		!strings.Contains(err.Error(), `unknown field "list"`) {
		t.Errorf("unknown member: %v", err)
	}
	seg := &models.Segment{Name: " ", Conditions: models.Conditions{}}
	err := s.CreateSegment(ctx, seg)
	var ve *models.ValidationError
	if !errors.As(err, &ve) || ve.Fields["name"] == "" || ve.Fields["conditions"] != "Add at least one condition." {
		t.Errorf("empty segment: %v", err)
	}
}

// A campaign's audience: lists and segments, minus excluded lists and
// segments, counted and materialised by one rule.
func TestCampaignAudience(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		f := seedSegmentFixture(t, s)
		paris := &models.Segment{Name: "Paris", Conditions: one(models.Condition{Field: "attribute", Key: "city", Op: "equals", Value: "paris"})}
		openers := &models.Segment{Name: "Openers", Conditions: one(models.Condition{Field: "opened", Op: "ever"})}
		for _, seg := range []*models.Segment{paris, openers} {
			if err := s.CreateSegment(ctx, seg); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.AddSuppression(ctx, "lyon@yahoo.com", models.SuppressManual, ""); err != nil {
			t.Fatal(err)
		}
		tpl := &models.Template{Kind: models.TemplateCampaign, Name: "t", HTML: "<p>x</p>"}
		if err := s.CreateTemplate(ctx, tpl); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name string
			a    models.Audience
			// who gets a queued delivery, and who a suppressed one
			want, suppressed string
		}{
			// paris2 matches the segment but is eligible on no list (double
			// opt-in, unconfirmed); gone unsubscribed.
			{"segment", models.Audience{Segments: []int64{paris.ID}}, "paris", ""},
			{"list minus exclusion list", models.Audience{Lists: []int64{f.listA}, ExcludeLists: []int64{f.exc}}, "paris", "lyon"},
			{"list minus segment", models.Audience{Lists: []int64{f.listA}, ExcludeSegments: []int64{openers.ID}}, "berlin", ""},
			{"two segments, one list, deduplicated", models.Audience{Lists: []int64{f.listA}, Segments: []int64{paris.ID, openers.ID}}, "berlin paris", "lyon"},
			{"segment minus segment", models.Audience{Segments: []int64{openers.ID}, ExcludeSegments: []int64{paris.ID}}, "", "lyon"},
		} {
			c := audienceCampaign(t, s, &models.Campaign{Name: tc.name, TemplateID: &tpl.ID, FromEmail: "a@b.test"}, tc.a)
			got, err := s.CampaignAudience(ctx, c.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.Lists, tc.a.Lists) || !slices.Equal(got.Segments, tc.a.Segments) ||
				!slices.Equal(got.ExcludeLists, tc.a.ExcludeLists) || !slices.Equal(got.ExcludeSegments, tc.a.ExcludeSegments) {
				t.Errorf("%s: audience read back %+v, set %+v", tc.name, got, tc.a)
			}
			n, err := s.CountCampaignAudience(ctx, c.ID)
			if err != nil {
				t.Fatal(err)
			}
			startAndMaterialize(t, s, c.ID, 2)
			var rows []struct {
				Email  string
				Status string
				ListID *int64
			}
			if err := s.DB().Raw(`SELECT s.email, d.status, d.list_id FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id
				WHERE d.campaign_id = ? ORDER BY s.email`, c.ID).Scan(&rows).Error; err != nil {
				t.Fatal(err)
			}
			var queued, supp []string
			for _, r := range rows {
				name := strings.Split(r.Email, "@")[0]
				if r.ListID == nil {
					t.Errorf("%s: %s's delivery has no list", tc.name, name)
				}
				if r.Status == models.DeliverySuppressed {
					supp = append(supp, name)
				} else {
					queued = append(queued, name)
				}
			}
			if strings.Join(queued, " ") != tc.want || strings.Join(supp, " ") != tc.suppressed {
				t.Errorf("%s: queued [%s] suppressed [%s], want [%s] and [%s]", tc.name, strings.Join(queued, " "), strings.Join(supp, " "), tc.want, tc.suppressed)
			}
			if n != int64(len(queued)) {
				t.Errorf("%s: live count %d, materialised %d", tc.name, n, len(queued))
			}
		}
		// A segment a live campaign uses cannot be deleted.
		err := s.DeleteSegment(ctx, paris.ID)
		var inUse *models.SegmentInUseError
		if !errors.As(err, &inUse) || !errors.Is(err, models.ErrConflict) {
			t.Errorf("delete a used segment: %v", err)
		}
		// Nor can a running campaign's audience change.
		running, err := s.CampaignsByStatus(ctx, models.CampaignRunning)
		if err != nil || len(running) == 0 {
			t.Fatal(running, err)
		}
		if err := s.SetCampaignAudience(ctx, running[0].ID, models.Audience{Lists: []int64{f.listA}}); !errors.Is(err, models.ErrConflict) {
			t.Errorf("change a running campaign's audience: %v", err)
		}
	})
}

// TestUpdateSegmentSavesConditions: an update writes the new conditions
// (a map given to GORM's Updates skipped the JSON serializer and failed),
// and the matches left out read back as "all", on create and on update.
func TestUpdateSegmentSavesConditions(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		g := &models.Segment{Name: "Domain", Conditions: models.Conditions{Groups: []models.ConditionGroup{
			{Conditions: []models.Condition{{Field: models.FieldEmailDomain, Op: "equals", Value: "example.org"}}}}}}
		if err := s.CreateSegment(ctx, g); err != nil {
			t.Fatal(err)
		}
		got, err := s.Segment(ctx, g.ID)
		if err != nil || got.Conditions.Match != "all" || got.Conditions.Groups[0].Match != "all" {
			t.Fatalf("created = %+v, %v; want the matches \"all\"", got, err)
		}
		up := &models.Segment{ID: g.ID, Name: "Lyon", Conditions: models.Conditions{Groups: []models.ConditionGroup{
			{Match: "any", Conditions: []models.Condition{{Field: models.FieldAttribute, Key: "city", Op: "equals", Value: "Lyon"},
				{Field: models.FieldAttribute, Key: "town", Op: "equals", Value: "Lyon"}}},
			{Conditions: []models.Condition{{Field: models.FieldOpened, Op: "never"}}}}}}
		if err := s.UpdateSegment(ctx, up); err != nil {
			t.Fatal(err)
		}
		got, err = s.Segment(ctx, g.ID)
		if err != nil {
			t.Fatal(err)
		}
		if c := got.Conditions; got.Name != "Lyon" || c.Match != "all" || len(c.Groups) != 2 || c.Groups[0].Match != "any" ||
			c.Groups[1].Match != "all" || c.Count() != 3 || c.Groups[1].Conditions[0].Field != models.FieldOpened {
			t.Fatalf("updated = %+v", got)
		}
	})
}

// TestSegmentAudienceWithABAndSendTime: a campaign to a segment minus an
// exclusion list, materialised in small batches, goes through the A/B
// draw (its test share split evenly, the rest held for the winner) and,
// sent by time zone, has each row released at 09:00 in its person's zone:
// the segment path of materialisation writes rows as the list paths do.
func TestSegmentAudienceWithABAndSendTime(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 12, 0, 30, 0, time.UTC)
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		all := &models.List{Name: "All", Optin: models.OptinSingle, Visibility: models.ListPrivate}
		exc := &models.List{Name: "Left out", Optin: models.OptinSingle, Visibility: models.ListPrivate}
		for _, l := range []*models.List{all, exc} {
			if err := s.CreateList(ctx, l); err != nil {
				t.Fatal(err)
			}
		}
		ev := models.Evidence{Source: models.SourceAdmin, Actor: "test"}
		zones := map[int64]string{}
		left := map[int64]bool{}
		for i := range 30 {
			city, zone := "Paris", "Europe/Paris"
			if i%3 == 2 {
				city, zone = "Tokyo", "Asia/Tokyo"
			}
			lists := map[int64]string{all.ID: models.SubConfirmed}
			if i%10 == 0 {
				lists[exc.ID] = models.SubConfirmed
			}
			sub := &models.Subscriber{Email: "p" + strconv.Itoa(i) + "@seg.test", Attributes: models.Attributes{"city": city, "tz": zone}}
			if err := s.CreateSubscriber(ctx, sub, lists, ev); err != nil {
				t.Fatal(err)
			}
			zones[sub.ID] = zone
			left[sub.ID] = i%10 == 0
		}
		paris := &models.Segment{Name: "Paris", Conditions: one(models.Condition{Field: "attribute", Key: "city", Op: "equals", Value: "Paris"})}
		anyone := &models.Segment{Name: "Anyone", Conditions: one(models.Condition{Field: "attribute", Key: "tz", Op: "is_set"})}
		for _, g := range []*models.Segment{paris, anyone} {
			if err := s.CreateSegment(ctx, g); err != nil {
				t.Fatal(err)
			}
		}
		tpl := &models.Template{Kind: models.TemplateCampaign, Name: "t", HTML: "<p>x</p>"}
		if err := s.CreateTemplate(ctx, tpl); err != nil {
			t.Fatal(err)
		}
		newCampaign := func(c *models.Campaign, a models.Audience) int64 {
			t.Helper()
			c.TemplateID, c.FromEmail = &tpl.ID, "a@b.test"
			if errs := c.Validate(); len(errs) > 0 {
				t.Fatal(errs)
			}
			if err := s.CreateCampaign(ctx, c, nil); err != nil {
				t.Fatal(err)
			}
			if err := s.SetCampaignAudience(ctx, c.ID, a); err != nil {
				t.Fatal(err)
			}
			return c.ID
		}
		type row struct {
			SubscriberID  int64
			Status        string
			Variant       *int
			NextAttemptAt time.Time
		}
		materialise := func(id int64) []row {
			t.Helper()
			if err := s.StartCampaign(ctx, id); err != nil {
				t.Fatal(err)
			}
			for done := false; !done; {
				var err error
				if done, err = s.MaterializeCampaignAt(ctx, id, 4, t0); err != nil {
					t.Fatal(err)
				}
			}
			var rows []row
			if err := s.DB().Raw("SELECT subscriber_id, status, variant, next_attempt_at FROM deliveries WHERE campaign_id = ?", id).Scan(&rows).Error; err != nil {
				t.Fatal(err)
			}
			return rows
		}

		// The A/B test: Paris (20) minus the excluded in Paris (0 and 10;
		// 20 is in Tokyo).
		aud := models.Audience{Segments: []int64{paris.ID}, ExcludeLists: []int64{exc.ID}}
		want, err := s.CountAudience(ctx, aud)
		if err != nil || want != 18 {
			t.Fatalf("CountAudience = %d, %v; want 18 (20 in Paris, 2 of them left out)", want, err)
		}
		ab := newCampaign(&models.Campaign{Name: "ab", AB: models.ABTest{Share: 40, Metric: models.MetricClicks, WaitSeconds: 60},
			Variants: []models.Variant{{Subject: "A"}, {Subject: "B"}}}, aud)
		rows := materialise(ab)
		if int64(len(rows)) != want {
			t.Fatalf("%d deliveries, want the counted %d", len(rows), want)
		}
		perVariant, held := map[int]int{}, 0
		for _, r := range rows {
			if left[r.SubscriberID] || zones[r.SubscriberID] != "Europe/Paris" {
				t.Errorf("subscriber %d (%s, left out %v) got a delivery", r.SubscriberID, zones[r.SubscriberID], left[r.SubscriberID])
			}
			if r.Variant == nil {
				held++
				if r.NextAttemptAt.Year() < 2100 {
					t.Errorf("held row of %d due %s, want held for the winner", r.SubscriberID, r.NextAttemptAt)
				}
				continue
			}
			perVariant[*r.Variant]++
		}
		// 40% of 18 is 7 (rounded): 4 and 3, the rest held.
		if perVariant[1]+perVariant[2] != 7 || perVariant[1] < 3 || perVariant[2] < 3 || held != 11 {
			t.Errorf("test share by variant %v, held %d; want 7 split evenly, 11 held", perVariant, held)
		}
		got, err := s.ClaimDeliveries(ctx, models.ClaimRequest{Node: "n", Lease: time.Minute, Limit: 100, CampaignIDs: []int64{ab}})
		if err != nil || len(got) != 7 {
			t.Fatalf("claimed %d rows, %v; want the test share's 7", len(got), err)
		}

		// By time zone: everyone, each released at 09:00 where they live.
		tz := newCampaign(&models.Campaign{Name: "tz", SendTime: models.SendTime{LocalSendAt: "09:00", TZAttribute: "tz", TZDefault: "UTC"}},
			models.Audience{Segments: []int64{anyone.ID}})
		if err := s.SetCampaignSendTime(ctx, tz, models.SendTime{LocalSendAt: "09:00", TZAttribute: "tz", TZDefault: "UTC"}); err != nil {
			t.Fatal(err)
		}
		rows = materialise(tz)
		if len(rows) != 30 {
			t.Fatalf("%d deliveries by zone, want 30", len(rows))
		}
		for _, r := range rows {
			loc, _ := time.LoadLocation(zones[r.SubscriberID])
			if local := r.NextAttemptAt.In(loc); local.Hour() != 9 || local.Minute() != 0 || r.NextAttemptAt.Before(t0.Add(-time.Minute)) {
				t.Errorf("subscriber %d (%s) released at %s (%s local), want the next 09:00 there", r.SubscriberID, zones[r.SubscriberID],
					r.NextAttemptAt.UTC(), local.Format("15:04"))
			}
		}
	})
}
