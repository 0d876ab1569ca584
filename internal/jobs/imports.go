// Package jobs runs Herald's background work that any node of a cluster
// may do but only one should: CSV imports (each held by one node under a
// lease on its row, resumed by another when that node stops or dies) and
// the periodic jobs (retention, session cleanup), each period's run taken
// by one node. cmd/herald serve starts them; every node runs the same.
package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
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
	runs  atomic.Int64 // numbers this node's claims
	wg    sync.WaitGroup
	base  context.Context // ends when Wait gives up waiting: the runs stop
	close context.CancelFunc
}

// NewImports returns the import runner of this node; node names it in
// leases ("" means the host name).
func NewImports(store *models.Store, node string, log *slog.Logger) *Imports {
	ctx, cancel := context.WithCancel(context.Background())
	return &Imports{store: store, log: log, owner: models.NewLeaseOwner(node), base: ctx, close: cancel}
}

// Start claims the import id (queued with models.QueueImport) for this
// node and runs it in the background. When another node claimed it first
// it runs there, and Start does nothing.
func (im *Imports) Start(id int64) error {
	owner := im.claimer()
	got, err := im.store.ClaimImport(im.base, owner, id)
	if err != nil || got == 0 {
		return err
	}
	im.process(got, owner)
	return nil
}

// claimer names one claim: the node and the claim's number. Each run
// holds the lease under its own name, so a run of this node whose lease
// ran out while it stalled is fenced off like another node's would be,
// when this node's Run claims the import again.
func (im *Imports) claimer() string {
	return fmt.Sprintf("%s#%d", im.owner, im.runs.Add(1))
}

// Run looks for imports waiting for a node every interval until ctx ends,
// and runs each one it claims.
func (im *Imports) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		for ctx.Err() == nil {
			owner := im.claimer()
			id, err := im.store.ClaimImport(ctx, owner, 0)
			if err != nil && ctx.Err() == nil {
				im.log.Error("claim an import", "err", err)
			}
			if err != nil || id == 0 {
				break
			}
			im.log.Info("import claimed", "import", id, "owner", owner)
			im.process(id, owner)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (im *Imports) process(id int64, owner string) {
	im.wg.Add(1)
	go func() {
		defer im.wg.Done()
		err := im.store.ProcessImport(im.base, id, owner)
		if err != nil && !errors.Is(err, context.Canceled) {
			im.log.Error("import failed", "import", id, "err", err)
		}
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
