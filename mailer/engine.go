// Package mailer is Herald's delivery engine. Each stage of the pipeline has
// its file: queue.go materialises and claims deliveries, mx.go routes them
// to destinations, throttle.go shapes traffic, render.go builds the
// messages, dkim.go signs them, transport*.go carry them and deliver.go
// runs the connections and decides each outcome. engine.go wires the stages
// and is the API the rest of Herald calls.
package mailer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/herald-mail/herald/internal/config"
	"github.com/herald-mail/herald/internal/token"
	"github.com/herald-mail/herald/mailer/spamc"
	"github.com/herald-mail/herald/models"
)

// Options configure an Engine. Every zero value means the documented
// default.
type Options struct {
	// NodeID names this engine in delivery leases. Zero: the host name. Two
	// engines running at once must have different ids; a restarted engine
	// should keep its id, so it can take its own leases back at once.
	NodeID string
	// Logger receives one line per delivery attempt and the engine's events.
	// Zero: slog.Default().
	Logger *slog.Logger
	// Transport carries campaigns whose transport is "" and transactional
	// mail. Zero: Capture into the store's outbox.
	Transport Transport
	// Transports are named transports a campaign may choose (its transport
	// column). Zero: none besides Transport.
	Transports map[string]Transport
	// Rebuild builds the default transport again from the settings as
	// they are now (FromConfig: the environment over Settings → Delivery).
	// ReloadTransport calls it, and so does the engine when the stored
	// settings' stamp changed (another node saved them). Zero: Transport
	// stays as given.
	Rebuild func(ctx context.Context) (DefaultTransport, error)
	// RootURL is the public base of tracking, unsubscribe and preference
	// URLs. Zero: the root_url setting, else http://localhost:8080.
	RootURL string
	// Secrets sign tokens and seal DKIM keys, newest first; older ones only
	// verify tokens. Zero: the store's server secret.
	Secrets []string
	// FeedbackSender is the sender field of Feedback-ID. Zero: "herald".
	FeedbackSender string
	// ClaimBatch is how many deliveries one claim leases. Zero: 1000.
	ClaimBatch int
	// MaxInFlight caps deliveries held in memory. Zero: 5000.
	MaxInFlight int
	// DestinationQueue caps one destination's ready queue. Zero: 1000.
	DestinationQueue int
	// Lease is how long claimed deliveries stay leased without renewal:
	// once it passed, another node takes a dead node's deliveries over.
	// Zero: 10 seconds.
	Lease time.Duration
	// Heartbeat is how often the leases of what the engine holds and the
	// node's heartbeat are renewed; under half of Lease, so one failed
	// renewal is survived. Zero: 2 seconds.
	Heartbeat time.Duration
	// PollInterval is how often due deliveries and campaign changes are
	// looked for. Zero: 200ms.
	PollInterval time.Duration
	// FlushInterval bounds how long an outcome waits before being written
	// (outcomes are written in batches of up to 512, and sooner when the
	// unrecorded ones near their bound). Zero: 50ms.
	FlushInterval time.Duration
	// RetryBase and RetryMax bound the exponential backoff of deferred
	// messages. Zero: 5 minutes and 4 hours.
	RetryBase, RetryMax time.Duration
	// MaxAge is how long a message may keep being deferred before it
	// fails. Zero: 72 hours.
	MaxAge time.Duration
	// Warmup is the daily cap schedule of new sending IPs. Zero:
	// DefaultWarmup.
	Warmup []int
	// IdleTimeout closes connections with nothing to send. Zero: 5s.
	IdleTimeout time.Duration
	// MaterializeBatch is the subscriber-id span materialised per
	// transaction. Zero: 5000.
	MaterializeBatch int
	// RuleRefresh is how often domain rules are reloaded. Zero: 30s.
	RuleRefresh time.Duration
	// Spamd scores each campaign's message before it starts
	// (SpamScoring; HERALD_SPAMD). Zero: no content scoring.
	Spamd *spamc.Client
}

func (o Options) withDefaults() Options {
	if o.NodeID == "" {
		o.NodeID, _ = os.Hostname()
		if o.NodeID == "" {
			o.NodeID = "herald"
		}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.FeedbackSender == "" {
		o.FeedbackSender = "herald"
	}
	def := func(p *int, v int) {
		if *p <= 0 {
			*p = v
		}
	}
	// Each claim and each write of outcomes commits a set of index and
	// table pages that hardly grows with its rows: BenchmarkDeliveryLifecycle
	// spends 62 µs a delivery claiming 500 and writing 160 outcomes at a
	// time, 54 µs claiming 1000 and writing 512.
	def(&o.ClaimBatch, 1000)
	def(&o.MaxInFlight, 5000)
	def(&o.DestinationQueue, 1000)
	def(&o.MaterializeBatch, 5000)
	dur := func(p *time.Duration, v time.Duration) {
		if *p <= 0 {
			*p = v
		}
	}
	dur(&o.Lease, 10*time.Second)
	dur(&o.Heartbeat, 2*time.Second)
	dur(&o.PollInterval, 200*time.Millisecond)
	dur(&o.FlushInterval, 50*time.Millisecond)
	dur(&o.RetryBase, 5*time.Minute)
	dur(&o.RetryMax, 4*time.Hour)
	dur(&o.MaxAge, 72*time.Hour)
	dur(&o.IdleTimeout, 5*time.Second)
	dur(&o.RuleRefresh, 30*time.Second)
	if o.Warmup == nil {
		o.Warmup = DefaultWarmup
	}
	return o
}

// Engine runs deliveries. Create it with New, start it with Run; the
// control methods (StartCampaign, Pause, …) may be called at any time and
// take effect in a running engine within a second.
type Engine struct {
	o       Options
	store   Store
	log     *slog.Logger
	metrics *metrics

	ctx     context.Context
	started atomic.Bool
	wg      sync.WaitGroup
	wake    chan struct{} // claimLoop: something may be due
	// A started or resumed campaign is taken up at once, not on the next
	// tick of the control loop and then of the materialiser's.
	refreshNow     chan struct{} // controlLoop: campaign statuses changed
	materializeNow chan struct{} // materializeLoop: a campaign is running

	env       atomic.Pointer[renderEnv]
	secret    string
	routers   map[string]*router // the named transports' (Options.Transports)
	deflt     atomic.Pointer[defaultRoute]
	reloadMu  sync.Mutex // one ReloadTransport at a time
	out       *outcomes
	resultsWG sync.WaitGroup
	steady    dbLink // since when the database has answered without error

	mu        sync.Mutex
	campaigns map[int64]*campaignState
	dests     map[string]*destination
	sources   map[string]*sourceIP
	// inflight holds every claimed job until its outcome is recorded:
	// its lease is renewed until then, so no node takes it over while the
	// outcome is only in memory.
	inflight  map[int64]*job
	signers   map[string]*dkimSigner
	txTmpl    map[int64]*txTemplate
	resolving map[string][]*job

	lastReclaim time.Time // claimLoop only
	cluster     cluster   // the nodes sharing the rules (cluster.go)
	warned      sync.Map  // sender domains already warned about

	db      dbHealth    // whether the database answers (dbhealth.go)
	running atomic.Bool // Run is delivering
}

// New returns an engine over store. It does no I/O until Run.
func New(opts Options, store Store) *Engine {
	o := opts.withDefaults()
	if o.Transport == nil {
		o.Transport = NewCapture(store)
	}
	e := &Engine{
		o: o, store: store, log: o.Logger, metrics: newMetrics(),
		ctx: context.Background(), wake: make(chan struct{}, 1),
		refreshNow: make(chan struct{}, 1), materializeNow: make(chan struct{}, 1),
		routers:   map[string]*router{},
		out:       newOutcomes(),
		campaigns: map[int64]*campaignState{}, dests: map[string]*destination{},
		sources: map[string]*sourceIP{}, inflight: map[int64]*job{}, signers: map[string]*dkimSigner{},
		txTmpl: map[int64]*txTemplate{}, resolving: map[string][]*job{},
	}
	e.metrics.inflight = func() float64 {
		e.mu.Lock()
		defer e.mu.Unlock()
		return float64(len(e.inflight))
	}
	for name, t := range e.o.Transports {
		if name != "" {
			e.routers[name] = newRouter(routeResolver(t))
		}
	}
	e.deflt.Store(&defaultRoute{t: o.Transport, rt: newRouter(routeResolver(o.Transport))})
	return e
}

// routeResolver is the resolver the engine routes a transport's mail
// with: a direct transport's (MX routing), else nil (by domain only).
func routeResolver(t Transport) *Resolver {
	if mt, ok := t.(mxTransport); ok && mt.UsesMX() {
		return mt.Resolver()
	}
	return nil
}

// DefaultTransport is a default transport as Options.Rebuild makes it.
type DefaultTransport struct {
	// Transport carries the mail; nil means capture into the outbox.
	Transport Transport
	// Config holds the settings in effect it was built from (the
	// environment's over the dashboard's), for Delivery.
	Config *config.Config
	// Stamp is the stored settings' version it was built from
	// (models.SettingDeliveryStamp).
	Stamp string
}

// defaultRoute is the default transport and the router of its mail;
// ReloadTransport replaces it whole. Destinations of the default
// transport are keyed by gen, so mail routed after a reload goes through
// the new transport while what the old one's connections hold drains.
type defaultRoute struct {
	t     Transport
	rt    *router
	gen   int64
	conf  *config.Config
	stamp string
}

// defaultTransport is the transport of campaigns without one and of
// transactional mail, as it is now.
func (e *Engine) defaultTransport() Transport { return e.deflt.Load().t }

// router is the router of transport name's mail ("" the default's).
func (e *Engine) router(name string) *router {
	if name == "" {
		return e.deflt.Load().rt
	}
	return e.routers[name]
}

// Delivery returns the delivery settings in effect (transport, relay,
// bounce mailbox: the environment's over Settings → Delivery) as of the
// last (re)build, or nil for an engine not built by FromConfig.
func (e *Engine) Delivery() *config.Config { return e.deflt.Load().conf }

// ReloadTransport builds the default transport again (Options.Rebuild)
// and puts it in place: mail routed from now on goes through it, and
// connections the old one has open close once idle. It returns the
// build's error and keeps the old transport then.
func (e *Engine) ReloadTransport(ctx context.Context) error {
	if e.o.Rebuild == nil {
		return nil
	}
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	dt, err := e.o.Rebuild(ctx)
	if err != nil {
		return err
	}
	rules, err := e.store.DomainRules(ctx)
	if err != nil {
		return fmt.Errorf("mailer: %w", err)
	}
	e.installDefault(dt, rules)
	if dt.Config != nil {
		e.log.Info("default transport rebuilt from the delivery settings", "transport", dt.Config.Transport)
	}
	e.kick()
	return nil
}

// installDefault makes dt the default transport, its router knowing rules.
func (e *Engine) installDefault(dt DefaultTransport, rules []models.DomainRule) {
	t := dt.Transport
	if t == nil {
		t = NewCapture(e.store)
	}
	rt := newRouter(routeResolver(t))
	if rules != nil {
		rt.setRules(rules)
	}
	if sh, ok := t.(clusterShared); ok {
		sh.ShareAmong(e.nodes())
	}
	old := e.deflt.Load()
	e.deflt.Store(&defaultRoute{t: t, rt: rt, gen: old.gen + 1, conf: dt.Config, stamp: dt.Stamp})
}

// mxTransport is a transport that delivers to MX hosts (Direct, and the
// wrappers around it): the engine routes its mail with the transport's
// resolver, so null MX and missing domains bounce before any dial and
// domains sharing an MX host share a destination and its rule.
type mxTransport interface {
	UsesMX() bool
	Resolver() *Resolver
}

func (e *Engine) transports() map[string]Transport {
	m := map[string]Transport{"": e.defaultTransport()}
	for k, v := range e.o.Transports {
		if k != "" {
			m[k] = v
		}
	}
	return m
}

// Run delivers until ctx ends, then releases what it holds and returns
// nil; it returns an error only when it cannot start.
func (e *Engine) Run(ctx context.Context) error {
	if !e.started.CompareAndSwap(false, true) {
		return errors.New("mailer: Run called twice")
	}
	if e.o.Heartbeat >= e.o.Lease/2 {
		return fmt.Errorf("mailer: the lease heartbeat %v must be under half the lease %v", e.o.Heartbeat, e.o.Lease)
	}
	if err := e.setup(ctx); err != nil {
		return err
	}
	e.ctx = ctx
	if n, err := e.store.ExpireNodeLeases(ctx, e.o.NodeID); err != nil {
		return fmt.Errorf("mailer: %w", err)
	} else if n > 0 {
		e.log.Info("reclaiming deliveries leased before restart", "node", e.o.NodeID, "count", n)
	}
	if err := e.join(ctx); err != nil {
		return err
	}
	e.running.Store(true)
	defer e.running.Store(false)
	e.steady.ok(time.Now())
	for range outcomeWriters {
		e.resultsWG.Add(1)
		go e.writeResults()
	}
	go e.out.wake(ctx)
	var loops sync.WaitGroup
	for _, f := range []func(context.Context){e.claimLoop, e.controlLoop, e.materializeLoop, e.leaseLoop, e.clusterLoop} {
		loops.Add(1)
		go func() { defer loops.Done(); f(ctx) }()
	}
	<-ctx.Done()
	loops.Wait()
	e.wg.Wait() // workers release their jobs as they stop
	e.leave()
	e.mu.Lock()
	left := make([]*job, 0, len(e.inflight))
	for _, j := range e.inflight {
		left = append(left, j)
	}
	e.mu.Unlock()
	for _, j := range left {
		e.release(j, time.Now()) // those settled already are left alone
	}
	e.out.close()
	e.resultsWG.Wait()
	return nil
}

// setup reads the settings, secret and rules.
func (e *Engine) setup(ctx context.Context) error {
	secrets := e.o.Secrets
	if len(secrets) == 0 {
		s, err := e.store.EnsureSecret(ctx)
		if err != nil {
			return fmt.Errorf("mailer: %w", err)
		}
		secrets = []string{s}
	}
	e.secret = secrets[0]
	settings, err := e.store.Settings(ctx)
	if err != nil {
		return fmt.Errorf("mailer: %w", err)
	}
	root := e.o.RootURL
	if root == "" {
		root = settings[models.SettingRootURL]
	}
	if root == "" {
		root = "http://localhost:8080"
	}
	e.env.Store(&renderEnv{
		root: strings.TrimSuffix(root, "/"),
		org:  OrgData{Name: settings[models.SettingOrgName], PostalAddress: settings[models.SettingPostalAddress]},
		keys: token.NewKeyring(secrets...), feedbackID: e.o.FeedbackSender,
		trackingOff: settings[models.SettingTrackingMode] == models.TrackingOff,
	})
	return e.loadRules(ctx)
}

// refreshOrg reloads the organisation's name and postal address and the
// tracking mode, so a campaign started after the settings changed carries
// the new footer, and no pixel or tracked links once tracking is off.
func (e *Engine) refreshOrg(ctx context.Context) error {
	env := e.env.Load()
	if env == nil {
		return nil // setup has not run yet; it reads the settings itself
	}
	settings, err := e.store.Settings(ctx)
	if err != nil {
		return fmt.Errorf("mailer: %w", err)
	}
	if st := settings[models.SettingDeliveryStamp]; e.o.Rebuild != nil && st != e.deflt.Load().stamp {
		// Another node saved Settings → Delivery.
		if err := e.ReloadTransport(ctx); err != nil {
			e.log.Error("the delivery settings changed, and the transport cannot be built from them; keeping the old one", "err", err)
		}
	}
	org := OrgData{Name: settings[models.SettingOrgName], PostalAddress: settings[models.SettingPostalAddress]}
	off := settings[models.SettingTrackingMode] == models.TrackingOff
	if org != env.org || off != env.trackingOff {
		next := *env
		next.org, next.trackingOff = org, off
		e.env.Store(&next)
	}
	return nil
}

func (e *Engine) loadRules(ctx context.Context) error {
	rules, err := e.store.DomainRules(ctx)
	if err != nil {
		return fmt.Errorf("mailer: %w", err)
	}
	for _, rt := range e.routers {
		rt.setRules(rules)
	}
	e.router("").setRules(rules)
	byName := map[string]models.DomainRule{}
	for _, r := range rules {
		byName[r.Name] = r
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, d := range e.dests {
		d.mu.Lock()
		if nr, ok := byName[d.rule.Name]; ok && !nr.UpdatedAt.Equal(d.rule.UpdatedAt) {
			if d.capture {
				nr = unthrottled(nr)
			}
			d.rule = &rule{DomainRule: nr}
			for _, l := range d.lanes {
				l.mu.Lock()
				l.lim.retune(&nr, e.nodes())
				l.mu.Unlock()
			}
		}
		d.mu.Unlock()
	}
	return nil
}

// ReloadRules applies domain rule changes now rather than at the next
// periodic reload (other nodes still take up to RuleRefresh).
func (e *Engine) ReloadRules(ctx context.Context) error { return e.loadRules(ctx) }

// Keyring returns the engine's token keyring (valid once Run started).
func (e *Engine) Keyring() *token.Keyring {
	if env := e.env.Load(); env != nil {
		return env.keys
	}
	return nil
}

func (e *Engine) kick() { signal(e.wake) }

// signal wakes whoever waits on c, unless a wake-up is already pending.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// StartCampaign starts a draft or scheduled campaign now: its deliveries
// are materialised in the background and sending begins with the first
// batch.
func (e *Engine) StartCampaign(ctx context.Context, id int64) error {
	if err := e.refreshOrg(ctx); err != nil {
		return err
	}
	if err := e.store.StartCampaign(ctx, id); err != nil {
		return err
	}
	// Woken once the start is committed (a handler's change, models.Tx).
	models.AfterCommit(ctx, func() { signal(e.refreshNow) })
	return nil
}

// Pause stops a campaign: messages not yet handed to a server go back to
// the queue within a second; Resume continues where it stopped.
func (e *Engine) Pause(ctx context.Context, id int64) error {
	if err := e.store.PauseCampaign(ctx, id); err != nil {
		return err
	}
	models.AfterCommit(ctx, func() { e.setStatus(id, models.CampaignPaused) })
	return nil
}

// Resume continues a paused campaign.
func (e *Engine) Resume(ctx context.Context, id int64) error {
	if err := e.store.ResumeCampaign(ctx, id); err != nil {
		return err
	}
	models.AfterCommit(ctx, func() {
		e.setStatus(id, models.CampaignRunning)
		e.kick()
		signal(e.refreshNow) // not known yet if it was paused before this engine started
		signal(e.materializeNow)
	})
	return nil
}

// Cancel stops a campaign for good.
func (e *Engine) Cancel(ctx context.Context, id int64) error {
	if err := e.store.CancelCampaign(ctx, id); err != nil {
		return err
	}
	models.AfterCommit(ctx, func() { e.setStatus(id, models.CampaignCancelled) })
	return nil
}

// Progress returns a campaign's status and counters (one primary-key read).
func (e *Engine) Progress(ctx context.Context, id int64) (*models.CampaignProgress, error) {
	return e.store.CampaignProgress(ctx, id)
}

func (e *Engine) setStatus(id int64, status string) {
	e.mu.Lock()
	cs := e.campaigns[id]
	e.mu.Unlock()
	if cs != nil {
		cs.status.Store(status)
	}
}

// TransactionalRequest is one transactional message to send.
type TransactionalRequest struct {
	// Template names a transactional template; TemplateID, when set, wins.
	Template   string
	TemplateID int64
	// To is the recipient's address; Name their name (optional).
	To, Name string
	// Subject, when set, replaces the template's subject line (a
	// campaign's test send uses the campaign's).
	Subject string
	// From is the sender address; its domain picks the DKIM key.
	From, FromName, ReplyTo string
	// Data is handed to the template as .Data (and .Subscriber.Attributes).
	Data map[string]any
	// Test marks a campaign's test send: the message carries the
	// campaign's unsubscribe header and links, pointing at TestLinkToken
	// pages that explain they do nothing in a test.
	Test bool
	// TestOf is the campaign a test send belongs to, so the outbox can
	// name it; 0 for other transactional messages.
	TestOf int64
	// OverrideSuppression sends the message even when the address is
	// suppressed, whatever the reason (a bounce, a complaint, a domain
	// block, an erasure): for mail the recipient asked for, such as a
	// password reset or a receipt. The choice is recorded on the delivery.
	OverrideSuppression bool
	// Placement is a placement test's token, sent as the X-Herald-Placement
	// header so the copy can be found in the seed mailbox. "" for none.
	Placement string
}

// ErrInvalidRequest wraps what is wrong with a transactional request.
var ErrInvalidRequest = errors.New("mailer: invalid request")

// SendTransactional queues one transactional message ahead of all campaign
// traffic and returns its delivery id; the message goes out through the
// same pipeline (routing, shaping, DKIM, transport) within moments.
func (e *Engine) SendTransactional(ctx context.Context, r TransactionalRequest) (int64, error) {
	// The addresses go into header fields: the header builder's check
	// (HeaderAddress) refuses line breaks and anything net/mail cannot
	// read as one address, as the campaign form does for its Reply-To.
	to, err := HeaderAddress(r.To)
	if err != nil {
		return 0, fmt.Errorf("%w: to: %v", ErrInvalidRequest, err)
	}
	from, err := HeaderAddress(r.From)
	if err != nil {
		return 0, fmt.Errorf("%w: from: %v", ErrInvalidRequest, err)
	}
	replyTo := ""
	if strings.TrimSpace(r.ReplyTo) != "" {
		if replyTo, err = HeaderAddress(r.ReplyTo); err != nil {
			return 0, fmt.Errorf("%w: reply_to: %v", ErrInvalidRequest, err)
		}
	}
	id := r.TemplateID
	if id == 0 {
		t, err := e.store.TemplateByName(ctx, models.TemplateTransactional, r.Template)
		if err != nil {
			return 0, fmt.Errorf("%w: template %q: %v", ErrInvalidRequest, r.Template, err)
		}
		id = t.ID
	}
	if r.Subject != "" {
		if _, err := compileSubject("tx", r.Subject); err != nil {
			return 0, fmt.Errorf("%w: subject: %v", ErrInvalidRequest, err)
		}
	}
	if r.Test {
		// A test shows the message as it would go out now: the settings
		// saved a moment ago, not those the engine last loaded.
		if err := e.refreshOrg(ctx); err != nil {
			return 0, err
		}
	}
	data, err := json.Marshal(txData{Subject: r.Subject, From: from, FromName: r.FromName, ReplyTo: replyTo, Data: r.Data, Test: r.Test, TestOf: r.TestOf, Placement: r.Placement})
	if err != nil {
		return 0, fmt.Errorf("%w: data: %v", ErrInvalidRequest, err)
	}
	did, err := e.store.EnqueueTransactional(ctx, models.TransactionalMessage{TemplateID: id, Email: to, Name: r.Name, Data: string(data),
		OverrideSuppression: r.OverrideSuppression})
	if err != nil {
		return 0, err
	}
	models.AfterCommit(ctx, e.kick)
	return did, nil
}

type txData struct {
	Subject  string         `json:"subject,omitempty"` // overrides the template's
	From     string         `json:"from"`
	FromName string         `json:"from_name,omitempty"`
	ReplyTo  string         `json:"reply_to,omitempty"`
	Data     map[string]any `json:"data,omitempty"`
	TestOf   int64          `json:"test_of,omitempty"` // see TransactionalRequest.TestOf
	Test     bool           `json:"test,omitempty"`    // a campaign's test send
	// Placement is a placement test's token (TransactionalRequest.Placement).
	Placement string `json:"placement,omitempty"`
}

// campaignState is what the engine keeps of a running campaign.
type campaignState struct {
	id        int64
	status    atomic.Value // string
	comp      *compiled
	params    *msgParams
	pool      []*sourceIP
	strategy  string
	poolKey   string
	tname     string
	transport Transport
	matDone   atomic.Bool
	// poolHeld is set while the campaign's IP pool is paused by the
	// blocklist rule (models.IPPool.PausedReason): nothing of the
	// campaign is claimed or sent then.
	poolHeld atomic.Bool
	// variants: an A/B test's versions by Variant.Idx (variant.go).
	variants map[int]variantMsg
}

func (c *campaignState) running() bool { return c.status.Load() == models.CampaignRunning }

// sending reports whether the campaign's mail may go out now: it runs
// and its pool is not held.
func (c *campaignState) sending() bool { return c.running() && !c.poolHeld.Load() }

// txState is a transactional job's template and sender.
type txState struct {
	comp   *compiled
	params *msgParams
	data   map[string]any
}

type txTemplate struct {
	comp    *compiled
	updated time.Time
	loaded  time.Time
}

// prepareCampaign compiles a campaign's content and loads its sender,
// keys and pool.
func (e *Engine) prepareCampaign(ctx context.Context, id int64) (*campaignState, error) {
	c, err := e.store.Campaign(ctx, id)
	if err != nil {
		return nil, err
	}
	comp, params, sd, copts, err := e.campaignMessage(ctx, c)
	if err != nil {
		return nil, err
	}
	if comp.linkIDs, err = e.store.EnsureLinks(ctx, id, comp.links); err != nil {
		return nil, err
	}
	cs := &campaignState{id: id, comp: comp, params: params, tname: c.Transport}
	cs.status.Store(c.Status)
	if err := e.prepareVariants(ctx, cs, c, sd, copts); err != nil {
		return nil, err
	}
	var ok bool
	if cs.transport, ok = e.transports()[c.Transport]; !ok {
		return nil, fmt.Errorf("unknown transport %q", c.Transport)
	}
	cs.pool, cs.strategy, cs.poolKey, err = e.pool(ctx, c.IPPoolID)
	if err != nil {
		return nil, err
	}
	cs.matDone.Store(c.MaterializedAt != nil)
	return cs, nil
}

// campaignMessage is what every message of campaign c shares: its content
// compiled with the tracking it sends with, and its sender and DKIM key.
// Sending (prepareCampaign) and the checklist's sample message
// (SampleMessage) both start here. The tracked links have no ids yet.
func (e *Engine) campaignMessage(ctx context.Context, c *models.Campaign) (*compiled, *msgParams, *models.SendingDomain, compileOptions, error) {
	// With tracking off for the whole organisation, messages carry no
	// pixel and their links go straight to their targets.
	track := true
	if env := e.env.Load(); env != nil && env.trackingOff {
		track = false
	}
	copts := compileOptions{TrackClicks: track && c.TrackClicks, TrackOpens: track && c.TrackOpens, UTM: c.UTM, CampaignName: c.Name}
	comp, err := compileContent("campaign"+strconv.FormatInt(c.ID, 10), ContentOf(c), copts)
	if err != nil {
		return nil, nil, nil, copts, fmt.Errorf("campaign %q: %w", c.Name, err)
	}
	var sd *models.SendingDomain
	if c.SendingDomainID != nil {
		if sd, err = e.store.SendingDomain(ctx, *c.SendingDomainID); err != nil {
			return nil, nil, nil, copts, err
		}
	}
	params, err := e.senderParams(ctx, c.FromEmail, c.FromName, c.ReplyTo, sd)
	if err != nil {
		return nil, nil, nil, copts, err
	}
	params.campaignID, params.campaignName, params.listHeaders = c.ID, c.Name, true
	return comp, params, sd, copts, nil
}

// senderParams builds the per-sender message parameters. The key that
// signs is models.SigningDomain's choice between chosen (a campaign's
// sending domain; nil for none) and the sending domains covering the From
// domain, the same decision the pre-send checklist reports. The addresses
// are checked again here (HeaderAddress), for rows written before the
// checks existed.
func (e *Engine) senderParams(ctx context.Context, from, fromName, replyTo string, chosen *models.SendingDomain) (*msgParams, error) {
	from, err := HeaderAddress(from)
	if err != nil {
		return nil, fmt.Errorf("from: %w", err)
	}
	if replyTo != "" {
		if replyTo, err = HeaderAddress(replyTo); err != nil {
			return nil, fmt.Errorf("reply-to: %w", err)
		}
	}
	domain := models.EmailDomain(from)
	covering, err := e.store.SendingDomainsCovering(ctx, domain)
	if err != nil {
		return nil, err
	}
	sd := models.SigningDomain(covering, chosen, domain)
	snd, err := newSender(fromName, from, replyTo)
	if err != nil {
		return nil, err
	}
	p := &msgParams{sender: snd, domain: domain, returnPath: domain}
	if sd == nil {
		if _, seen := e.warned.LoadOrStore(domain, true); !seen {
			e.log.Warn("no sending domain covers the From domain: mail goes out unsigned", "from", from)
		}
		return p, nil
	}
	p.domain, p.returnPath = sd.Domain, sd.ReturnPathDomain
	e.mu.Lock()
	s, ok := e.signers[sd.Domain+"/"+sd.Selector]
	e.mu.Unlock()
	if !ok {
		keys, err := sd.Keys(e.secret)
		if err != nil {
			return nil, err
		}
		s = newDKIMSigner(keys)
		e.mu.Lock()
		e.signers[sd.Domain+"/"+sd.Selector] = s
		e.mu.Unlock()
	}
	p.signer = s
	return p, nil
}

// pool returns the source addresses of an IP pool (nil: the default
// address chosen by the OS).
func (e *Engine) pool(ctx context.Context, id *int64) ([]*sourceIP, string, string, error) {
	if id == nil {
		return []*sourceIP{e.source("", "", 1, nil, 0)}, models.PoolRoundRobin, "default", nil
	}
	p, err := e.store.IPPool(ctx, *id)
	if err != nil {
		return nil, "", "", err
	}
	ips, err := e.store.SendingIPs(ctx, *id)
	if err != nil {
		return nil, "", "", err
	}
	if len(ips) == 0 {
		return nil, "", "", fmt.Errorf("IP pool %q has no active address", p.Name)
	}
	var out []*sourceIP
	for _, ip := range ips {
		s := e.source(ip.Address, ip.HELO, ip.Weight, ip.WarmupStart, ip.PerSecond)
		if ip.WarmupStart != nil {
			day := time.Now().UTC().Truncate(24 * time.Hour)
			if n, err := e.store.SentFromIPSince(ctx, ip.Address, day); err == nil {
				s.mu.Lock()
				s.rollDay(time.Now())
				if n > s.sentToday {
					s.sentToday = n
				}
				s.mu.Unlock()
			}
		}
		out = append(out, s)
	}
	return out, p.Strategy, "pool" + strconv.FormatInt(p.ID, 10), nil
}

func (e *Engine) source(addr, helo string, weight int, warm *time.Time, perSecond float64) *sourceIP {
	e.mu.Lock()
	defer e.mu.Unlock()
	s, ok := e.sources[addr]
	if !ok {
		s = &sourceIP{addr: addr}
		e.sources[addr] = s
	}
	s.mu.Lock()
	s.helo, s.weight, s.warmStart, s.schedule = helo, max(1, weight), warm, e.o.Warmup
	s.setRate(perSecond)
	s.mu.Unlock()
	return s
}

// txFor prepares a transactional job: template (cached for a few seconds)
// and sender.
func (e *Engine) txFor(ctx context.Context, c *models.Claimed) (*txState, error) {
	var d txData
	if err := json.Unmarshal([]byte(c.Data), &d); err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	e.mu.Lock()
	tt := e.txTmpl[c.TemplateID]
	e.mu.Unlock()
	// A test send always reads the template: it follows an edit at once.
	if tt == nil || d.Test || time.Since(tt.loaded) > 5*time.Second {
		t, err := e.store.Template(ctx, c.TemplateID)
		if err != nil {
			return nil, err
		}
		if tt == nil || !t.UpdatedAt.Equal(tt.updated) {
			comp, err := compileTemplate("tx"+strconv.FormatInt(t.ID, 10), t.Subject, t.HTML, t.Text, compileOptions{})
			if err != nil {
				return nil, fmt.Errorf("template %q: %w", t.Name, err)
			}
			tt = &txTemplate{comp: comp, updated: t.UpdatedAt}
		}
		tt.loaded = time.Now()
		e.mu.Lock()
		e.txTmpl[c.TemplateID] = tt
		e.mu.Unlock()
	}
	p, err := e.senderParams(ctx, d.From, d.FromName, d.ReplyTo, nil)
	if err != nil {
		return nil, err
	}
	if d.Test || d.Placement != "" {
		tp := *p
		tp.testLinks = d.Test
		tp.placement = d.Placement
		p = &tp
	}
	comp := tt.comp
	if d.Test && d.TestOf != 0 {
		// A campaign's test send shows the campaign's own content, as
		// saved now.
		cp, err := e.store.Campaign(ctx, d.TestOf)
		if err != nil {
			return nil, err
		}
		if comp, err = compileContent("test"+strconv.FormatInt(cp.ID, 10), ContentOf(cp), compileOptions{}); err != nil {
			return nil, fmt.Errorf("campaign %q: %w", cp.Name, err)
		}
		return &txState{comp: comp, params: p, data: d.Data}, nil
	}
	if d.Subject != "" {
		// A campaign's test send: its own subject over the template's.
		sub, err := compileSubject("tx", d.Subject)
		if err != nil {
			return nil, fmt.Errorf("subject: %w", err)
		}
		c := *comp
		c.subject = sub
		comp = &c
	}
	return &txState{comp: comp, params: p, data: d.Data}, nil
}

// render builds and signs one job's message.
func (e *Engine) render(j *job, now time.Time) (*rendered, error) {
	env := e.env.Load()
	rc := &recipient{deliveryID: j.c.ID, subscriberID: j.c.SubscriberID, listID: j.c.ListID,
		email: j.c.Email, name: j.c.Name, attributes: j.c.Attributes}
	var (
		comp *compiled
		p    *msgParams
	)
	if j.camp != nil {
		comp, p = j.camp.forVariant(j.c.Variant)
	} else {
		comp, p = j.tx.comp, j.tx.params
		rc.data, rc.attributes = j.tx.data, j.tx.data
	}
	msg, err := env.render(comp, p, rc, now)
	if err != nil {
		return nil, err
	}
	if msg.sig, err = p.signer.sign(msg.buf.Bytes()); err != nil {
		msg.release()
		return nil, err
	}
	return msg, nil
}

// finish records a job's outcome: the delivery row (batched; the job stays
// in flight until it is written), the metrics and the attempt's log line.
func (e *Engine) finish(j *job, d *destination, o models.Outcome, messageID string) {
	o.MessageID, o.LeaseGen = messageID, j.c.LeaseGen
	e.mu.Lock()
	j.settled = true
	e.mu.Unlock()
	dest := ""
	if d != nil {
		dest = d.routeKey
	}
	e.metrics.outcome(dest, o.Status)
	// Typed attributes: the line is written for every message, and Info's
	// untyped arguments cost a conversion each.
	e.log.LogAttrs(context.Background(), slog.LevelInfo, "delivery attempt", slog.Int64("campaign", j.c.CampaignID),
		slog.Int64("delivery", j.c.ID), slog.String("message_id", messageID), slog.String("destination", dest),
		slog.String("domain", j.c.Domain), slog.String("source_ip", o.SourceIP), slog.String("mx", o.MXHost),
		slog.Int("code", o.Code), slog.String("enhanced", o.Enhanced), slog.String("response", o.Text), slog.String("status", o.Status))
	e.out.add(o)
}

// release hands a job back to the database unattempted, due at next.
func (e *Engine) release(j *job, next time.Time) {
	e.mu.Lock()
	settled := j.settled
	j.settled = true
	e.mu.Unlock()
	if settled {
		return
	}
	status := models.DeliveryQueued
	if j.c.Attempts > 0 {
		status = models.DeliveryDeferred
	}
	e.out.add(models.Outcome{ID: j.c.ID, LeaseGen: j.c.LeaseGen, CampaignID: j.c.CampaignID, Status: status, At: time.Now(), NextAttempt: next})
}
