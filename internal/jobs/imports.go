// Package jobs runs Herald's background work that any node of a cluster
// may do but only one should: CSV imports (each held by one node under a
// lease on its row, resumed by another when that node stops or dies) and
// the periodic jobs (retention, session cleanup), each period's run taken
// by one node. cmd/herald serve starts them; every node runs the same.
package jobs

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/herald-mail/herald/models"
)

// Imports runs CSV imports on this node: the ones started here at once
// (Start) and, every few seconds, any import that waits for a node
// because the one running it stopped or died (Run).
type Imports struct {
	store *models.Store
	log   *slog.Logger
	owner string
	wg    sync.WaitGroup
	mu    sync.Mutex
	stop  map[int64]context.CancelFunc
	base  context.Context // ends when the node stops: Close
	close context.CancelFunc
}

// NewImports returns the import runner of this node; node names it in
// leases ("" means the host name).
func NewImports(store *models.Store, node string, log *slog.Logger) *Imports {
	ctx, cancel := context.WithCancel(context.Background())
	return &Imports{store: store, log: log, owner: models.NewLeaseOwner(node), stop: map[int64]context.CancelFunc{},
		base: ctx, close: cancel}
}

// Start claims the import id (queued with models.QueueImport) for this
// node and runs it in the background. When another node claimed it first
// it runs there, and Start does nothing.
func (im *Imports) Start(id int64) error {
	got, err := im.store.ClaimImport(im.base, im.owner, id)
	if err != nil || got == 0 {
		return err
	}
	im.process(got)
	return nil
}

// Run looks for imports waiting for a node every interval until ctx ends,
// and runs each one it claims.
func (im *Imports) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		for ctx.Err() == nil {
			id, err := im.store.ClaimImport(ctx, im.owner, 0)
			if err != nil && ctx.Err() == nil {
				im.log.Error("claim an import", "err", err)
			}
			if err != nil || id == 0 {
				break
			}
			im.log.Info("import claimed", "import", id, "owner", im.owner)
			im.process(id)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (im *Imports) process(id int64) {
	ctx, cancel := context.WithCancel(im.base)
	im.mu.Lock()
	im.stop[id] = cancel
	im.mu.Unlock()
	im.wg.Add(1)
	go func() {
		defer im.wg.Done()
		defer cancel()
		err := im.store.ProcessImport(ctx, id, im.owner)
		if err != nil && !errors.Is(err, context.Canceled) {
			im.log.Error("import failed", "import", id, "err", err)
		}
		im.mu.Lock()
		delete(im.stop, id)
		im.mu.Unlock()
	}()
}

// Wait lets running imports go on until ctx is done, then stops them
// after the batch in hand (they hand their lease back for another node to
// resume) and waits for them.
func (im *Imports) Wait(ctx context.Context) {
	done := make(chan struct{})
	go func() { im.wg.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-ctx.Done():
	}
	im.close()
	<-done
}
