package mailer_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/herald-mail/herald/internal/config"
	"github.com/herald-mail/herald/mailer"
)

func TestParseRelays(t *testing.T) {
	for _, c := range []struct {
		relay   string
		want    []mailer.RelayHost
		wantErr string // "" for none
	}{
		{relay: "smtp://u:p%40ss@smtp.example.com:587?connections=20&rate=14&max_per_conn=100",
			want: []mailer.RelayHost{{Host: "smtp.example.com", Port: 587, TLS: mailer.TLSStartTLS, Username: "u", Password: "p@ss",
				MaxConnections: 20, PerSecond: 14, MaxPerConnection: 100}}},
		// Several relays, by space or comma; a comma inside dkim_selectors stays.
		{relay: "smtps://a.example?weight=3&dkim=relay&dkim_selectors=S1,s2, smtp://b.example:2525?priority=1,smtp://c.example",
			want: []mailer.RelayHost{
				{Host: "a.example", TLS: mailer.TLSImplicit, Weight: 3, SignsDKIM: true, DKIMSelectors: []string{"s1", "s2"}},
				{Host: "b.example", Port: 2525, TLS: mailer.TLSStartTLS, Priority: 1},
				{Host: "c.example", TLS: mailer.TLSStartTLS}}},
		{relay: "smtp://a.example?dkim=herald", want: []mailer.RelayHost{{Host: "a.example", TLS: mailer.TLSStartTLS}}},
		{relay: "smtp://a.example?conections=2", wantErr: `unknown setting "conections"`},
		{relay: "smtp://a.example?connections=0", wantErr: `connections="0": want connections at most`},
		{relay: "smtp://a.example?rate=fast", wantErr: `rate="fast"`},
		{relay: "smtp://a.example?dkim=yes", wantErr: `dkim="yes": want relay when the relay signs`},
		{relay: "smtp://u:secret@a.example?weight=-1", wantErr: `weight="-1"`},
		{relay: "ftp://a.example", wantErr: "the relay must be a URL such as smtp://"},
		{relay: "", wantErr: "the relay must be a URL such as smtp://"},
	} {
		cfg := config.Config{Relay: c.relay}
		got, err := mailer.ParseRelays(cfg.RelayURLs())
		switch {
		case c.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("ParseRelays(%q) = %v; want an error saying %q", c.relay, err, c.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("ParseRelays(%q) error %q shows the password", c.relay, err)
			}
		case err != nil:
			t.Errorf("ParseRelays(%q) = %v", c.relay, err)
		case !reflect.DeepEqual(got, c.want):
			t.Errorf("ParseRelays(%q) =\n%+v\nwant\n%+v", c.relay, got, c.want)
		}
	}
}
