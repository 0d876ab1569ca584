package mailer

import (
	"testing"
	"time"

	"github.com/herald-mail/herald/models"
)

// Each node's part of a rule: the parts of all nodes never add up to more
// than the rule (whole parts), a part below one message a span spreads
// one message over several spans, and every node keeps a connection.
func TestRuleParts(t *testing.T) {
	for _, c := range []struct {
		r     float64
		nodes int
		want  float64
	}{{50, 1, 50}, {2.5, 1, 2.5}, {50, 2, 25}, {50, 3, 16}, {2.5, 2, 1}, {1, 2, 0.5}, {0, 3, 0}} {
		if got := partPerSecond(c.r, c.nodes); got != c.want {
			t.Errorf("partPerSecond(%v, %d) = %v, want %v", c.r, c.nodes, got, c.want)
		}
	}
	for _, c := range []struct {
		n, nodes int
		want     int
		per      time.Duration
	}{{100, 1, 100, time.Minute}, {100, 3, 33, time.Minute}, {1, 2, 1, 2 * time.Minute}, {2, 3, 1, 90 * time.Second}} {
		w := partWindow(c.n, time.Minute, c.nodes)
		if w == nil || w.n != c.want || time.Duration(w.per) != c.per {
			t.Errorf("partWindow(%d a minute, %d nodes) = %+v, want %d per %v", c.n, c.nodes, w, c.want, c.per)
		}
	}
	if w := partWindow(0, time.Minute, 3); w != nil {
		t.Errorf("partWindow(unlimited, 3 nodes) = %+v, want nil (unlimited)", w)
	}
	for _, c := range [][3]int{{4, 1, 4}, {4, 2, 2}, {5, 2, 2}, {1, 3, 1}, {0, 2, 0}} {
		if got := partConns(c[0], c[1]); got != c[2] {
			t.Errorf("partConns(%d, %d) = %d, want %d", c[0], c[1], got, c[2])
		}
	}
}

// A lane sending at the whole rule when a second node joins: the retune
// keeps its history, so no second holds more than the rule, and once the
// last second at the whole rule is over the lane sends at half of it.
func TestJoinHalvesALaneWithoutBurst(t *testing.T) {
	rule := &models.DomainRule{PerSecond: 50}
	l := &lane{src: &sourceIP{}, lim: newLimits(rule, 1)}
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	now := t0
	var sent []time.Time
	send := func(until time.Time) {
		for now.Before(until) {
			var tk ticket
			v, at := l.reserve(now, &tk, true)
			if v != slotBooked {
				now = at
				continue
			}
			sent = append(sent, now)
			l.settle(&tk, now.Add(time.Millisecond), true)
		}
	}
	send(t0.Add(2 * time.Second))
	whole := len(sent)
	l.lim.retune(rule, 2)
	send(t0.Add(6 * time.Second))
	if got := peak(sent, time.Second); got > 50 {
		t.Errorf("peak %d messages in a second across the join, want <= 50", got)
	}
	var late []time.Time
	for _, s := range sent {
		if !s.Before(t0.Add(3 * time.Second)) {
			late = append(late, s)
		}
	}
	if got := peak(late, time.Second); got != 25 {
		t.Errorf("peak %d messages in a second a second after the join, want 25 (half of 50)", got)
	}
	if whole < 95 {
		t.Errorf("%d messages in the 2 s before the join, want about 100 (the whole rule)", whole)
	}
}
