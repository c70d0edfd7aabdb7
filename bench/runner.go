package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"
)

// backendIdleWait bounds how long the backends may keep connections open
// after a figure's clients are done. A forwarder that needs longer is not
// passing its clients' closes on.
const backendIdleWait = 10 * time.Second

// cell is one measured value, or why there is none.
type cell struct {
	value  float64
	failed bool // the figure failed for this forwarder
}

// results collects the table as the figures run.
type results struct {
	columns []string                   // forwarder names, direct first
	rows    []row                      // in table order
	cells   map[string]map[string]cell // by row label, then column
	notes   []string                   // printed under the table
	errs    []error                    // failed figures; any makes the exit non-zero
}

// runner runs every figure through every forwarder, one process at a time.
type runner struct {
	fwds     []forwarder
	bk       *backends
	d        time.Duration
	idleN    int
	tmp      string
	progress io.Writer // one line per measurement, so long runs show life
}

// run measures figs through every forwarder. The forwarders take turns
// within each figure, so slow drift in a noisy machine's speed spreads over
// all of them rather than favouring whichever ran first. It returns early
// only when ctx is cancelled.
func (r *runner) run(ctx context.Context, figs []figure) (*results, error) {
	res := &results{cells: make(map[string]map[string]cell)}
	for _, f := range r.fwds {
		res.columns = append(res.columns, f.name)
	}
	for fi, fig := range figs {
		res.rows = append(res.rows, fig.rows...)
		for _, rw := range fig.rows {
			res.cells[rw.label] = make(map[string]cell)
		}
		for i, f := range r.fwds {
			if fig.needsProc && f.argv == nil {
				continue
			}
			fmt.Fprintf(r.progress, "bench: %s through %s\n", fig.name, f.name)
			dir := filepath.Join(r.tmp, fmt.Sprintf("%d-%d-%s", fi, i, f.name))
			out, err := r.measure(ctx, fig, f, dir)
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
			for _, note := range out.notes {
				res.notes = append(res.notes, fmt.Sprintf("%s, %s: %s", fig.name, f.name, note))
			}
			if err != nil {
				res.errs = append(res.errs, fmt.Errorf("%s through %s: %w", fig.name, f.name, err))
			}
			for j, rw := range fig.rows {
				c := cell{failed: err != nil}
				if j < len(out.values) {
					c.value = out.values[j]
				}
				res.cells[rw.label][f.name] = c
			}
		}
	}
	return res, nil
}

// measure starts f in front of the figure's backend, runs the figure, and
// stops f again. The error gathers everything that went wrong: the figure's
// own verdict, what the backends found, connections the forwarder left
// open, and the forwarder dying or refusing to stop.
func (r *runner) measure(ctx context.Context, fig figure, f forwarder, dir string) (result, error) {
	addr, p, err := launch(ctx, f, dir, r.bk.addr(fig.backend))
	if err != nil {
		return result{}, err
	}
	out, err := verdict(ctx, r.bk, fig.run, env{addr: addr, proc: p, d: r.d, idleN: r.idleN})
	if p != nil {
		err = errors.Join(err, p.stop())
	}
	return out, err
}

// verdict runs a figure through e and joins its own verdict with the
// backends': what they found wrong, and connections left open.
func verdict(ctx context.Context, bk *backends, run func(context.Context, env) (result, error), e env) (result, error) {
	out, runErr := run(ctx, e)
	idleErr := bk.waitIdle(backendIdleWait)
	return out, errors.Join(runErr, idleErr, bk.takeFailures())
}
