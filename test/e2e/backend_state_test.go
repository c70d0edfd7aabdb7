package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// namedEcho is a backend handler that first sends name and a newline,
// then echoes, so a client knows which backend it reached.
func namedEcho(name string) func(*net.TCPConn) {
	return func(c *net.TCPConn) {
		if _, err := fmt.Fprintln(c, name); err != nil {
			return
		}
		echo(c)
	}
}

// stateConfig is the backend-state test's config: admin API on addrs[0]
// with token, rule "web" on addrs[1] to backends a and b; extra goes into
// the rule.
func stateConfig(a, b, token, extra string) func(addrs []string) string {
	return func(addrs []string) string {
		return fmt.Sprintf("log_format = \"json\"\nadmin = %q\nadmin_token = %q\n\n[[rule]]\nname = \"web\"\nlisten = %q\nbackends = [%q, %q]\ndrain_timeout = \"5m\"\n%s",
			addrs[0], token, addrs[1], a, b, extra)
	}
}

// apiBackend is one backend as GET .../backends reports it.
type apiBackend struct {
	Address      string `json:"address"`
	State        string `json:"state"`
	Health       string `json:"health"`
	Weight       int    `json:"weight"`
	ConfigWeight int    `json:"config_weight"`
	Active       int64  `json:"active"`
}

// backendState returns the backend of rule web with address.
func (a *adminClient) backendState(address string) apiBackend {
	a.t.Helper()
	var body struct{ Backends []apiBackend }
	a.call(http.MethodGet, "/api/v1/rules/web/backends", http.StatusOK, &body)
	for _, b := range body.Backends {
		if b.Address == address {
			return b
		}
	}
	a.t.Fatalf("rule web has no backend %s: %+v", address, body.Backends)
	return apiBackend{}
}

// put sends a PUT with a JSON body and returns the status and body.
func (a *adminClient) put(path, body string) (int, []byte) {
	a.t.Helper()
	req, err := http.NewRequest(http.MethodPut, a.base+path, strings.NewReader(body))
	if err != nil {
		a.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	resp, err := a.hc.Do(req)
	if err != nil {
		a.t.Fatalf("PUT %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// churn is clients connecting in a loop: each connects, reads which
// backend it reached, sends a line, reads it back and closes. It counts
// the connections begun after after was set that reached backend "a".
type churn struct {
	addr         string
	after        atomic.Bool
	lateA, total atomic.Int64
	failures     atomic.Int64
	firstErr     atomic.Value
	stop         chan struct{}
	wg           sync.WaitGroup
}

func startChurn(addr string, clients int) *churn {
	c := &churn{addr: addr, stop: make(chan struct{})}
	for range clients {
		c.wg.Add(1)
		go c.loop()
	}
	return c
}

func (c *churn) loop() {
	defer c.wg.Done()
	for {
		select {
		case <-c.stop:
			return
		default:
		}
		late := c.after.Load()
		name, err := c.once()
		if err != nil {
			if c.failures.Add(1) == 1 {
				c.firstErr.Store(err)
			}
			continue
		}
		c.total.Add(1)
		if late && name == "a" {
			c.lateA.Add(1)
		}
	}
}

// once makes one connection and returns the backend's name.
func (c *churn) once() (string, error) {
	conn, err := net.DialTimeout("tcp", c.addr, waitLimit)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(waitLimit))
	r := bufio.NewReader(conn)
	name, err := r.ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("read name: %w", err)
	}
	if _, err := io.WriteString(conn, "ping\n"); err != nil {
		return "", err
	}
	if line, err := r.ReadString('\n'); err != nil || line != "ping\n" {
		return "", fmt.Errorf("echo %q: %v", line, err)
	}
	return strings.TrimSpace(name), nil
}

// waitTotal waits until the clients have made n more connections.
func (c *churn) waitTotal(t *testing.T, n int64) {
	t.Helper()
	want := c.total.Load() + n
	for deadline := time.Now().Add(4 * waitLimit); c.total.Load() < want; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("clients made %d of %d connections in time", c.total.Load(), want)
		}
	}
}

func (c *churn) halt(t *testing.T) {
	t.Helper()
	close(c.stop)
	c.wg.Wait()
	if n := c.failures.Load(); n > 0 {
		t.Errorf("%d client connections failed, first: %v", n, c.firstErr.Load())
	}
}

// longStream is one long-lived connection that keeps exchanging lines.
type longStream struct {
	backend string
	errc    chan error
	stop    chan struct{}
}

func openLongStream(t *testing.T, addr string) *longStream {
	t.Helper()
	conn := dial(t, addr)
	conn.SetDeadline(time.Now().Add(10 * waitLimit))
	r := bufio.NewReader(conn)
	name, err := r.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	s := &longStream{backend: strings.TrimSpace(name), errc: make(chan error, 1), stop: make(chan struct{})}
	go func() {
		defer conn.Close()
		for i := 0; ; i++ {
			select {
			case <-s.stop:
				s.errc <- nil
				return
			default:
			}
			msg := fmt.Sprintf("line %d\n", i)
			if _, err := io.WriteString(conn, msg); err != nil {
				s.errc <- err
				return
			}
			if got, err := r.ReadString('\n'); err != nil || got != msg {
				s.errc <- fmt.Errorf("line %d came back as %q: %v", i, got, err)
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	return s
}

// TestBackendDrainUnderLoad drains a backend through the API while 200
// clients connect in a loop and 20 long streams run: no connection begun
// after the PUT reaches it, no stream breaks, and its active count falls
// to zero once the streams end. The state is kept across SIGHUP and
// SIGUSR2, and the sluice backend command sets it back to ready.
func TestBackendDrainUnderLoad(t *testing.T) {
	raiseFDLimit(t, 4096)
	a, b := startBackend(t, namedEcho("a")), startBackend(t, namedEcho("b"))
	var g *group
	_, addrs, path := launchOps(t, 2, stateConfig(a.addr, b.addr, "tok", ""), func(path string) *proc {
		g = startGroup(t, "-c", path)
		return g.proc
	})
	api := newAdmin(t, addrs[0], "tok")
	var streams []*longStream
	onA := 0
	for range 20 {
		s := openLongStream(t, addrs[1])
		streams = append(streams, s)
		if s.backend == "a" {
			onA++
		}
	}
	if onA == 0 {
		t.Fatal("no stream reached a")
	}
	load := startChurn(addrs[1], 200)
	load.waitTotal(t, 500)

	code, body := api.put("/api/v1/rules/web/backends/"+url.PathEscape(a.addr), `{"state":"drain"}`)
	if code != http.StatusOK || !strings.Contains(string(body), `"state":"drain"`) {
		t.Fatalf("PUT drain: %d %s", code, body)
	}
	load.after.Store(true)
	load.waitTotal(t, 2000)
	if n := load.lateA.Load(); n != 0 {
		t.Fatalf("%d connections begun after the drain reached a", n)
	}
	if st := api.backendState(a.addr); st.State != "drain" || st.Active < int64(onA) {
		t.Fatalf("a while draining: %+v, want drain with its %d streams", st, onA)
	}

	// SIGHUP with a changed rule (a new pool): still drained.
	rewriteFile(t, path, stateConfig(a.addr, b.addr, "tok", "retries = 2\n")(addrs))
	g.signal(syscall.SIGHUP)
	g.wait("reloaded line", func(r record) bool {
		return r.str("msg") == "reloaded" && strings.Contains(fmt.Sprint(r["changed"]), "web")
	})
	if st := api.backendState(a.addr); st.State != "drain" {
		t.Fatalf("a after SIGHUP: %+v", st)
	}
	load.waitTotal(t, 500)
	for _, s := range streams {
		close(s.stop)
	}
	for _, s := range streams {
		if err := <-s.errc; err != nil {
			t.Errorf("stream on %s broke: %v", s.backend, err)
		}
	}
	for deadline := time.Now().Add(waitLimit); api.backendState(a.addr).Active != 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("a still counts %d active connections after the streams ended", api.backendState(a.addr).Active)
		}
	}

	// SIGUSR2: the new process has it drained from the start.
	second := upgrade(t, g, g.cmd.Process.Pid, 1)
	g.wait("state kept", func(r record) bool {
		return r.str("msg") == "backend state kept from the previous process" && r.str("backend") == a.addr
	})
	load.waitTotal(t, 1000)
	if n := load.lateA.Load(); n != 0 {
		t.Fatalf("%d connections reached a, drained, across the upgrade", n)
	}
	if st := api.backendState(a.addr); st.State != "drain" {
		t.Fatalf("a after SIGUSR2: %+v", st)
	}
	load.halt(t)

	// The command line sets it back to ready, with a weight.
	res := runSluice(t, nil, "backend", "web", a.addr, "ready", "--weight", "3", "-c", path)
	if res.code != 0 || !strings.Contains(res.stdout, `"state": "ready"`) || !strings.Contains(res.stdout, `"weight": 3`) {
		t.Fatalf("sluice backend ... ready:\n%v", res)
	}
	var reply struct{ Note string }
	if err := json.Unmarshal([]byte(res.stdout), &reply); err != nil || !strings.Contains(reply.Note, "reload") {
		t.Fatalf("reply %q: %v", res.stdout, err)
	}
	if name, err := (&churn{addr: addrs[1]}).once(); err != nil {
		t.Fatal(err)
	} else if st := api.backendState(a.addr); st.State != "ready" || st.Weight != 3 {
		t.Fatalf("a after the command: %+v (a connection went to %s)", st, name)
	}
	res = runSluice(t, nil, "backend", "web", "10.9.9.9:1", "drain", "--admin", addrs[0], "--token-file", writeConfig(t, "tok\n"))
	if res.code != 1 || !strings.Contains(res.stderr, "404") || !strings.Contains(res.stderr, "10.9.9.9:1") {
		t.Fatalf("sluice backend with an unknown backend:\n%v", res)
	}
	stopUpgraded(t, g, second, 2)
}
