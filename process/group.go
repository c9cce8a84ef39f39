package process

import (
	"context"
	"sync"
)

// Group runs several processes under one context, as errgroup runs
// goroutines: the first child that fails (or fails to start) cancels the
// group's context, which terminates the others (SIGTERM, then SIGKILL
// after their grace period), and Wait returns that first failure.
//
// Create one with [NewGroup]. Its methods may be called from any
// goroutine.
type Group struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	procs  []*Process
	first  error
}

// NewGroup returns a group whose processes run under a context derived
// from ctx (nil: context.Background()), and that context, which is
// cancelled when a child fails or when Wait returns.
func NewGroup(ctx context.Context) (*Group, context.Context) {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithCancelCause(ctx)
	return &Group{ctx: ctx, cancel: cancel}, ctx
}

// Start starts role in the group. An error starting it counts as the
// group's failure too.
func (g *Group) Start(role string, opts *Options) (*Process, error) {
	p, err := Start(g.ctx, role, opts)
	if err != nil {
		g.fail(err)
		return nil, err
	}
	g.mu.Lock()
	g.procs = append(g.procs, p)
	g.mu.Unlock()
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		if err := p.Wait(); err != nil {
			g.fail(err)
		}
	}()
	return p, nil
}

func (g *Group) fail(err error) {
	g.mu.Lock()
	if g.first == nil {
		g.first = err
	}
	g.mu.Unlock()
	g.cancel(err)
}

// Wait waits for every process started so far to exit and returns the
// first failure, or nil. The processes' own results stay available from
// their Wait methods (see Processes).
func (g *Group) Wait() error {
	g.wg.Wait()
	g.cancel(nil)
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.first
}

// Processes returns the processes started in the group, in start order.
func (g *Group) Processes() []*Process {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]*Process(nil), g.procs...)
}
