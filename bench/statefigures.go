package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The state-changes figure: new connections per second through a rule
// with two backends (the echo backends), measured in one run with and
// without an operator changing the backends through the admin API at
// stateChangesPerSec meanwhile. Only sluice has this figure: it needs
// sluice's admin API, and the peers are not asked to do the same (HAProxy
// could through its runtime socket, nginx's open-source stream module
// cannot at all), so its table row has only sluice columns.
//
// The two halves take turns in one forwarder process, in quarters of the
// figure's duration ordered without, with, with, without: a machine
// whose speed drifts during the figure favours neither half. The changes
// follow stateChanges: the first backend's weight goes 1, 2, 1, …, the
// second backend goes drain, ready, …, so one backend always takes new
// connections and none of them should fail. After each quarter with
// changes both backends are set back (ready, weight 1), outside the
// measured time.

// stateChangesPerSec is how many PUTs the changer sends per second.
const stateChangesPerSec = 10

// stateFigure marks the state-changes figure: it runs through the
// forwarders' statesArgv, with an admin API.
type stateFigure struct{}

// stateSpec is what the state figure's sluice configuration says.
type stateSpec struct {
	listen, admin string
	backends      [2]string
}

// sluiceStatesNote describes sluiceStatesArgv's configuration.
func sluiceStatesNote() string {
	return fmt.Sprintf("sluice (state changes): a config file (-c), log_level warn, admin on loopback, one rule with the two echo backends (round-robin);"+
		" the changer PUTs /api/v1/rules/bench/backends/{address} %d times a second; the peers have no such figure", stateChangesPerSec)
}

// sluiceStatesArgv returns sluice's command line for the state figure: a
// config file with the admin API and one rule with two backends.
func sluiceStatesArgv(bin string) func(dir string, s stateSpec) ([]string, error) {
	return func(dir string, s stateSpec) ([]string, error) {
		text := fmt.Sprintf("log_level = \"warn\"\nadmin = %q\n\n[[rule]]\nname     = \"bench\"\nlisten   = %q\nbackends = [%q, %q]\n",
			s.admin, s.listen, s.backends[0], s.backends[1])
		path, err := writeConfig(dir, "sluice.toml", text)
		if err != nil {
			return nil, fmt.Errorf("sluice: %w", err)
		}
		return []string{bin, "-c", path, "--log-level", "warn"}, nil
	}
}

// stateFigures returns the state-changes figure.
func stateFigures() []figure {
	const without, with = "2 backends", "2 backends + state changes"
	rows := []row{}
	for _, half := range []string{without, with} {
		rows = append(rows,
			row{label: fmt.Sprintf("%s: new conns/s (%d clients)", half, connClients), format: "%.0f", cmp: plain},
			row{label: half + ": new conn errors", format: "%.0f", cmp: plain},
			row{label: "  CPU µs per conn (" + half + ")", format: "%.1f", cmp: plain},
		)
	}
	rows = append(rows,
		row{label: "  state changes/s done (PUTs answered 200)", format: "%.1f", cmp: plain},
		row{label: "  with ÷ without state changes, new conns/s", format: "%.2f", cmp: plain, ratioOf: &[2]string{rows[3].label, rows[0].label}},
	)
	return []figure{{name: "new connections with state changes", backend: echoBackend, needsProc: true, states: &stateFigure{}, rows: rows, run: stateConns}}
}

// measureStates starts f configured for the state figure, with an admin
// API on a free loopback port, runs the figure and stops f.
func (r *runner) measureStates(ctx context.Context, fig figure, f forwarder, dir string) (result, error) {
	port, err := freePort()
	if err != nil {
		return result{}, err
	}
	spec := stateSpec{admin: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		backends: [2]string{r.bk.addr(echoBackend), r.bk.addr(echoTwoBackend)}}
	addr, p, err := launchWith(ctx, f.name, dir, func(listen string) ([]string, error) {
		spec.listen = listen
		return f.statesArgv(dir, spec)
	})
	if err != nil {
		return result{}, err
	}
	api := newStateAPI(spec)
	defer api.hc.CloseIdleConnections()
	out, err := verdict(ctx, r.bk, fig.measured, env{addr: addr, proc: p, d: r.d, api: api})
	return out, errors.Join(err, p.stop())
}

// stateCounts is what one half of the figure measured.
type stateCounts struct {
	conns   connCounts
	elapsed time.Duration
	cpu     time.Duration // the forwarder's, during the measured quarters
	puts    int64         // state changes answered 200
}

// stateConns is the state figure's run: quarters without, with, with and
// without state changes, each newConns's clients for a quarter of e.d.
func stateConns(ctx context.Context, e env) (result, error) {
	if err := e.api.ready(ctx); err != nil {
		return result{}, err
	}
	var halves [2]stateCounts // without, with
	for _, with := range []int{0, 1, 1, 0} {
		if err := stateQuarter(ctx, e, with == 1, &halves[with]); err != nil {
			return result{}, err
		}
	}
	var res result
	for _, h := range halves {
		part, err := connResult(ctx, []connCounts{h.conns}, h.elapsed)
		if err != nil {
			return part, err
		}
		res.notes = append(res.notes, part.notes...)
		res.values = append(res.values, part.values...)
		res.values = append(res.values, h.cpu.Seconds()/float64(h.conns.ok)*1e6)
	}
	res.values = append(res.values, float64(halves[1].puts)/halves[1].elapsed.Seconds())
	return res, nil
}

// stateQuarter runs the clients for a quarter of e.d, with the changer if
// with is set, and adds what it measured to h. After the changes it sets
// both backends back.
func stateQuarter(ctx context.Context, e env, with bool, h *stateCounts) error {
	targets := make([]connTarget, connClients)
	for i := range targets {
		var err error
		if targets[i], err = newConnTarget(e.addr); err != nil {
			return err
		}
	}
	before, err := sampleCPU(e.proc, false)
	if err != nil {
		return err
	}
	counts := make([]connCounts, connClients)
	start := time.Now()
	until := start.Add(e.d / 4)
	var changes changer
	if with {
		changes.start(ctx, e.api, until)
	}
	var wg sync.WaitGroup
	for i := range counts {
		wg.Go(func() { counts[i] = connLoop(ctx, targets[i].cycle, until) })
	}
	wg.Wait()
	h.elapsed += time.Since(start)
	puts, perr := changes.wait()
	after, err := sampleCPU(e.proc, false)
	if err != nil {
		return err
	}
	h.cpu += after.total - before.total
	h.puts += puts
	for _, c := range counts {
		h.conns = addCounts(h.conns, c)
	}
	if !with {
		return nil
	}
	return errors.Join(perr, e.api.reset(ctx))
}

// addCounts returns the sum of two clients' counts, the first error of
// each kind kept.
func addCounts(a, b connCounts) connCounts {
	a.ok += b.ok
	a.failed += b.failed
	if a.firstErr == nil {
		a.firstErr = b.firstErr
	}
	if a.integrity == nil {
		a.integrity = b.integrity
	}
	return a
}

// stateChange is one PUT: which backend (0 or 1) and the body.
type stateChange struct {
	backend int
	body    string
}

// stateChanges is the changer's cycle: the first backend's weight 2 and
// back, the second backend drained and back. The first backend stays
// ready throughout, so every new connection has a backend.
var stateChanges = [...]stateChange{
	{0, `{"weight":2}`}, {1, `{"state":"drain"}`}, {0, `{"weight":1}`}, {1, `{"state":"ready"}`},
}

// changer PUTs stateChanges in turn, stateChangesPerSec a second, until
// a deadline.
type changer struct {
	done chan struct{} // closed when it has stopped; nil when not started
	puts int64
	err  error
}

// start begins the changes; they stop at until.
func (c *changer) start(ctx context.Context, api *stateAPI, until time.Time) {
	c.done = make(chan struct{})
	go func() {
		defer close(c.done)
		tick := time.NewTicker(time.Second / stateChangesPerSec)
		defer tick.Stop()
		for i := 0; time.Now().Before(until); i++ {
			ch := stateChanges[i%len(stateChanges)]
			if c.err = api.put(ctx, ch.backend, ch.body); c.err != nil {
				return
			}
			c.puts++
			select {
			case <-tick.C:
			case <-ctx.Done():
				c.err = ctx.Err()
				return
			}
		}
	}()
}

// wait waits for the changer to stop and returns the changes made and
// the first failure.
func (c *changer) wait() (int64, error) {
	if c.done == nil {
		return 0, nil
	}
	<-c.done
	return c.puts, c.err
}

// stateAPI is a client of the forwarder's admin API for the state figure.
type stateAPI struct {
	base     string    // "http://127.0.0.1:PORT/api/v1/rules/bench/backends"
	backends [2]string // path-escaped addresses
	hc       *http.Client
}

// newStateAPI returns a client for spec's admin API, which keeps its
// connection open between requests.
func newStateAPI(spec stateSpec) *stateAPI {
	a := &stateAPI{base: "http://" + spec.admin + "/api/v1/rules/bench/backends", hc: &http.Client{Timeout: dialTimeout, Transport: &http.Transport{}}}
	for i, b := range spec.backends {
		a.backends[i] = url.PathEscape(b)
	}
	return a
}

// ready waits until the admin API lists the rule's backends: the admin
// server may start after the listener the bench waited for. A sluice
// without the backends API is an unsupportedError.
func (a *stateAPI) ready(ctx context.Context) error {
	deadline := time.Now().Add(startTimeout)
	for {
		code, body, err := a.do(ctx, http.MethodGet, a.base, "")
		switch {
		case err == nil && code == http.StatusOK:
			return nil
		case err == nil && (code == http.StatusNotFound || code == http.StatusMethodNotAllowed):
			return unsupportedError{fmt.Sprintf("column skipped: this sluice has no backends API (GET %s: %d %s)", a.base, code, body)}
		case time.Now().After(deadline):
			return fmt.Errorf("admin API not ready within %v: status %d, %v", startTimeout, code, err)
		}
		select {
		case <-time.After(10 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// put sets backend i with body and fails unless the answer is 200.
func (a *stateAPI) put(ctx context.Context, i int, body string) error {
	code, reply, err := a.do(ctx, http.MethodPut, a.base+"/"+a.backends[i], body)
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("status %d: %s", code, reply)
	}
	if err != nil {
		return fmt.Errorf("PUT backend %d %s: %w", i+1, body, err)
	}
	return nil
}

// reset sets both backends back to ready with weight 1.
func (a *stateAPI) reset(ctx context.Context) error {
	return errors.Join(a.put(ctx, 0, `{"state":"ready","weight":1}`), a.put(ctx, 1, `{"state":"ready","weight":1}`))
}

// do sends one request and returns the status and the body, trimmed.
func (a *stateAPI) do(ctx context.Context, method, u, body string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	reply, err := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	return resp.StatusCode, strings.TrimSpace(string(reply)), err
}
