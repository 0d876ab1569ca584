package models

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"
)

// SettingProtection holds the automatic protection thresholds, as JSON
// (Protection). Unset: DefaultProtection.
const SettingProtection = "protection"

// Protection is when Herald pauses a running campaign by itself because
// the receivers' signals say it is hurting the sender's reputation:
// complaints from feedback loops and ESP webhooks, hard bounces, and
// deferrals over a moving window, per campaign and per mailbox provider
// of the recipients (the domain rules' providers). Percentages are of the
// messages sent (complaints, hard bounces) or of the delivery attempts in
// the window (deferrals).
type Protection struct {
	// Enabled turns the automatic pause on.
	Enabled bool `json:"enabled"`
	// ComplaintWarnPct is the complaint rate shown as a warning on the
	// campaign page (Gmail and Yahoo ask senders to stay under 0.1%).
	ComplaintWarnPct float64 `json:"complaint_warn_pct"`
	// ComplaintPausePct is the complaint rate that pauses (Gmail and Yahoo:
	// never reach 0.3%).
	ComplaintPausePct float64 `json:"complaint_pause_pct"`
	// HardBouncePausePct is the hard-bounce rate that pauses.
	HardBouncePausePct float64 `json:"hard_bounce_pause_pct"`
	// DeferralPausePct is the share of the attempts in the last
	// DeferralWindowMinutes left deferred that pauses.
	DeferralPausePct      float64 `json:"deferral_pause_pct"`
	DeferralWindowMinutes int     `json:"deferral_window_minutes"`
	// MinSent is the sample a rate needs before it is judged: messages
	// sent (attempts in the window for deferrals) to the provider, or by
	// the campaign. Below it one complaint in a few sends would be a large
	// percentage by chance, so nothing pauses.
	MinSent int64 `json:"min_sent"`
}

// DefaultProtection follows the published Gmail and Yahoo sender
// guidance: complaints under 0.1%, never 0.3%; hard bounces under 2%.
var DefaultProtection = Protection{Enabled: true, ComplaintWarnPct: 0.1, ComplaintPausePct: 0.3,
	HardBouncePausePct: 2, DeferralPausePct: 30, DeferralWindowMinutes: 60, MinSent: 500}

// Validate returns what is wrong with p, by JSON field name.
func (p Protection) Validate() map[string]string {
	errs := map[string]string{}
	pct := func(field string, v float64, what string) {
		if v <= 0 || v > 100 {
			errs[field] = fmt.Sprintf("The %s must be a percentage above 0 and at most 100.", what)
		}
	}
	pct("complaint_warn_pct", p.ComplaintWarnPct, "complaint warning rate")
	pct("complaint_pause_pct", p.ComplaintPausePct, "complaint pause rate")
	pct("hard_bounce_pause_pct", p.HardBouncePausePct, "hard-bounce pause rate")
	pct("deferral_pause_pct", p.DeferralPausePct, "deferral pause rate")
	if errs["complaint_warn_pct"] == "" && errs["complaint_pause_pct"] == "" && p.ComplaintWarnPct > p.ComplaintPausePct {
		errs["complaint_warn_pct"] = "The warning rate must not be above the pause rate."
	}
	if p.DeferralWindowMinutes < 5 || p.DeferralWindowMinutes > 7*24*60 {
		errs["deferral_window_minutes"] = "The deferral window must be between 5 minutes and 7 days (10080 minutes)."
	}
	if p.MinSent < 1 || p.MinSent > 10_000_000 {
		errs["min_sent"] = "The minimum sample must be between 1 and 10,000,000 messages."
	}
	return errs
}

// Protection returns the stored thresholds, DefaultProtection when none
// are saved.
func (s *Store) Protection(ctx context.Context) (Protection, error) {
	v, err := s.Setting(ctx, SettingProtection)
	if err != nil || v == "" {
		return DefaultProtection, err
	}
	p := DefaultProtection
	if err := json.Unmarshal([]byte(v), &p); err != nil {
		return DefaultProtection, fmt.Errorf("models: protection settings: %w", err)
	}
	return p, nil
}

// SaveProtection stores valid thresholds (with the audit entry ctx
// carries, in one transaction).
func (s *Store) SaveProtection(ctx context.Context, p Protection) error {
	if errs := p.Validate(); len(errs) > 0 {
		return &ValidationError{Fields: errs}
	}
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return s.tx(ctx, func(tx *gorm.DB) error {
		return s.withDB(tx).SetSetting(ctx, SettingProtection, string(b))
	})
}

// Signal is what the receivers said about one slice of a campaign's
// recipients: the whole campaign (Scope ""), or one provider's.
type Signal struct {
	Scope       string // "" the campaign, else a provider name (google, yahoo, other…)
	Sent        int64  // messages sent or bounced after acceptance
	Complaints  int64
	HardBounces int64
	Attempted   int64 // deliveries attempted within the deferral window
	Deferred    int64 // of those, the ones left deferred
}

// Rules a Trip can name.
const (
	TripComplaints  = "complaints"
	TripHardBounces = "hard_bounces"
	TripDeferrals   = "deferrals"
)

// Trip is a threshold a signal crossed.
type Trip struct {
	Rule   string // TripComplaints, TripHardBounces or TripDeferrals
	Scope  string // as Signal.Scope
	Count  int64
	Of     int64
	Pct    float64
	Limit  float64
	Sample int64 // the minimum sample in force
	Window int   // minutes, for deferrals
}

// Judge returns the first threshold crossed by a signal with at least
// MinSent messages behind it, the campaign as a whole before the
// providers, complaints before hard bounces before deferrals; nil when
// none is (or protection is off).
func (p Protection) Judge(sigs []Signal) *Trip {
	if !p.Enabled {
		return nil
	}
	sorted := append([]Signal(nil), sigs...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Scope == "" && sorted[j].Scope != "" })
	for _, rule := range []string{TripComplaints, TripHardBounces, TripDeferrals} {
		for _, s := range sorted {
			count, of, limit := s.Complaints, s.Sent, p.ComplaintPausePct
			switch rule {
			case TripHardBounces:
				count, limit = s.HardBounces, p.HardBouncePausePct
			case TripDeferrals:
				count, of, limit = s.Deferred, s.Attempted, p.DeferralPausePct
			}
			if of < p.MinSent || of == 0 || count == 0 {
				continue
			}
			if pct := Percent(count, of); pct >= limit {
				return &Trip{Rule: rule, Scope: s.Scope, Count: count, Of: of, Pct: pct, Limit: limit, Sample: p.MinSent, Window: p.DeferralWindowMinutes}
			}
		}
	}
	return nil
}

// Reason is the banner's text: what crossed which threshold, the sample
// rule, and what to check before resuming.
func (t Trip) Reason() string {
	to := "sent by this campaign"
	switch {
	case strings.HasPrefix(t.Scope, SourceScope):
		to = "sent from the sending IP " + strings.TrimPrefix(t.Scope, SourceScope) + " by all campaigns in the last 24 hours"
	case strings.HasPrefix(t.Scope, DomainScope):
		to = "sent from the sending domain " + strings.TrimPrefix(t.Scope, DomainScope) + " by all campaigns in the last 24 hours"
	case t.Scope != "":
		to = "sent by this campaign to " + providerLabel(t.Scope)
	}
	var what, check string
	switch t.Rule {
	case TripComplaints:
		what = fmt.Sprintf("%s spam complaints for %s messages %s (%s) reached the pause threshold of %s",
			thousands(t.Count), thousands(t.Of), to, pctText(t.Pct), pctText(t.Limit))
		check = "Gmail and Yahoo ask senders to keep complaints under 0.1% and never reach 0.3%. " +
			"Check where these addresses came from and that they asked for this mail, that the unsubscribe link is easy to find, " +
			"and that the sender name and subject are ones the recipients recognise. Resume only once the cause is fixed."
	case TripHardBounces:
		what = fmt.Sprintf("%s hard bounces for %s messages %s (%s) reached the pause threshold of %s",
			thousands(t.Count), thousands(t.Of), to, pctText(t.Pct), pctText(t.Limit))
		check = "Many of these addresses no longer exist. Check the list's source and age (an old or bought list, a typo-ridden import) " +
			"on the Bounces page, and clean the list before resuming."
	case TripDeferrals:
		what = fmt.Sprintf("%s of the %s messages %s attempted in the last %d minutes were deferred (%s), reaching the pause threshold of %s",
			thousands(t.Count), thousands(t.Of), to, t.Window, pctText(t.Pct), pctText(t.Limit))
		check = "The receiving servers are slowing this sender down. Read their answers on the Bounces page (421 or 4xx texts), " +
			"check the sending IPs and domain against blocklists and the DNS checks, and lower that provider's rate in Rules before resuming."
	}
	return fmt.Sprintf("Paused automatically: %s. Rates are judged only once at least %s messages have been sent (attempted, for deferrals) "+
		"to a provider, by the campaign or from a sending IP or domain, so a single complaint in a few sends does not pause. %s", what, thousands(t.Sample), check)
}

func providerLabel(p string) string {
	switch p {
	case "google":
		return "Gmail (google)"
	case "yahoo":
		return "Yahoo (yahoo)"
	case "microsoft":
		return "Outlook.com (microsoft)"
	case "apple":
		return "iCloud (apple)"
	case ProviderOther:
		return "other providers"
	}
	return p
}

func pctText(v float64) string {
	s := strconv.FormatFloat(v, 'f', 2, 64)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s + "%"
}

func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// ProtectionSignals returns a campaign's signals: the whole campaign
// first, then one per provider its recipients belong to. Deferrals count
// the deliveries attempted since windowStart that are deferred now.
func (s *Store) ProtectionSignals(ctx context.Context, campaignID int64, windowStart time.Time) ([]Signal, error) {
	wrap := func(err error) error {
		return fmt.Errorf("models: protection signals of campaign %d: %w", campaignID, err)
	}
	rules, err := s.DomainRules(ctx)
	if err != nil {
		return nil, wrap(err)
	}
	prov := NewProviders(rules)
	since := dbTime(windowStart)
	var rows []struct {
		Domain, MXHost            string
		Sent, Attempted, Deferred int64
		Complaints, HardBounces   int64
	}
	// One pass over the campaign's deliveries (by its index), grouped by
	// what decides the provider; the bounces joined are the campaign's.
	err = s.conn(ctx).Raw(`SELECT d.domain AS domain, d.mx_host AS mx_host,
			SUM(CASE WHEN d.status IN ('sent', 'bounced') THEN 1 ELSE 0 END) AS sent,
			SUM(CASE WHEN d.last_attempt_at >= ? THEN 1 ELSE 0 END) AS attempted,
			SUM(CASE WHEN d.status = 'deferred' AND d.last_attempt_at >= ? THEN 1 ELSE 0 END) AS deferred,
			0 AS complaints, 0 AS hard_bounces
		FROM deliveries d WHERE d.campaign_id = ? GROUP BY d.domain, d.mx_host
		UNION ALL
		SELECT d.domain, d.mx_host, 0, 0, 0,
			SUM(CASE WHEN b.kind = 'complaint' THEN 1 ELSE 0 END),
			SUM(CASE WHEN b.kind = 'hard' THEN 1 ELSE 0 END)
		FROM bounces b JOIN deliveries d ON d.id = b.delivery_id
		WHERE b.campaign_id = ? AND b.kind IN ('complaint', 'hard') GROUP BY d.domain, d.mx_host`,
		since, since, campaignID, campaignID).Scan(&rows).Error
	if err != nil {
		return nil, wrap(err)
	}
	all := Signal{}
	by := map[string]*Signal{}
	for _, r := range rows {
		name := prov.Of(r.Domain, r.MXHost)
		sg := by[name]
		if sg == nil {
			sg = &Signal{Scope: name}
			by[name] = sg
		}
		for _, x := range []*Signal{&all, sg} {
			x.Sent += r.Sent
			x.Attempted += r.Attempted
			x.Deferred += r.Deferred
			x.Complaints += r.Complaints
			x.HardBounces += r.HardBounces
		}
	}
	out := []Signal{all}
	names := make([]string, 0, len(by))
	for n := range by {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		out = append(out, *by[n])
	}
	return out, nil
}

// PauseCampaignFor pauses a running or scheduled campaign by Herald's own
// decision, keeping reason for the campaign page (with the audit entry ctx
// carries, in the same transaction). The engine stops handing its
// messages out when it next reads the campaign's status.
func (s *Store) PauseCampaignFor(ctx context.Context, id int64, reason string) error {
	if err := s.transition(ctx, id, "pause", []string{CampaignRunning, CampaignScheduled}, CampaignPaused,
		map[string]any{"pause_reason": truncate(reason, 2000)}); err != nil {
		return fmt.Errorf("models: pause campaign %d: %w", id, err)
	}
	return nil
}

// SourceScope and DomainScope prefix the Scope of a sending IP's and a
// sending domain's signal: "ip:192.0.2.7", "domain:news.example".
const (
	SourceScope = "ip:"
	DomainScope = "domain:"
)

// SourceWindow is how far back a sending IP's or domain's complaints and
// hard bounces are counted: the day the mailbox providers' own rates
// cover.
const SourceWindow = 24 * time.Hour

// senderKind is one way of grouping deliveries by who sent them: key is
// the sender's expression over deliveries d, join what it needs beside
// them (their campaign c) and has the condition for a row to have a
// sender of the kind.
type senderKind struct{ prefix, key, join, has string }

func (s *Store) senderKinds() []senderKind {
	return []senderKind{
		// Mail handed to a relay has no source IP.
		{SourceScope, "d.source_ip", "", "d.source_ip <> ''"},
		// The From domain receivers judge (and DMARC aligns with);
		// campaign mail only.
		{DomainScope, s.sqlDialect().emailDomain("c.from_email"), " JOIN campaigns c ON c.id = d.campaign_id", "c.from_email <> ''"},
	}
}

// SourceSignals returns one signal per sending IP and per sending domain,
// over every campaign (and, for IPs, transactional message): messages
// sent since since (and their complaints and hard bounces), attempts and
// deferrals since deferSince.
func (s *Store) SourceSignals(ctx context.Context, since, deferSince time.Time) ([]Signal, error) {
	var out []Signal
	for _, k := range s.senderKinds() {
		sigs, err := s.senderSignals(ctx, k, since, deferSince)
		if err != nil {
			return nil, err
		}
		out = append(out, sigs...)
	}
	return out, nil
}

func (s *Store) senderSignals(ctx context.Context, k senderKind, since, deferSince time.Time) ([]Signal, error) {
	var rows []struct {
		Scope                     string
		Sent, Attempted, Deferred int64
		Complaints, HardBounces   int64
	}
	a, b := dbTime(since), dbTime(deferSince)
	err := s.conn(ctx).Raw(`SELECT `+k.key+` AS scope,
			SUM(CASE WHEN d.status IN ('sent', 'bounced') AND COALESCE(d.sent_at, d.last_attempt_at) >= ? THEN 1 ELSE 0 END) AS sent,
			SUM(CASE WHEN d.last_attempt_at >= ? THEN 1 ELSE 0 END) AS attempted,
			SUM(CASE WHEN d.status = 'deferred' AND d.last_attempt_at >= ? THEN 1 ELSE 0 END) AS deferred,
			0 AS complaints, 0 AS hard_bounces
		FROM deliveries d`+k.join+` WHERE `+k.has+` AND (COALESCE(d.sent_at, d.last_attempt_at) >= ? OR d.last_attempt_at >= ?)
		GROUP BY `+k.key+`
		UNION ALL
		SELECT `+k.key+`, 0, 0, 0,
			SUM(CASE WHEN b.kind = 'complaint' THEN 1 ELSE 0 END),
			SUM(CASE WHEN b.kind = 'hard' THEN 1 ELSE 0 END)
		FROM bounces b JOIN deliveries d ON d.id = b.delivery_id`+k.join+`
		WHERE `+k.has+` AND COALESCE(d.sent_at, d.last_attempt_at) >= ? AND b.kind IN ('complaint', 'hard')
		GROUP BY `+k.key, a, b, b, a, b, a).Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("models: sender signals: %w", err)
	}
	by := map[string]*Signal{}
	var names []string
	for _, r := range rows {
		sg := by[r.Scope]
		if sg == nil {
			sg = &Signal{Scope: k.prefix + r.Scope}
			by[r.Scope] = sg
			names = append(names, r.Scope)
		}
		sg.Sent += r.Sent
		sg.Attempted += r.Attempted
		sg.Deferred += r.Deferred
		sg.Complaints += r.Complaints
		sg.HardBounces += r.HardBounces
	}
	sort.Strings(names)
	out := make([]Signal, 0, len(names))
	for _, n := range names {
		out = append(out, *by[n])
	}
	return out, nil
}

// RunningCampaignsFromSource returns the running campaigns that sent or
// tried to send from the sender of scope (a SourceSignals scope: a
// sending IP or domain) since t.
func (s *Store) RunningCampaignsFromSource(ctx context.Context, scope string, since time.Time) ([]int64, error) {
	for _, k := range s.senderKinds() {
		sender, ok := strings.CutPrefix(scope, k.prefix)
		if !ok {
			continue
		}
		var ids []int64
		err := s.conn(ctx).Raw(`SELECT cc.id FROM campaigns cc WHERE cc.status = ? AND EXISTS (SELECT 1 FROM deliveries d`+k.join+`
			WHERE d.campaign_id = cc.id AND `+k.key+` = ? AND COALESCE(d.sent_at, d.last_attempt_at) >= ?) ORDER BY cc.id`,
			CampaignRunning, sender, dbTime(since)).Scan(&ids).Error
		if err != nil {
			return nil, fmt.Errorf("models: running campaigns from %s: %w", scope, err)
		}
		return ids, nil
	}
	return nil, fmt.Errorf("models: running campaigns from %q: not a sender scope", scope)
}
