package outhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/herald-mail/herald/models"
)

// DefaultBackoff is the wait before each retry of a failed delivery: the
// first retry after 30 seconds, the last about 21 hours after the first
// attempt; after it the delivery is given up.
var DefaultBackoff = []time.Duration{30 * time.Second, 2 * time.Minute, 10 * time.Minute, time.Hour, 4 * time.Hour, 16 * time.Hour}

// SignatureHeader carries t=<unix seconds>,v1=<hex HMAC-SHA256 of
// "<t>.<body>" keyed with the webhook's secret>.
const SignatureHeader = "Herald-Signature"

// Sign returns the Herald-Signature value of body sent at t.
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(m.Sum(nil))
}

// Verify checks a Herald-Signature header against body, refusing one
// signed more than tolerance away from now: what a receiver does.
func Verify(secret, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var ts, sig string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sig = v
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || sig == "" {
		return errors.New("outhook: malformed signature header")
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return errors.New("outhook: signature timestamp too old or in the future")
	}
	want := Sign(secret, time.Unix(sec, 0), body)
	if !hmac.Equal([]byte(want[strings.Index(want, "v1=")+3:]), []byte(sig)) {
		return errors.New("outhook: signature does not match")
	}
	return nil
}

// Client returns the HTTP client deliveries are posted with: no proxy
// (a proxy would dial the target for us, unchecked), no redirects (a
// redirect could lead anywhere), and every connection's address checked
// after resolution unless private targets are allowed. r resolves host
// names; nil is the system resolver.
func Client(allowPrivate bool, timeout time.Duration, r *net.Resolver) *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second, Control: dialControl(allowPrivate), Resolver: r}
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy: nil, DialContext: d.DialContext, ForceAttemptHTTP2: true,
			TLSHandshakeTimeout: 10 * time.Second, MaxIdleConnsPerHost: 4, IdleConnTimeout: 30 * time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Dispatcher feeds the outbox and posts what is due. One run is one job
// run (internal/jobs): the job's lease gives the feed to one node at a
// time, and each delivery is leased to the node posting it.
type Dispatcher struct {
	Store *models.Store
	// Log receives a line per failed attempt. Nil: slog.Default().
	Log *slog.Logger
	// Owner names this node in delivery leases (models.NewLeaseOwner).
	Owner string
	// Backoff is the wait before each retry; a delivery is given up after
	// len(Backoff)+1 attempts. Nil: DefaultBackoff.
	Backoff []time.Duration
	// Settle is how old a source row must be before the feed reads it
	// (see models.FeedWebhooks). Zero: 2 seconds.
	Settle time.Duration
	// Timeout bounds one POST. Zero: 10 seconds.
	Timeout time.Duration
	// Parallel is how many POSTs run at once. Zero: 8.
	Parallel int
	// Now is the clock. Nil: time.Now.
	Now func() time.Time
	// Resolver looks receivers' names up. Nil: the system resolver.
	Resolver *net.Resolver
}

func (d *Dispatcher) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

// Run feeds new events to the outbox and posts every due delivery once.
func (d *Dispatcher) Run(ctx context.Context) error {
	settle := d.Settle
	if settle <= 0 {
		settle = 2 * time.Second
	}
	st, err := d.Store.FeedWebhooks(ctx, d.now(), settle, 1000)
	if err != nil || st.Enabled == 0 {
		return err
	}
	allow, err := d.Store.Setting(ctx, models.SettingWebhookPrivate)
	if err != nil {
		return err
	}
	timeout := d.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	client := Client(allow == "on", timeout, d.Resolver)
	defer client.CloseIdleConnections()
	par := d.Parallel
	if par <= 0 {
		par = 8
	}
	for ctx.Err() == nil {
		due, err := d.Store.ClaimWebhookDeliveries(ctx, d.Owner, d.now(), timeout*6, 4*par)
		if err != nil {
			return err
		}
		if len(due) == 0 {
			return nil
		}
		var wg sync.WaitGroup
		sem := make(chan struct{}, par)
		errs := make(chan error, len(due))
		for _, w := range due {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				errs <- d.Store.RecordWebhookAttempt(ctx, d.Owner, d.post(ctx, client, w))
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				return err
			}
		}
	}
	return ctx.Err()
}

// post makes one attempt of w and says what comes next.
func (d *Dispatcher) post(ctx context.Context, client *http.Client, w models.WebhookDelivery) models.WebhookAttempt {
	start := d.now()
	a := models.WebhookAttempt{DeliveryID: w.ID, WebhookID: w.WebhookID, Attempt: w.Attempts + 1, At: start}
	body := []byte(w.Payload)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err == nil {
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", "Herald-Webhooks/1")
		req.Header.Set("Herald-Event", w.Event)
		req.Header.Set("Herald-Event-Id", w.EventID)
		req.Header.Set("Herald-Attempt", strconv.Itoa(a.Attempt))
		req.Header.Set(SignatureHeader, Sign(w.Secret, start, body))
		var resp *http.Response
		if resp, err = client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			a.Code = resp.StatusCode
		}
	}
	a.Duration = d.now().Sub(start)
	switch {
	case err == nil && a.Code >= 200 && a.Code < 300:
		a.Status = models.HookDone
		return a
	case err == nil && a.Code == http.StatusGone:
		a.Status, a.Error = models.HookGivenUp, "410 Gone: the receiver asked for no more deliveries"
		a.Disable = "The receiver answered 410 Gone on " + start.UTC().Format(time.RFC1123) + "."
		return a
	case err != nil:
		a.Error = errText(err)
	default:
		a.Error = fmt.Sprintf("HTTP %d %s", a.Code, http.StatusText(a.Code))
	}
	backoff := d.Backoff
	if backoff == nil {
		backoff = DefaultBackoff
	}
	if a.Attempt > len(backoff) {
		a.Status = models.HookGivenUp
		a.Error += fmt.Sprintf("; given up after %d attempts", a.Attempt)
		return a
	}
	a.Status, a.Next = models.HookPending, d.now().Add(backoff[a.Attempt-1])
	log := d.Log
	if log == nil {
		log = slog.Default()
	}
	log.Info("webhook delivery failed; retrying", "webhook", w.WebhookID, "event", w.EventID, "attempt", a.Attempt, "err", a.Error, "next", a.Next)
	return a
}

// errText is a transport error as the delivery log shows it: the
// refusal of a private target in its own words, the rest without the
// request's method and URL, which the log shows already.
func errText(err error) string {
	var te *TargetError
	if errors.As(err, &te) {
		return te.Msg
	}
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) {
		if inner := ue.Unwrap(); inner != nil {
			return inner.Error()
		}
	}
	return err.Error()
}
