package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"slices"
	"time"
)

// backendIdleWait bounds how long the backends may keep connections open
// after a figure's clients are done. A forwarder that needs longer is not
// passing its clients' closes on.
const backendIdleWait = 10 * time.Second

// cell is what one forwarder measured for one row: a sample per round, or
// a failure.
type cell struct {
	samples []float64
	failed  bool // the figure failed for this forwarder in some round
}

// value returns the median sample: on a noisy machine, one slow or fast
// round does not move it.
func (c cell) value() float64 {
	s := slices.Sorted(slices.Values(c.samples))
	if len(s) == 0 {
		return math.NaN()
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// results collects the table as the figures run.
type results struct {
	columns  []string                   // forwarder names, direct first
	rows     []row                      // in table order
	cells    map[string]map[string]cell // by row label, then column
	notes    []string                   // printed under the table
	errs     []error                    // failed figures of sluice or direct; any makes the exit non-zero
	peerErrs []error                    // failed figures of a peer: shown, but the peer's problem
}

// record adds what fig measured through column col in one round.
func (res *results) record(fig figure, f forwarder, out result, err error) {
	col := f.name
	var skip unsupportedError
	if errors.As(err, &skip) {
		out.notes, err = append(out.notes, skip.msg), nil // the cells stay empty
	}
	for _, note := range out.notes {
		if note = fmt.Sprintf("%s, %s: %s", fig.name, col, note); !slices.Contains(res.notes, note) {
			res.notes = append(res.notes, note)
		}
	}
	if skip.msg != "" {
		return
	}
	if err != nil {
		err = fmt.Errorf("%s through %s: %w", fig.name, col, err)
		if !f.peer {
			res.errs = append(res.errs, err)
		} else {
			// A peer that loses or mixes up data is marked, not a
			// failed run.
			res.peerErrs = append(res.peerErrs, err)
		}
	}
	for j, rw := range fig.rows {
		if j >= len(out.values) && err == nil || rw.ratioOf != nil {
			continue // a row this column has no value for (direct's CPU), or a derived one
		}
		c := res.cells[rw.label][col]
		c.failed = c.failed || err != nil
		if j < len(out.values) {
			c.samples = append(c.samples, out.values[j])
		}
		res.cells[rw.label][col] = c
	}
}

// runner runs every figure through every forwarder, one process at a time.
type runner struct {
	fwds     []forwarder
	bk       *backends
	d        time.Duration
	idleN    int
	rounds   int // times each figure runs through each forwarder; at least 1
	tmp      string
	progress io.Writer    // one line per measurement, so long runs show life
	tlsm     *tlsMaterial // the TLS figures' certificate
	tlsc     *tlsClient   // and their clients' settings
}

// run measures figs through every forwarder. The forwarders take turns
// within each figure and round, so slow drift in a noisy machine's speed
// spreads over all of them rather than favouring whichever ran first. A
// forwarder that fails a figure is not tried again in later rounds. run
// returns early only when ctx is cancelled.
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
		for round := range max(r.rounds, 1) {
			for i, f := range r.fwds {
				if fig.needsProc && f.direct() || !f.relays(fig) || res.cells[fig.rows[0].label][f.name].failed {
					continue
				}
				fmt.Fprintf(r.progress, "bench: %s through %s (round %d)\n", fig.name, f.name, round+1)
				dir := filepath.Join(r.tmp, fmt.Sprintf("%d-%d-%d-%s", fi, round, i, f.name))
				out, err := r.measure(ctx, fig, f, dir)
				if ctx.Err() != nil {
					return res, ctx.Err()
				}
				res.record(fig, f, out, err)
			}
		}
	}
	res.derive()
	return res, nil
}

// derive fills the derived rows (row.ratioOf): per column, the ratio of
// the medians of the two rows it names, where both have one.
func (res *results) derive() {
	for _, rw := range res.rows {
		if rw.ratioOf == nil {
			continue
		}
		for _, col := range res.columns {
			a, aok := res.cells[rw.ratioOf[0]][col]
			b, bok := res.cells[rw.ratioOf[1]][col]
			if !aok || !bok || a.failed || b.failed || !(b.value() > 0) {
				continue
			}
			res.cells[rw.label][col] = cell{samples: []float64{a.value() / b.value()}}
		}
	}
}

// measure starts f in front of the figure's backend, runs the figure, and
// stops f again. The error gathers everything that went wrong: the figure's
// own verdict, what the backends found, connections the forwarder left
// open, and the forwarder dying or refusing to stop.
func (r *runner) measure(ctx context.Context, fig figure, f forwarder, dir string) (result, error) {
	if fig.udp {
		return r.measureUDP(ctx, fig, f, dir)
	}
	if fig.tls != nil {
		return r.measureTLS(ctx, fig, f, dir)
	}
	if fig.listeners != nil {
		return r.measureListeners(ctx, fig, f, dir)
	}
	if fig.states != nil {
		return r.measureStates(ctx, fig, f, dir)
	}
	addr, p, err := launch(ctx, f, dir, r.bk.addr(fig.backend))
	if err != nil {
		return result{}, err
	}
	out, err := verdict(ctx, r.bk, fig.measured, env{addr: addr, proc: p, d: r.d, idleN: r.idleN})
	if p != nil {
		err = errors.Join(err, p.stop())
	}
	return out, err
}

// measured runs the figure through e and, for a forwarder and a figure
// with a CPU row, adds the forwarder's CPU time per unit of the first
// row's rate, over the figure's duration, as the next value, and then the
// busiest thread's share if the figure has that row.
func (fig figure) measured(ctx context.Context, e env) (result, error) {
	if fig.cpu == nil || e.proc == nil {
		return fig.run(ctx, e)
	}
	before, cerr := sampleCPU(e.proc, fig.busiest)
	out, err := fig.run(ctx, e)
	if cerr != nil || err != nil || len(out.values) != fig.runRows() {
		return out, err
	}
	after, cerr := sampleCPU(e.proc, fig.busiest)
	units := out.values[0] * e.d.Seconds()
	if cerr != nil || units <= 0 {
		return out, err
	}
	out.values = append(out.values, (after.total-before.total).Seconds()/units*fig.cpu.scale)
	if fig.busiest {
		_, share := busiestThread(before.threads, after.threads)
		out.values = append(out.values, 100*share)
	}
	return out, err
}

// cpuSample is a reading of a forwarder's CPU time.
type cpuSample struct {
	total   time.Duration         // its process tree's, as cpuTime reads it
	threads map[int]time.Duration // by thread, when asked for
}

// sampleCPU reads the CPU time of p's process tree and, if threads is
// set, of each of its threads.
func sampleCPU(p *proc, threads bool) (cpuSample, error) {
	pids, err := p.pids()
	if err != nil {
		return cpuSample{}, err
	}
	var s cpuSample
	if s.total, err = cpuTime(pids); err != nil || !threads {
		return s, err
	}
	s.threads, err = threadCPU(pids)
	return s, err
}

// verdict runs a figure through e and joins its own verdict with the
// backends': what they found wrong, and connections left open.
func verdict(ctx context.Context, bk *backends, run func(context.Context, env) (result, error), e env) (result, error) {
	out, runErr := run(ctx, e)
	idleErr := bk.waitIdle(backendIdleWait)
	return out, errors.Join(runErr, idleErr, bk.takeFailures())
}
