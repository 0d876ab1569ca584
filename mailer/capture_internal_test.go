package mailer

import (
	"testing"

	"github.com/herald-mail/herald/models"
)

// TestCaptureIsNotThrottled: a destination behind the capture transport
// takes the rule's connection and backoff settings but none of its rates,
// also after the rule changes; behind a real transport the rates apply.
func TestCaptureIsNotThrottled(t *testing.T) {
	slow := models.DomainRule{Name: "default", IsDefault: true, PerSecond: 2, PerMinute: 60, PerHour: 1000, MaxPerConnection: 50, MaxConnections: 3}
	for _, tc := range []struct {
		name      string
		transport Transport
		throttled bool
	}{
		{"capture", NewCapture(nil), false},
		{"direct", &Direct{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := &Engine{o: Options{Transport: tc.transport, DestinationQueue: 1}, dests: map[string]*destination{}, sources: map[string]*sourceIP{}}
			e.deflt.Store(&defaultRoute{t: tc.transport})
			d := e.destination(&job{c: models.Claimed{Domain: "example.com"}}, &routeInfo{key: "rule:default", rule: &rule{DomainRule: slow}})
			check := func(when string) {
				r := d.rule
				rated := r.PerSecond != 0 || r.PerMinute != 0 || r.PerHour != 0 || r.MaxPerConnection != 0
				if rated != tc.throttled || r.MaxConnections != 3 {
					t.Errorf("%s: rule %+v; want rates %v and the rule's 3 connections", when, r.DomainRule, tc.throttled)
				}
				if got := d.lanes[0].lim.second != nil; got != tc.throttled {
					t.Errorf("%s: per-second limit on the lane = %v, want %v", when, got, tc.throttled)
				}
			}
			check("at first")
		})
	}
}
