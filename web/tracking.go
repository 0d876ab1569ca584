package web

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/herald-mail/herald/internal/token"
	"github.com/herald-mail/herald/models"
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
	events chan models.Event
	done   chan struct{} // closed when the writer has written everything

	deliveries *refCache
	linksMu    sync.RWMutex
	links      map[int64]*linkTarget
}

// linkTarget is where a tracked link sends the reader.
type linkTarget struct {
	campaignID int64
	url        string // with UTM parameters when the campaign asks for them
}

// NewTracking starts the tracker's writer; call Close to stop it.
func NewTracking(store *models.Store, keys *token.Keyring, log *slog.Logger, opts TrackingOptions) *Tracking {
	opts.defaults()
	t := &Tracking{
		store: store, keys: keys, log: log, opts: opts, now: time.Now,
		events:     make(chan models.Event, opts.Buffer),
		done:       make(chan struct{}),
		deliveries: newRefCache(opts.CacheSize),
		links:      map[int64]*linkTarget{},
	}
	go t.write()
	return t
}

// Routes registers the public tracking and unsubscribe routes on e. They
// carry no session and no CSRF check: mail clients, image proxies and
// mailbox providers call them without cookies.
func (t *Tracking) Routes(e *echo.Echo) {
	e.GET("/t/o/:token", t.open)
	e.GET("/t/c/:token", t.click)
	e.HEAD("/t/c/:token", t.click)
	e.GET("/u/:token", t.unsubscribePage)
	e.POST("/u/:token", t.unsubscribe)
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

func noStore(c echo.Context) {
	h := c.Response().Header()
	h.Set("Cache-Control", "no-store, no-cache, must-revalidate, max-age=0, private")
	h.Set("Pragma", "no-cache")
	h.Set("Expires", "0")
	h.Set("X-Robots-Tag", "noindex, nofollow")
}

// open answers the open pixel. A forged token gets 404; a genuine one for
// a delivery that no longer exists still gets the pixel (unrecorded), so
// old mail keeps rendering.
func (t *Tracking) open(c echo.Context) error {
	id, err := t.keys.Delivery(c.Param("token"), token.Open)
	if err != nil {
		return c.NoContent(http.StatusNotFound)
	}
	// The pixel needs nothing from the database: a delivery not in memory
	// is looked up by the writer, a batch at a time, and an event for one
	// that no longer exists is dropped there.
	ev := models.Event{DeliveryID: id, Kind: models.EventOpen, CreatedAt: t.now()}
	if ref, ok := t.deliveries.get(id); ok {
		ev.CampaignID, ev.SubscriberID = ref.CampaignID, ref.SubscriberID
	}
	ev.UserAgent, ev.IP = c.Request().UserAgent(), c.RealIP()
	ev.Machine = machineOpen(ev.UserAgent, ev.IP)
	t.record(c.Request().Context(), ev)
	noStore(c)
	return c.Blob(http.StatusOK, "image/gif", pixel)
}

// click redirects to the URL stored for the token's link, never to one
// taken from the request. The link must belong to the delivery's campaign.
// HEAD requests (link checkers) get the same answer but are not recorded.
func (t *Tracking) click(c echo.Context) error {
	deliveryID, linkID, err := t.keys.ClickIDs(c.Param("token"))
	if err != nil {
		return c.NoContent(http.StatusNotFound)
	}
	ctx := c.Request().Context()
	ref, err := t.delivery(ctx, deliveryID)
	if errors.Is(err, models.ErrNotFound) {
		return c.NoContent(http.StatusNotFound)
	} else if err != nil {
		return err
	}
	link, err := t.link(ctx, linkID)
	if errors.Is(err, models.ErrNotFound) {
		return c.NoContent(http.StatusNotFound)
	} else if err != nil {
		return err
	}
	if link.campaignID != ref.CampaignID {
		t.log.Warn("click: link of another campaign", "delivery", deliveryID, "campaign", ref.CampaignID, "link", linkID, "link_campaign", link.campaignID)
		return c.NoContent(http.StatusNotFound)
	}
	if c.Request().Method == http.MethodGet {
		ua, ip := c.Request().UserAgent(), c.RealIP()
		at := t.now()
		machine := machineUA(ua) || (!ref.SentAt.IsZero() && at.Sub(ref.SentAt) < t.opts.ScannerDelay)
		t.record(ctx, models.Event{DeliveryID: deliveryID, CampaignID: ref.CampaignID, SubscriberID: ref.SubscriberID,
			LinkID: linkID, Kind: models.EventClick, Machine: machine, IP: ip, UserAgent: ua, CreatedAt: at})
	}
	noStore(c)
	return c.Redirect(http.StatusFound, link.url)
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
	if err := t.store.InsertEvents(context.WithoutCancel(ctx), []models.Event{ev}); err != nil {
		t.log.Error("event lost", "err", err, "kind", ev.Kind, "delivery", ev.DeliveryID)
	}
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

// link returns where a tracked link redirects. Links never change once a
// campaign sends, so they are kept for the life of the process (a bounded
// number of them).
func (t *Tracking) link(ctx context.Context, id int64) (*linkTarget, error) {
	t.linksMu.RLock()
	l, ok := t.links[id]
	t.linksMu.RUnlock()
	if ok {
		return l, nil
	}
	tl, err := t.store.TrackedLink(ctx, id)
	if err != nil {
		return nil, err
	}
	u := tl.URL
	if !isWebURL(u) {
		// The mailer tracks only http(s) links; anything else is not ours to
		// redirect to.
		return nil, models.ErrNotFound
	}
	if tl.UTM {
		u = withUTM(u, tl.CampaignName)
	}
	l = &linkTarget{campaignID: tl.CampaignID, url: u}
	t.linksMu.Lock()
	if len(t.links) >= 10000 {
		clear(t.links)
	}
	t.links[id] = l
	t.linksMu.Unlock()
	return l, nil
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

// scanMark asks for already written clicks to be flagged as a scanner's.
type scanMark struct {
	campaign, delivery int64
	since              time.Time
}

// write is the background writer: it gathers events into batches of up to
// BatchSize, writes a batch when it is full or FlushEvery has passed, and
// writes the rest once Close closes the channel.
func (t *Tracking) write() {
	defer close(t.done)
	batch := make([]models.Event, 0, t.opts.BatchSize)
	var marks []scanMark
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
					} else {
						marks = append(marks, scanMark{lc.campaign, ev.DeliveryID, lc.at})
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

// resolve fills in the campaign and subscriber of events recorded without
// them (opens of deliveries not in memory) with one query per batch, and
// drops the events of deliveries that do not exist.
func (t *Tracking) resolve(ctx context.Context, batch []models.Event) []models.Event {
	var ids []int64
	for _, e := range batch {
		if e.CampaignID == 0 && e.SubscriberID == 0 {
			ids = append(ids, e.DeliveryID)
		}
	}
	if len(ids) == 0 {
		return batch
	}
	var refs map[int64]models.DeliveryRef
	wait := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		var err error
		if refs, err = t.store.DeliveryRefs(ctx, ids); err == nil {
			break
		} else if attempt == 10 {
			// Better stored without campaign than lost.
			t.log.Error("resolving tracked deliveries failed", "err", err, "events", len(ids))
			return batch
		}
		time.Sleep(wait)
		wait = min(2*wait, 5*time.Second)
	}
	out := batch[:0]
	for _, e := range batch {
		if e.CampaignID == 0 && e.SubscriberID == 0 {
			r, ok := refs[e.DeliveryID]
			if !ok {
				continue
			}
			e.CampaignID, e.SubscriberID = r.CampaignID, r.SubscriberID
			if !r.SentAt.IsZero() {
				t.deliveries.put(r)
			}
		}
		out = append(out, e)
	}
	return out
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// flush writes one batch, retrying with backoff while the database is
// unavailable; after about half a minute of failures it gives the batch up
// and says so in the log.
func (t *Tracking) flush(batch []models.Event, marks []scanMark) {
	ctx := context.Background()
	batch = t.resolve(ctx, batch)
	wait := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := t.store.InsertEvents(ctx, batch)
		if err == nil {
			break
		}
		if attempt == 10 {
			t.log.Error("tracking events lost", "err", err, "events", len(batch))
			return
		}
		t.log.Warn("writing tracking events failed; retrying", "err", err, "events", len(batch), "attempt", attempt)
		time.Sleep(wait)
		wait = min(2*wait, 5*time.Second)
	}
	for _, m := range marks {
		if _, err := t.store.MarkMachineClicks(ctx, m.campaign, m.delivery, m.since); err != nil {
			t.log.Error("flagging scanner clicks failed", "err", err, "campaign", m.campaign, "delivery", m.delivery)
		}
	}
}
