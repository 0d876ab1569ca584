package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/herald-mail/herald/internal/config"
	"github.com/herald-mail/herald/mailer"
	"github.com/herald-mail/herald/models"
)

// BlocklistJob is the name of the blocklist check in the jobs table.
const BlocklistJob = "blocklists.check"

// AdminMailer sends Herald's own mail through the transactional path
// (*mailer.Engine), so the capture transport keeps it in the outbox.
type AdminMailer interface {
	SendTransactional(ctx context.Context, r mailer.TransactionalRequest) (int64, error)
}

// Blocklists checks every sending address and domain against the enabled
// DNS blocklists, records the results, tells the admins of new listings
// and applies the pause rule to IP pools.
type Blocklists struct {
	Store *models.Store
	Log   *slog.Logger
	// DNSServer is the resolver Herald's DNS checks use
	// (config.Config.DNSServer); "" is the system resolver.
	DNSServer string
	// Mailer sends the admins' notices; nil sends none.
	Mailer AdminMailer
	// RootURL is the dashboard's address: its host is the tracking host
	// checked, and the notices link to the Reputation page there.
	RootURL string
	// Direct reports whether mail leaves by direct delivery now; then
	// the addresses of DirectHost (the EHLO name) are checked as well:
	// they are what receivers see when no pool is chosen.
	Direct     func() bool
	DirectHost string
}

// BlocklistTarget is one address or domain checked, with what Herald
// uses it for.
type BlocklistTarget struct {
	Value   string
	Kind    string   // models.BlocklistIP or BlocklistDomain
	Sources []string // e.g. "pool marketing", "sending domain"
	Pools   []int64  // the IP pools the address belongs to
}

// Job is the periodic job of the check, due every every with up to a
// tenth of it as jitter.
func (b *Blocklists) Job(every time.Duration) Job {
	return Job{Name: BlocklistJob, Every: every, Jitter: every / 10, Lease: 10 * time.Minute, Run: func(ctx context.Context, now time.Time) error {
		_, err := b.Run(ctx, now)
		return err
	}}
}

// Targets returns what is checked: every active sending address of every
// pool, the address direct delivery leaves from, every sending domain and
// its bounce (return-path) domain, and the tracking host.
func (b *Blocklists) Targets(ctx context.Context, res *mailer.Resolver) ([]BlocklistTarget, error) {
	byKey := map[string]*BlocklistTarget{}
	var order []string
	add := func(value, kind, source string, pool int64) {
		value = strings.Trim(strings.ToLower(strings.TrimSpace(value)), ".")
		if value == "" {
			return
		}
		t, ok := byKey[value]
		if !ok {
			t = &BlocklistTarget{Value: value, Kind: kind}
			byKey[value] = t
			order = append(order, value)
		}
		if !slices.Contains(t.Sources, source) {
			t.Sources = append(t.Sources, source)
		}
		if pool != 0 && !slices.Contains(t.Pools, pool) {
			t.Pools = append(t.Pools, pool)
		}
	}
	pools, err := b.Store.IPPools(ctx)
	if err != nil {
		return nil, err
	}
	names := map[int64]string{}
	for _, p := range pools {
		names[p.ID] = p.Name
	}
	ips, err := b.Store.AllSendingIPs(ctx)
	if err != nil {
		return nil, err
	}
	for _, ip := range ips {
		if ip.Active {
			add(ip.Address, models.BlocklistIP, "pool "+names[ip.PoolID], ip.PoolID)
		}
	}
	if b.Direct != nil && b.Direct() && b.DirectHost != "" {
		// An address literal ([192.0.2.1], the default when the root URL
		// is an address) is checked as it is, unless it is private.
		host := strings.TrimSuffix(strings.TrimPrefix(b.DirectHost, "["), "]")
		if addrs, err := res.LookupHost(ctx, host); err == nil {
			for _, a := range addrs {
				if !a.IsLoopback() && !a.IsPrivate() {
					add(a.String(), models.BlocklistIP, "direct delivery ("+b.DirectHost+")", 0)
				}
			}
		} else {
			b.Log.Warn("blocklists: the address of direct delivery is unknown", "hostname", b.DirectHost, "err", err)
		}
	}
	doms, err := b.Store.SendingDomains(ctx)
	if err != nil {
		return nil, err
	}
	for _, d := range doms {
		add(d.Domain, models.BlocklistDomain, "sending domain", 0)
		rp := d.ReturnPathDomain
		if rp == "" {
			rp = "bounces." + d.Domain
		}
		add(rp, models.BlocklistDomain, "bounce domain of "+d.Domain, 0)
	}
	if u, err := url.Parse(b.RootURL); err == nil && u.Hostname() != "" {
		h := u.Hostname()
		if a, err := netip.ParseAddr(h); err == nil {
			if !a.IsLoopback() && !a.IsPrivate() {
				add(a.String(), models.BlocklistIP, "tracking host", 0)
			}
		} else if strings.Contains(h, ".") && h != "localhost" {
			add(h, models.BlocklistDomain, "tracking host", 0)
		}
	}
	out := make([]BlocklistTarget, len(order))
	for i, k := range order {
		out[i] = *byKey[k]
	}
	return out, nil
}

// BlocklistRun is what one run found.
type BlocklistRun struct {
	Checked     int // questions asked
	Listed      int // listings found
	Unavailable int // checks not possible (refused or failed)
	NewListings []models.BlocklistResult
}

// Run checks every target against every enabled list of its kind once.
func (b *Blocklists) Run(ctx context.Context, now time.Time) (BlocklistRun, error) {
	var run BlocklistRun
	lists, err := b.Store.Blocklists(ctx)
	if err != nil {
		return run, err
	}
	// A resolver of its own per run: answers are not cached from one run
	// to the next.
	res := mailer.NewResolver(b.DNSServer)
	targets, err := b.Targets(ctx, res)
	if err != nil {
		return run, err
	}
	type poolState struct {
		reason  string
		unknown bool
	}
	pools := map[int64]*poolState{}
	for _, t := range targets {
		for _, p := range t.Pools {
			pools[p] = &poolState{}
		}
	}
	listByZone := map[string]models.Blocklist{}
	for _, bl := range lists {
		listByZone[bl.Zone] = bl
		if !bl.Enabled {
			continue
		}
		for _, t := range targets {
			if t.Kind != bl.Kind {
				continue
			}
			qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			l := res.CheckBlocklist(qctx, bl, t.Value)
			cancel()
			if ctx.Err() != nil {
				return run, ctx.Err()
			}
			run.Checked++
			r := models.BlocklistResult{Target: t.Value, TargetKind: t.Kind, Source: strings.Join(t.Sources, ", "), Zone: bl.Zone,
				Status: l.Status, Answer: l.Answer, Meaning: l.Meaning, LastSeen: now.UTC()}
			isNew, err := b.Store.RecordBlocklistResult(ctx, r)
			if err != nil {
				return run, err
			}
			switch l.Status {
			case models.ListingListed:
				run.Listed++
				if isNew {
					run.NewListings = append(run.NewListings, r)
				}
			case models.ListingUnavailable, models.ListingError:
				run.Unavailable++
				b.Log.Warn("blocklist check not possible", "list", bl.Zone, "target", t.Value, "status", l.Status, "detail", l.Meaning)
			}
			if !bl.PausePool {
				continue
			}
			for _, p := range t.Pools {
				switch l.Status {
				case models.ListingListed:
					if pools[p].reason == "" {
						pools[p].reason = fmt.Sprintf("%s is listed on %s (%s)", t.Value, bl.Name, l.Meaning)
					}
				case models.ListingUnavailable, models.ListingError:
					pools[p].unknown = true
				}
			}
		}
	}
	paused := map[int64]string{}
	ids := make([]int64, 0, len(pools))
	for id := range pools {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		st := pools[id]
		if st.reason == "" && st.unknown {
			continue // not known to be clean: the pool stays as it is
		}
		changed, err := b.Store.SetPoolPause(ctx, id, st.reason)
		if err != nil {
			return run, err
		}
		if changed {
			b.auditPool(ctx, id, st.reason)
		}
		if st.reason != "" {
			paused[id] = st.reason
		}
	}
	// Addresses no pool holds any more, and pools without addresses, are
	// freed as well: the rule holds a pool only for a current listing.
	all, err := b.Store.IPPools(ctx)
	if err != nil {
		return run, err
	}
	for _, p := range all {
		if _, seen := pools[p.ID]; !seen && p.PausedReason != "" {
			if changed, err := b.Store.SetPoolPause(ctx, p.ID, ""); err != nil {
				return run, err
			} else if changed {
				b.auditPool(ctx, p.ID, "")
			}
		}
	}
	b.Log.Info("blocklists checked", "questions", run.Checked, "listed", run.Listed, "not_possible", run.Unavailable, "new", len(run.NewListings))
	if len(run.NewListings) > 0 {
		b.notify(ctx, run.NewListings, listByZone, targets, paused, all)
	}
	return run, nil
}

func (b *Blocklists) auditPool(ctx context.Context, id int64, reason string) {
	e := models.AuditEntry{Actor: "blocklist check", Action: "pool.resume", ObjectType: "ip_pool", ObjectID: fmt.Sprint(id),
		Summary: "the blocklist rule frees the pool: no listing on a pausing list any more"}
	if reason != "" {
		e.Action, e.Summary = "pool.pause", "the blocklist rule pauses the pool: "+reason
		b.Log.Warn("IP pool paused by the blocklist rule", "pool", id, "reason", reason)
	} else {
		b.Log.Info("IP pool freed by the blocklist rule", "pool", id)
	}
	if err := b.Store.Audit(ctx, e); err != nil {
		b.Log.Error("audit failed", "err", err, "action", e.Action)
	}
}

// notify emails every admin about each new listing.
func (b *Blocklists) notify(ctx context.Context, news []models.BlocklistResult, lists map[string]models.Blocklist,
	targets []BlocklistTarget, paused map[int64]string, pools []models.IPPool) {
	if b.Mailer == nil {
		return
	}
	admins, err := b.Store.AdminEmails(ctx)
	if err != nil {
		b.Log.Error("blocklists: admins", "err", err)
		return
	}
	if _, err := b.Store.EnsureAccountTemplate(ctx, models.BlocklistTemplate); err != nil {
		b.Log.Error("blocklists: template", "err", err)
		return
	}
	from, _ := b.Store.Setting(ctx, models.SettingOptinFrom)
	if from == "" {
		from = defaultSender(b.RootURL)
	}
	org, _ := b.Store.Setting(ctx, models.SettingOrgName)
	if org == "" {
		org = "Herald"
	}
	poolName := map[int64]string{}
	for _, p := range pools {
		poolName[p.ID] = p.Name
	}
	for _, r := range news {
		bl := lists[r.Zone]
		var held []string
		for _, t := range targets {
			if t.Value != r.Target {
				continue
			}
			for _, p := range t.Pools {
				if paused[p] != "" && bl.PausePool {
					held = append(held, poolName[p])
				}
			}
		}
		data := map[string]any{"target": r.Target, "source": r.Source, "list": bl.Name, "zone": r.Zone, "meaning": r.Meaning,
			"delist_url": bl.DelistURL, "page_url": strings.TrimRight(b.RootURL, "/") + "/deliverability/reputation",
			"paused": strings.Join(held, ", ")}
		for _, to := range admins {
			if _, err := b.Mailer.SendTransactional(ctx, mailer.TransactionalRequest{Template: models.BlocklistTemplate, To: to,
				From: from, FromName: org, Data: data, OverrideSuppression: true}); err != nil {
				b.Log.Error("blocklists: notice to admin", "to", to, "err", err)
			}
		}
	}
}

// defaultSender is no-reply at the root URL's host, as for Herald's other
// own mail.
func defaultSender(root string) string {
	host := "localhost.localdomain"
	if u, err := url.Parse(root); err == nil && strings.Contains(u.Hostname(), ".") && net.ParseIP(u.Hostname()) == nil {
		host = u.Hostname()
	}
	return "no-reply@" + host
}

// NewBlocklists is the check as cfg configures it, sending its notices
// through eng: the one the scheduler runs and the dashboard's Check now.
func NewBlocklists(cfg *config.Config, store *models.Store, eng *mailer.Engine, log *slog.Logger) *Blocklists {
	b := &Blocklists{Store: store, Log: log, DNSServer: cfg.DNSServer, RootURL: cfg.RootURL, DirectHost: cfg.Hostname,
		Direct: func() bool { return cfg.Transport == "direct" }}
	if eng != nil {
		b.Mailer = eng
		b.Direct = func() bool {
			d := eng.Delivery()
			return d != nil && d.Transport == "direct"
		}
	}
	return b
}
