package models_test

import (
	"context"
	"testing"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

// The engine and the pre-send checklist both sign with SigningDomain's
// choice, read over SendingDomainsCovering's candidates: a From on a
// subdomain is signed by its closest configured parent.
func TestSigningDomain(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		const secret = "a server secret of some length!!"
		for _, d := range []string{"example.com", "mail.example.com", "other.org", "xample.com"} {
			if _, err := s.CreateSendingDomain(ctx, d, secret, models.SendingDomainOptions{Selector: "s1"}); err != nil {
				t.Fatal(err)
			}
		}
		all, err := s.SendingDomains(ctx)
		if err != nil {
			t.Fatal(err)
		}
		byName := map[string]*models.SendingDomain{}
		for i := range all {
			byName[all[i].Domain] = &all[i]
		}
		cases := []struct {
			from, chosen, want string
			candidates         []string
		}{
			{from: "example.com", want: "example.com", candidates: []string{"example.com"}},
			{from: "news.example.com", want: "example.com", candidates: []string{"example.com"}},
			{from: "a.b.example.com", want: "example.com", candidates: []string{"example.com"}},
			{from: "x.mail.example.com", want: "mail.example.com", candidates: []string{"example.com", "mail.example.com"}},
			{from: "News.Example.COM.", want: "example.com", candidates: []string{"example.com"}},
			{from: "badexample.com", want: ""}, // a suffix, not a parent
			{from: "notxample.com", want: ""},  // nor here
			{from: "com", want: ""},            // no dot: nothing to look up
			{from: "mail.example.com", chosen: "example.com", want: "example.com", candidates: []string{"example.com", "mail.example.com"}},
			{from: "news.example.com", chosen: "other.org", want: "example.com", candidates: []string{"example.com"}},
			{from: "shop.other.org", chosen: "example.com", want: "other.org", candidates: []string{"other.org"}},
			{from: "unknown.net", chosen: "example.com", want: ""},
		}
		for _, c := range cases {
			got, err := s.SendingDomainsCovering(ctx, c.from)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, d := range got {
				names = append(names, d.Domain)
			}
			if len(names) != len(c.candidates) || (len(names) > 0 && !equalStrings(names, c.candidates)) {
				t.Errorf("SendingDomainsCovering(%q) = %v, want %v", c.from, names, c.candidates)
			}
			sd := models.SigningDomain(got, byName[c.chosen], c.from)
			// The checklist passes every domain: the same answer.
			all := models.SigningDomain(all, byName[c.chosen], c.from)
			name, allName := "", ""
			if sd != nil {
				name = sd.Domain
			}
			if all != nil {
				allName = all.Domain
			}
			if name != c.want || allName != c.want {
				t.Errorf("SigningDomain(%q, chosen %q) = %q over the candidates, %q over all domains; want %q", c.from, c.chosen, name, allName, c.want)
			}
		}
	})
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
