package admin

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"sluice/internal/access"
	"sluice/internal/conntrack"
	"sluice/internal/metrics"
)

// testController implements Controller from real parts: a conntrack.Table
// of real loopback TCP connections relayed by a counting echo, and a real
// metrics.Metrics whose rule counters the echo feeds. It stands in for the
// server package, which owns the real implementation.
type testController struct {
	t       *testing.T
	reg     *prometheus.Registry
	metrics *metrics.Metrics
	table   *conntrack.Table
	ids     conntrack.IDs
	backend net.Listener // the "backend" every connection reaches
	wg      sync.WaitGroup

	mu        sync.Mutex // guards the following fields
	rules     []RuleStatus
	accepted  chan net.Conn
	healthy   bool
	reason    string
	reloadRep ReloadReport
	reloadErr error
	reloads   int
	closes    []uint64                 // ids CloseConnection was asked for
	gone      map[uint64]chan struct{} // closed once a connection has left the table
}

// newTestController returns a controller with rules "web" (two backends,
// one down) and "dns", and a loopback listener standing in for backends.
func newTestController(t *testing.T) *testController {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &testController{t: t, reg: reg, metrics: m, table: conntrack.NewTable(), backend: ln, healthy: true,
		accepted: make(chan net.Conn, 64), gone: make(map[uint64]chan struct{})}
	c.rules = []RuleStatus{
		{Name: "web", Listen: "127.0.0.1:8080", Protocol: "tcp", Balance: "round-robin", Backends: []BackendStatus{
			{Address: ln.Addr().String(), Up: true, Weight: 1},
			{Address: "10.0.0.6:80", Up: false, Weight: 2, Backup: true, ConnectErrors: 3},
		}},
		{Name: "dns", Listen: "[::1]:5353", Protocol: "udp", Balance: "first", Backends: []BackendStatus{
			{Address: "10.0.0.9:53", Up: true, Weight: 3},
		}},
	}
	m.Rule("web")
	m.Rule("dns")
	m.SetBackendSource(c.backendStates)
	go c.acceptLoop()
	t.Cleanup(func() {
		ln.Close()
		c.table.StopAll("closed")
		c.wg.Wait()
	})
	return c
}

// acceptLoop hands accepted backend-side connections to open.
func (c *testController) acceptLoop() {
	for {
		conn, err := c.backend.Accept()
		if err != nil {
			return
		}
		c.accepted <- conn
	}
}

// byteCounters are one entry's byte counts.
type byteCounters struct{ up, down atomic.Int64 }

func (b *byteCounters) BytesUp() int64   { return b.up.Load() }
func (b *byteCounters) BytesDown() int64 { return b.down.Load() }

// open makes a real loopback connection for rule, registers it in the
// table and relays it with a counting echo. It returns the client side and
// the entry's id. Stopping the entry closes the backend side, which the
// client sees as EOF.
func (c *testController) open(rule string) (net.Conn, uint64) {
	c.t.Helper()
	client, err := net.Dial("tcp", c.backend.Addr().String())
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { client.Close() })
	var server net.Conn
	select {
	case server = <-c.accepted:
	case <-time.After(10 * time.Second):
		c.t.Fatal("backend did not accept the test connection")
	}
	mr := c.metrics.Rule(rule)
	mr.ConnOpened()
	ctr := &byteCounters{}
	var once sync.Once
	e := &conntrack.Entry{
		ID: c.ids.Next(), Rule: rule, Proto: "tcp", Client: client.LocalAddr().String(),
		Backend: c.backend.Addr().String(), Since: time.Now(), Bytes: ctr,
		Stop: func(access.End) { once.Do(func() { server.Close() }) },
	}
	gone := make(chan struct{})
	c.mu.Lock()
	c.gone[e.ID] = gone
	c.mu.Unlock()
	c.table.Add(e)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer close(gone)
		defer mr.ConnClosed()
		defer c.table.Remove(e.ID, nil)
		echo(server, ctr, mr)
		server.Close()
	}()
	return client, e.ID
}

// echo copies what server reads back to it, counting both ways in the
// entry and in the rule's metrics, until the connection ends.
func echo(server net.Conn, ctr *byteCounters, mr *metrics.Rule) {
	up, down := mr.Bytes()
	buf := make([]byte, 32<<10)
	for {
		n, err := server.Read(buf)
		if n > 0 {
			ctr.up.Add(int64(n))
			up.Add(int64(n))
			// Count before writing, so a client that has read the echo
			// always sees it counted.
			ctr.down.Add(int64(n))
			down.Add(int64(n))
			if _, werr := server.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// waitGone waits until the connection with id has left the table.
func (c *testController) waitGone(id uint64) {
	c.t.Helper()
	c.mu.Lock()
	gone := c.gone[id]
	c.mu.Unlock()
	select {
	case <-gone:
	case <-time.After(10 * time.Second):
		c.t.Fatalf("connection %d still in the table", id)
	}
}

// backendStates reports the backends for the metrics, as the server does.
func (c *testController) backendStates() []metrics.BackendState {
	var out []metrics.BackendState
	for _, r := range c.Rules() {
		for _, b := range r.Backends {
			out = append(out, metrics.BackendState{Rule: r.Name, Backend: b.Address, Up: b.Up, ConnectErrors: b.ConnectErrors})
		}
	}
	return out
}

// Rules implements Controller.
func (c *testController) Rules() []RuleStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]RuleStatus, len(c.rules))
	for i, r := range c.rules {
		r.Backends = slices.Clone(r.Backends)
		r.Counters = CountersOf(c.metrics.Rule(r.Name).Counters())
		out[i] = r
	}
	return out
}

// Connections implements Controller.
func (c *testController) Connections() []conntrack.Snapshot { return c.table.Snapshots() }

// CloseConnection implements Controller.
func (c *testController) CloseConnection(id uint64) bool {
	c.mu.Lock()
	c.closes = append(c.closes, id)
	c.mu.Unlock()
	return c.table.Stop(id, "closed")
}

// Reload implements Controller.
func (c *testController) Reload() (ReloadReport, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reloads++
	return c.reloadRep, c.reloadErr
}

// Healthy implements Controller.
func (c *testController) Healthy() (bool, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.healthy, c.reason
}

// setReload sets what the next Reload returns.
func (c *testController) setReload(rep ReloadReport, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reloadRep, c.reloadErr = rep, err
}

// reloadCount returns how many times Reload was called.
func (c *testController) reloadCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reloads
}

// setHealth sets what Healthy returns.
func (c *testController) setHealth(ok bool, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.healthy, c.reason = ok, reason
}

// closed returns the ids CloseConnection was called with.
func (c *testController) closed() []uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.closes)
}

// setBackendUp sets the health of a backend of a rule.
func (c *testController) setBackendUp(rule, addr string, up bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.rules {
		for j := range c.rules[i].Backends {
			if c.rules[i].Name == rule && c.rules[i].Backends[j].Address == addr {
				c.rules[i].Backends[j].Up = up
			}
		}
	}
}

// startAdmin serves an admin server for ctl on 127.0.0.1:0 and returns its
// base URL. The server is shut down when the test ends.
func startAdmin(t *testing.T, ctl *testController, token string) string {
	t.Helper()
	return startAdminWith(t, Options{Controller: ctl, Gatherer: ctl.reg, Token: token})
}

// startAdminWith serves o on a free loopback port until the test ends and
// returns its base URL.
func startAdminWith(t *testing.T, o Options) string {
	t.Helper()
	s, err := Listen("127.0.0.1:0", o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return "http://" + s.Addr().String()
}

// do sends a request with an optional bearer token and returns the status,
// the response and its body.
func do(t *testing.T, method, url, token string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return resp, string(body)
}

// waitEOF reads from conn until EOF or an error other than a timeout, and
// fails if that does not happen within the deadline.
func waitEOF(t *testing.T, conn net.Conn) {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.Copy(io.Discard, conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("connection still open after it was closed through the API")
	}
}

// pingPong writes msg on conn and reads the echo back.
func pingPong(t *testing.T, conn net.Conn, msg string) {
	t.Helper()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(conn, got); err != nil {
		t.Fatal(err)
	}
	if string(got) != msg {
		t.Fatalf("echo: got %q, want %q", got, msg)
	}
	conn.SetDeadline(time.Time{})
}

// hasLine reports whether text has a line equal to want.
func hasLine(text, want string) bool {
	return slices.Contains(strings.Split(text, "\n"), want)
}
