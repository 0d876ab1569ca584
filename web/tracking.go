package web

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/herald-mail/herald/internal/token"
	"github.com/herald-mail/herald/models"
	"github.com/herald-mail/herald/views"
)

// TrackingOptions tune the tracker. The zero value is ready to use.
type TrackingOptions struct {
	// Buffer is how many events may wait in memory for the writer. Zero
	// means 65536. When it is full, requests wait for room rather than lose
	// an event.
	Buffer int
	// BatchSize is the most events written in one transaction. Zero means
	// 2000.
	BatchSize int
	// FlushEvery is the longest an event waits in memory before it is
	// written. Zero means 250ms.
	FlushEvery time.Duration
	// ScannerDelay: a click sooner than this after the message was sent is
	// taken for a security scanner's. Zero means 10s.
	ScannerDelay time.Duration
	// ScannerBurst: clicks on two different links of one delivery within
	// this span are taken for a scanner following every link, and all the
	// delivery's clicks in the span are flagged. Zero means 2s.
	ScannerBurst time.Duration
	// CacheSize is how many deliveries the tracker remembers, so repeated
	// opens and clicks skip the database. Zero means 100000.
	CacheSize int
	// SettingsEvery is how often the tracking mode setting is re-read.
	// Zero means 5s.
	SettingsEvery time.Duration
}

func (o *TrackingOptions) defaults() {
	if o.Buffer <= 0 {
		o.Buffer = 65536
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 2000
	}
	if o.FlushEvery <= 0 {
		o.FlushEvery = 250 * time.Millisecond
	}
	if o.ScannerDelay <= 0 {
		o.ScannerDelay = 10 * time.Second
	}
	if o.ScannerBurst <= 0 {
		o.ScannerBurst = 2 * time.Second
	}
	if o.CacheSize <= 0 {
		o.CacheSize = 100000
	}
	if o.SettingsEvery <= 0 {
		o.SettingsEvery = 5 * time.Second
	}
}

// Tracking serves the public endpoints that messages link to: the open
// pixel, click redirects and one-click unsubscribe. Opens and clicks are
// answered at once and recorded by a background writer in batches; Close
// writes whatever is still buffered.
type Tracking struct {
	store *models.Store
	keys  *token.Keyring
	log   *slog.Logger
	opts  TrackingOptions
	now   func() time.Time

	mu     sync.RWMutex // held for reading while sending to events; Close takes it to close the channel
	closed bool
	events chan pending
	done   chan struct{} // closed when the writer has written everything

	deliveries *refCache
	linksMu    sync.RWMutex
	campaigns  map[int64]*campaignLinks

	mode       atomic.Pointer[modeState]
	refreshing atomic.Bool
}

// pending is an event on its way to the writer.
type pending struct {
	models.Event
	// needRef: the writer looks the delivery up to fill in the subscriber
	// (and the campaign of an open), drops the event when the delivery no
	// longer exists, and flags a click sooner than ScannerDelay after the
	// send.
	needRef bool
	// anon: aggregate tracking mode; the writer stores the event without
	// delivery, subscriber, address or User-Agent.
	anon bool
}

// modeState is the tracking mode setting and when it was read.
type modeState struct {
	mode string
	at   time.Time
}

// campaignLinks are a campaign's tracked links, loaded on its first click.
type campaignLinks struct {
	loaded time.Time
	links  map[int64]string // link id → redirect URL (with UTM parameters when the campaign asks)
}

// NewTracking starts the tracker's writer; call Close to stop it.
func NewTracking(store *models.Store, keys *token.Keyring, log *slog.Logger, opts TrackingOptions) *Tracking {
	opts.defaults()
	t := &Tracking{
		store: store, keys: keys, log: log, opts: opts, now: time.Now,
		events:     make(chan pending, opts.Buffer),
		done:       make(chan struct{}),
		deliveries: newRefCache(opts.CacheSize),
		campaigns:  map[int64]*campaignLinks{},
	}
	go t.write()
	return t
}

// testLinkPage answers the links of a campaign's test send: what the link
// does in the campaign itself. It changes nothing.
func testLinkPage(store *models.Store, what string) echo.HandlerFunc {
	return func(c echo.Context) error {
		return renderPublic(c, http.StatusOK, views.TestLinkPage(brandOf(c.Request().Context(), store), what))
	}
}

// Close stops accepting events into the buffer and waits, until ctx ends,
// for the writer to store everything buffered. Requests still arriving
// after Close are recorded synchronously, so stop the HTTP server first.
func (t *Tracking) Close(ctx context.Context) error {
	t.mu.Lock()
	if !t.closed {
		t.closed = true
		close(t.events)
	}
	t.mu.Unlock()
	select {
	case <-t.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// pixel is a transparent 1×1 GIF.
var pixel = []byte("GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")

// The no-store headers, built once: handlers share the slices (nothing
// downstream modifies header values).
var (
	hdrCacheControl = []string{"no-store, no-cache, must-revalidate, max-age=0, private"}
	hdrPragma       = []string{"no-cache"}
	hdrExpires      = []string{"0"}
	hdrRobots       = []string{"noindex, nofollow"}
	hdrGIF          = []string{"image/gif"}
	hdrPixelLen     = []string{strconv.Itoa(len(pixel))}
)

func noStore(c echo.Context) {
	h := c.Response().Header()
	h["Cache-Control"] = hdrCacheControl
	h["Pragma"] = hdrPragma
	h["Expires"] = hdrExpires
	h["X-Robots-Tag"] = hdrRobots
}

// trackingMode returns the tracking mode setting, read at most every
// SettingsEvery: in the background once it has been read the first time,
// so requests never wait on the database for it.
func (t *Tracking) trackingMode(ctx context.Context) string {
	st := t.mode.Load()
	if st == nil {
		return t.loadMode(ctx)
	}
	if t.now().Sub(st.at) > t.opts.SettingsEvery && t.refreshing.CompareAndSwap(false, true) {
		go func() {
			defer t.refreshing.Store(false)
			t.loadMode(context.Background())
		}()
	}
	return st.mode
}

// loadMode reads the tracking mode setting. When it cannot be read, the
// mode stays what it was (full at first) and is tried again after
// SettingsEvery.
func (t *Tracking) loadMode(ctx context.Context) string {
	v, err := t.store.Setting(context.WithoutCancel(ctx), models.SettingTrackingMode)
	if err != nil {
		t.log.Error("reading the tracking mode", "err", err)
		v = models.TrackingFull
		if st := t.mode.Load(); st != nil {
			v = st.mode
		}
	}
	switch v {
	case models.TrackingAggregate, models.TrackingOff:
	default:
		v = models.TrackingFull
	}
	t.mode.Store(&modeState{mode: v, at: t.now()})
	return v
}

// open answers the open pixel. A forged token gets 404; a genuine one for
// a delivery that no longer exists still gets the pixel (unrecorded), so
// old mail keeps rendering.
func (t *Tracking) open(c echo.Context) error {
	id, err := t.keys.Delivery(c.Param("token"), token.Open)
	if err != nil {
		return c.NoContent(http.StatusNotFound)
	}
	req := c.Request()
	if mode := t.trackingMode(req.Context()); mode != models.TrackingOff {
		// The pixel needs nothing from the database: a delivery not in
		// memory is looked up by the writer, a batch at a time, and an
		// event for one that no longer exists is dropped there.
		p := pending{Event: models.Event{DeliveryID: id, Kind: models.EventOpen, CreatedAt: t.now()}, anon: mode == models.TrackingAggregate}
		if ref, ok := t.deliveries.get(id); ok {
			p.CampaignID, p.SubscriberID = ref.CampaignID, ref.SubscriberID
		} else {
			p.needRef = true
		}
		p.UserAgent, p.IP = req.UserAgent(), c.RealIP()
		p.Machine = machineOpen(p.UserAgent, p.IP)
		t.enqueue(req.Context(), p)
	}
	noStore(c)
	h := c.Response().Header()
	h["Content-Type"] = hdrGIF
	h["Content-Length"] = hdrPixelLen
	c.Response().WriteHeader(http.StatusOK)
	_, err = c.Response().Write(pixel)
	return err
}

// click redirects to the URL stored for the token's link, never to one
// taken from the request. The link must belong to the token's campaign
// (for older tokens without one, the delivery's). HEAD requests (link
// checkers) get the same answer but are not recorded.
func (t *Tracking) click(c echo.Context) error {
	deliveryID, linkID, campaignID, err := t.keys.ClickRef(c.Param("token"))
	if err != nil {
		return c.NoContent(http.StatusNotFound)
	}
	req := c.Request()
	ctx := req.Context()
	var ref models.DeliveryRef
	known := false
	if campaignID == 0 {
		// An older token: the delivery says which campaign it is of.
		if ref, err = t.delivery(ctx, deliveryID); errors.Is(err, models.ErrNotFound) {
			return c.NoContent(http.StatusNotFound)
		} else if err != nil {
			return err
		}
		campaignID, known = ref.CampaignID, true
	} else {
		ref, known = t.deliveries.get(deliveryID)
	}
	target, err := t.link(ctx, campaignID, linkID)
	if errors.Is(err, models.ErrNotFound) {
		t.log.Warn("click: no such link in the campaign", "delivery", deliveryID, "campaign", campaignID, "link", linkID)
		return c.NoContent(http.StatusNotFound)
	} else if err != nil {
		return err
	}
	if req.Method == http.MethodGet {
		if mode := t.trackingMode(ctx); mode != models.TrackingOff {
			p := pending{Event: models.Event{DeliveryID: deliveryID, CampaignID: campaignID, LinkID: linkID, Kind: models.EventClick,
				IP: c.RealIP(), UserAgent: req.UserAgent(), CreatedAt: t.now()}, anon: mode == models.TrackingAggregate}
			p.Machine = machineUA(p.UserAgent)
			if known && ref.CampaignID == campaignID {
				p.SubscriberID = ref.SubscriberID
				p.Machine = p.Machine || scannerDelay(ref, p.CreatedAt, t.opts.ScannerDelay)
			} else {
				p.needRef = true
			}
			t.enqueue(ctx, p)
		}
	}
	noStore(c)
	return c.Redirect(http.StatusFound, target)
}

// scannerDelay says whether a click at came too soon after the delivery
// was sent to be a person's.
func scannerDelay(ref models.DeliveryRef, at time.Time, delay time.Duration) bool {
	return !ref.SentAt.IsZero() && at.Sub(ref.SentAt) < delay
}

// Machine traffic. These are heuristics, documented so reports can say
// what "human" means:
//
//   - No User-Agent: browsers and mail clients always send one.
//   - Apple Mail Privacy Protection fetches every remote image when a
//     message arrives, through Apple's proxies, whether or not anyone reads
//     it. The proxies send the bare User-Agent "Mozilla/5.0" (real clients
//     send a full one) and connect from Apple's 17.0.0.0/8. Either sign
//     flags an open. (Gmail's image proxy, by contrast, fetches when the
//     reader opens the message, so it counts as human.)
//   - Crawlers, link previewers, HTTP libraries and mail-security gateways
//     that name themselves in the User-Agent (machineAgents).
//   - Clicks within ScannerDelay of the send (a scanner follows links as
//     the message lands), and clicks on several links of one delivery
//     within ScannerBurst (handled by the writer, which sees every click).
var machineAgents = []string{
	"bot/", "bot;", "bot ", "crawler", "spider", "slackbot", "facebookexternalhit", "linkexpanding",
	"python-requests", "python-urllib", "curl/", "wget/", "go-http-client", "libwww-perl", "java/",
	"headlesschrome", "phantomjs", "barracuda", "mimecast", "proofpoint", "trendmicro",
}

func machineUA(ua string) bool {
	if strings.TrimSpace(ua) == "" {
		return true
	}
	l := strings.ToLower(ua)
	for _, m := range machineAgents {
		if strings.Contains(l, m) {
			return true
		}
	}
	return false
}

// appleNet holds Apple's addresses, from which Mail Privacy Protection
// prefetches.
var appleNet = &net.IPNet{IP: net.IPv4(17, 0, 0, 0).To4(), Mask: net.CIDRMask(8, 32)}

func machineOpen(ua, ip string) bool {
	if ua == "Mozilla/5.0" || machineUA(ua) {
		return true
	}
	a := net.ParseIP(ip)
	return a != nil && appleNet.Contains(a)
}

// record hands an event to the writer, waiting for room when the buffer is
// full. After Close it writes the event itself.
func (t *Tracking) record(ctx context.Context, ev models.Event) {
	t.enqueue(ctx, pending{Event: ev})
}

// enqueue is record for an event that may need the writer's completion.
func (t *Tracking) enqueue(ctx context.Context, ev pending) {
	t.mu.RLock()
	if !t.closed {
		select {
		case t.events <- ev:
		case <-ctx.Done():
			t.log.Warn("event dropped: request ended while the buffer was full", "kind", ev.Kind, "delivery", ev.DeliveryID)
		}
		t.mu.RUnlock()
		return
	}
	t.mu.RUnlock()
	t.flush([]pending{ev}, nil)
}

// delivery returns a delivery's ids and send time, from memory when it can.
func (t *Tracking) delivery(ctx context.Context, id int64) (models.DeliveryRef, error) {
	if r, ok := t.deliveries.get(id); ok {
		return r, nil
	}
	r, err := t.store.DeliveryRef(ctx, id)
	if err != nil {
		return models.DeliveryRef{}, err
	}
	// A delivery not sent yet may still change; only sent ones are kept.
	if !r.SentAt.IsZero() {
		t.deliveries.put(*r)
	}
	return *r, nil
}

// link returns where a tracked link of a campaign redirects. Links never
// change once a campaign sends, so a campaign's links are loaded in one
// query on its first click and kept for the life of the process (for a
// bounded number of campaigns). A link not among them is looked for again
// at most once a second, in case it was added after they were loaded.
func (t *Tracking) link(ctx context.Context, campaignID, linkID int64) (string, error) {
	t.linksMu.RLock()
	cl := t.campaigns[campaignID]
	t.linksMu.RUnlock()
	if cl != nil {
		if u, ok := cl.links[linkID]; ok {
			return u, nil
		}
		if t.now().Sub(cl.loaded) < time.Second {
			return "", models.ErrNotFound
		}
	}
	tls, err := t.store.CampaignTrackedLinks(ctx, campaignID)
	if err != nil {
		return "", err
	}
	cl = &campaignLinks{loaded: t.now(), links: make(map[int64]string, len(tls))}
	for _, tl := range tls {
		// The mailer tracks only http(s) links; anything else is not ours
		// to redirect to.
		if !isWebURL(tl.URL) {
			continue
		}
		u := tl.URL
		if tl.UTM {
			u = withUTM(u, tl.CampaignName)
		}
		cl.links[tl.ID] = u
	}
	t.linksMu.Lock()
	if len(t.campaigns) >= 1000 {
		clear(t.campaigns)
	}
	t.campaigns[campaignID] = cl
	t.linksMu.Unlock()
	if u, ok := cl.links[linkID]; ok {
		return u, nil
	}
	return "", models.ErrNotFound
}

func isWebURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// withUTM adds the UTM parameters a link lacks, leaving its own query (order
// and encoding) and fragment exactly as they were.
func withUTM(raw, campaign string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	have := u.Query()
	add := url.Values{}
	for _, kv := range [][2]string{{"utm_source", "herald"}, {"utm_medium", "email"}, {"utm_campaign", campaign}} {
		if !have.Has(kv[0]) {
			add.Set(kv[0], kv[1])
		}
	}
	if len(add) == 0 {
		return raw
	}
	base, frag, hasFrag := strings.Cut(raw, "#")
	switch {
	case !strings.Contains(base, "?"):
		base += "?"
	case !strings.HasSuffix(base, "?") && !strings.HasSuffix(base, "&"):
		base += "&"
	}
	base += add.Encode()
	if hasFrag {
		base += "#" + frag
	}
	return base
}

// refCache is a bounded, sharded map of deliveries. When a shard is full an
// arbitrary entry makes room: a campaign's opens spread over millions of
// deliveries, so any entry is as good a victim as another.
type refCache struct {
	per    int
	shards [16]struct {
		mu sync.Mutex
		m  map[int64]models.DeliveryRef
	}
}

func newRefCache(size int) *refCache {
	c := &refCache{per: max(size/16, 1)}
	for i := range c.shards {
		c.shards[i].m = make(map[int64]models.DeliveryRef)
	}
	return c
}

func (c *refCache) get(id int64) (models.DeliveryRef, bool) {
	s := &c.shards[id&15]
	s.mu.Lock()
	r, ok := s.m[id]
	s.mu.Unlock()
	return r, ok
}

func (c *refCache) put(r models.DeliveryRef) {
	s := &c.shards[r.ID&15]
	s.mu.Lock()
	if len(s.m) >= c.per {
		for k := range s.m {
			delete(s.m, k)
			break
		}
	}
	s.m[r.ID] = r
	s.mu.Unlock()
}

// lastClick is the latest click the writer saw for a delivery.
type lastClick struct {
	at       time.Time
	link     int64
	campaign int64
	gen      int // batch generation it was in
	idx      int // its index in that batch
}

// write is the background writer: it gathers events into batches of up to
// BatchSize, writes a batch when it is full or FlushEvery has passed, and
// writes the rest once Close closes the channel.
func (t *Tracking) write() {
	defer close(t.done)
	batch := make([]pending, 0, t.opts.BatchSize)
	var marks []models.MachineMark
	recent := map[int64]lastClick{}
	gen := 0
	tick := time.NewTicker(t.opts.FlushEvery)
	defer tick.Stop()
	flush := func() {
		if len(batch) > 0 {
			t.flush(batch, marks)
		}
		batch, marks = batch[:0], marks[:0]
		gen++
		cut := t.now().Add(-2 * t.opts.ScannerBurst)
		for id, lc := range recent {
			if lc.at.Before(cut) {
				delete(recent, id)
			}
		}
	}
	for {
		select {
		case ev, ok := <-t.events:
			if !ok {
				flush()
				return
			}
			if ev.Kind == models.EventClick {
				if lc, seen := recent[ev.DeliveryID]; seen && lc.link != ev.LinkID && absDur(ev.CreatedAt.Sub(lc.at)) <= t.opts.ScannerBurst {
					ev.Machine = true
					if lc.gen == gen {
						batch[lc.idx].Machine = true
					} else if !ev.anon {
						marks = append(marks, models.MachineMark{CampaignID: lc.campaign, DeliveryID: ev.DeliveryID, Since: lc.at})
					}
				}
				recent[ev.DeliveryID] = lastClick{at: ev.CreatedAt, link: ev.LinkID, campaign: ev.CampaignID, gen: gen, idx: len(batch)}
			}
			batch = append(batch, ev)
			if len(batch) >= t.opts.BatchSize {
				flush()
			}
		case <-tick.C:
			flush()
		}
	}
}

// resolve completes the events that need their delivery looked up (see
// pending.needRef), from memory or with one query per batch, strips the
// identity from aggregate-mode events, and returns what is to be stored:
// events of deliveries that no longer exist (or are of another campaign
// than the click's token says) are dropped.
func (t *Tracking) resolve(ctx context.Context, batch []pending) []models.Event {
	var ids []int64
	for i := range batch {
		p := &batch[i]
		if !p.needRef {
			continue
		}
		if r, ok := t.deliveries.get(p.DeliveryID); ok {
			t.complete(p, r)
		} else {
			ids = append(ids, p.DeliveryID)
		}
	}
	var refs map[int64]models.DeliveryRef
	if len(ids) > 0 {
		wait := 50 * time.Millisecond
		for attempt := 1; ; attempt++ {
			var err error
			if refs, err = t.store.DeliveryRefs(ctx, ids); err == nil {
				break
			} else if attempt == 10 {
				// Better stored without subscriber than lost.
				t.log.Error("resolving tracked deliveries failed", "err", err, "events", len(ids))
				refs = nil
				for i := range batch {
					batch[i].needRef = false
				}
				break
			}
			time.Sleep(wait)
			wait = min(2*wait, 5*time.Second)
		}
	}
	out := make([]models.Event, 0, len(batch))
	for i := range batch {
		p := &batch[i]
		if p.needRef {
			r, ok := refs[p.DeliveryID]
			if !ok || (p.CampaignID != 0 && p.CampaignID != r.CampaignID) {
				continue
			}
			if !r.SentAt.IsZero() {
				t.deliveries.put(r)
			}
			t.complete(p, r)
		}
		if p.anon {
			p.DeliveryID, p.SubscriberID, p.IP, p.UserAgent = 0, 0, "", ""
		}
		out = append(out, p.Event)
	}
	return out
}

// complete fills in an event from its delivery.
func (t *Tracking) complete(p *pending, r models.DeliveryRef) {
	if p.CampaignID != 0 && p.CampaignID != r.CampaignID {
		return // dropped by resolve
	}
	p.needRef = false
	p.CampaignID, p.SubscriberID = r.CampaignID, r.SubscriberID
	if p.Kind == models.EventClick && scannerDelay(r, p.CreatedAt, t.opts.ScannerDelay) {
		p.Machine = true
	}
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// flush writes one batch and applies its scanner marks in one
// transaction, retrying with backoff while the database is unavailable;
// after about half a minute of failures it gives the batch up and says so
// in the log.
func (t *Tracking) flush(batch []pending, marks []models.MachineMark) {
	ctx := context.Background()
	evs := t.resolve(ctx, batch)
	wait := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := t.store.InsertEventsMarking(ctx, evs, marks)
		if err == nil {
			return
		}
		if attempt == 10 {
			t.log.Error("tracking events lost", "err", err, "events", len(evs), "marks", len(marks))
			return
		}
		t.log.Warn("writing tracking events failed; retrying", "err", err, "events", len(evs), "attempt", attempt)
		time.Sleep(wait)
		wait = min(2*wait, 5*time.Second)
	}
}
