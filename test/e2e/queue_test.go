package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The queue, runtime weights and slow start, through the real binary:
// backends with max_connections = 2 and a queue_timeout, counted at the
// backends; the split of connections between two backends after a weight
// change, and while a backend returned to ready ramps up.

// queueToken is the admin token of the tests in this file.
const queueToken = "qtok"

// limitedBackends are two backends, a and b, that count their live
// connections (the most at once, too) and log the first line each
// connection sends, in the order they read them.
type limitedBackends struct {
	a, b    *backend
	live    [2]atomic.Int64
	maxLive [2]atomic.Int64

	mu    sync.Mutex // guards firsts
	first []string
}

// startLimitedBackends starts a and b.
func startLimitedBackends(t *testing.T) *limitedBackends {
	lb := &limitedBackends{}
	lb.a = startBackend(t, lb.handler(0, "a"))
	lb.b = startBackend(t, lb.handler(1, "b"))
	return lb
}

// handler counts the connection live while it lasts, reads the client's
// first line and records it, sends name and a newline, and reads until
// the client's FIN. It stops counting the connection before the backend
// closes it, so sluice cannot see it end before the count drops.
func (lb *limitedBackends) handler(i int, name string) func(*net.TCPConn) {
	return func(c *net.TCPConn) {
		n := lb.live[i].Add(1)
		defer lb.live[i].Add(-1)
		for m := lb.maxLive[i].Load(); n > m && !lb.maxLive[i].CompareAndSwap(m, n); m = lb.maxLive[i].Load() {
		}
		r := bufio.NewReader(c)
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		lb.mu.Lock()
		lb.first = append(lb.first, strings.TrimSpace(line))
		lb.mu.Unlock()
		if _, err := fmt.Fprintln(c, name); err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, r)
	}
}

// firsts returns the first lines read so far, in order.
func (lb *limitedBackends) firsts() []string {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	return append([]string(nil), lb.first...)
}

// queueConfig is the queue tests' config: the admin API on addrs[0], rule
// q on addrs[1] to a and b, each with max_connections = 2; extra goes
// into the rule.
func queueConfig(a, b, extra string) func(addrs []string) string {
	return func(addrs []string) string {
		return fmt.Sprintf(`log_format = "json"
admin = %q
admin_token = %q

[[rule]]
name = "q"
listen = %q
backends = [{ address = %q, max_connections = 2 }, { address = %q, max_connections = 2 }]
%s`, addrs[0], queueToken, addrs[1], a, b, extra)
	}
}

// queueClient is one client connection that has sent its name line.
type queueClient struct {
	name string
	c    *net.TCPConn
	r    *bufio.Reader
}

// openQueueClient connects to addr and sends name and a newline; the
// answer waits until sluice has a backend for it.
func openQueueClient(t *testing.T, addr, name string) *queueClient {
	t.Helper()
	c := dial(t, addr)
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(2 * waitLimit))
	if _, err := fmt.Fprintln(c, name); err != nil {
		t.Fatalf("client %s: %v", name, err)
	}
	return &queueClient{name: name, c: c, r: bufio.NewReader(c)}
}

// served waits for the backend's name and returns it, or the error that
// ended the connection instead (a reset, or EOF).
func (q *queueClient) served() (string, error) {
	line, err := q.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(line), nil
}

// mustServe fails the test unless q is served.
func (q *queueClient) mustServe(t *testing.T) string {
	t.Helper()
	name, err := q.served()
	if err != nil {
		t.Fatalf("client %s not served: %v", q.name, err)
	}
	return name
}

// fillBackends opens four clients that take both backends' two slots
// each and returns them once all four are served.
func fillBackends(t *testing.T, addr string) []*queueClient {
	t.Helper()
	var held []*queueClient
	for i := range 4 {
		q := openQueueClient(t, addr, fmt.Sprintf("h%d", i))
		q.mustServe(t)
		held = append(held, q)
	}
	return held
}

// isEnd matches the access lines of rule q that ended with end.
func isEnd(end string) func(record) bool {
	return func(r record) bool { return r.str("msg") == "access" && r.str("rule") == "q" && r.str("end") == end }
}

// TestQueueServesEveryClient runs 50 clients at once through two backends
// of two slots each, every client holding its connection about 100 ms:
// every one is served, none is refused, and no backend ever has more
// than two live connections.
func TestQueueServesEveryClient(t *testing.T) {
	lb := startLimitedBackends(t)
	p, addrs, _ := launchOps(t, 2, queueConfig(lb.a.addr, lb.b.addr, `queue_timeout = "5s"`+"\n"), nil)
	const clients = 50
	errs := make(chan error, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			c, err := net.DialTimeout("tcp", addrs[1], waitLimit)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(2 * waitLimit))
			if _, err := fmt.Fprintf(c, "c%d\n", i); err != nil {
				errs <- err
				return
			}
			if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
				errs <- fmt.Errorf("client %d not served: %w", i, err)
				return
			}
			time.Sleep(100 * time.Millisecond) // the load's shape: each client holds its slot a while
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	lines := p.waitN(clients, "50 access lines", func(r record) bool { return r.str("msg") == "access" && r.str("rule") == "q" })
	for _, r := range lines {
		if strings.HasPrefix(r.str("end"), "rejected") || r.str("end") == "connect-failed" {
			t.Errorf("a client was refused: %v", r)
		}
	}
	if n := len(lb.firsts()); n != clients {
		t.Errorf("the backends served %d clients, want %d", n, clients)
	}
	for i, name := range []string{"a", "b"} {
		if m := lb.maxLive[i].Load(); m > 2 || m == 0 {
			t.Errorf("backend %s had at most %d live connections, want 1 or 2", name, m)
		}
	}
	t.Logf("most live connections at once: a %d, b %d", lb.maxLive[0].Load(), lb.maxLive[1].Load())
}

// TestQueueTimeoutRefuses holds both backends full longer than
// queue_timeout: the clients that wait are reset once it has passed (not
// before, and within a margin after), logged as rejected:queue-timeout,
// and the clients holding the backends go on.
func TestQueueTimeoutRefuses(t *testing.T) {
	const timeout, margin = time.Second, 3 * time.Second
	lb := startLimitedBackends(t)
	p, addrs, _ := launchOps(t, 2, queueConfig(lb.a.addr, lb.b.addr, fmt.Sprintf("queue_timeout = %q\n", timeout)), nil)
	held := fillBackends(t, addrs[1])
	waiters := make([]*queueClient, 3)
	starts := make([]time.Time, len(waiters))
	for i := range waiters {
		starts[i] = time.Now()
		waiters[i] = openQueueClient(t, addrs[1], fmt.Sprintf("w%d", i))
	}
	var wg sync.WaitGroup
	for i, q := range waiters {
		wg.Go(func() {
			name, err := q.served()
			waited := time.Since(starts[i])
			switch {
			case err == nil:
				t.Errorf("client %s was served by %s while both backends were full", q.name, name)
			case waited < timeout:
				t.Errorf("client %s refused after %v, before queue_timeout %v: %v", q.name, waited, timeout, err)
			case waited > timeout+margin:
				t.Errorf("client %s refused after %v, more than queue_timeout %v + %v", q.name, waited, timeout, margin)
			}
		})
	}
	wg.Wait()
	for _, q := range waiters {
		if rec := p.waitAccess(q.c); rec.str("end") != "rejected:queue-timeout" {
			t.Errorf("client %s: access line %v, want end=rejected:queue-timeout", q.name, rec)
		}
	}
	if live := lb.live[0].Load() + lb.live[1].Load(); live != int64(len(held)) {
		t.Errorf("%d live connections at the backends after the refusals, want the %d holding them", live, len(held))
	}
	if got := lb.firsts(); len(got) != len(held) {
		t.Errorf("the backends saw clients %q, want only the %d holding them", got, len(held))
	}
}

// queueLength returns sluice_queue_length{rule="q"} from /metrics.
func queueLength(t *testing.T, api *adminClient) float64 {
	t.Helper()
	v, ok := metricValue(scrape(t, api), "sluice_queue_length", map[string]string{"rule": "q"})
	if !ok {
		t.Fatal(`/metrics has no sluice_queue_length{rule="q"}`)
	}
	return v
}

// waitQueueLength polls /metrics until sluice_queue_length{rule="q"} is n.
func waitQueueLength(t *testing.T, api *adminClient, n float64) {
	t.Helper()
	for deadline := time.Now().Add(waitLimit); ; time.Sleep(10 * time.Millisecond) {
		got := queueLength(t, api)
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("sluice_queue_length{rule=\"q\"} is %v after %v, want %v", got, waitLimit, n)
		}
	}
}

// waitFirsts waits until the backends have read n first lines.
func (lb *limitedBackends) waitFirsts(t *testing.T, n int) []string {
	t.Helper()
	for deadline := time.Now().Add(waitLimit); ; time.Sleep(5 * time.Millisecond) {
		got := lb.firsts()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("the backends read %q within %v, want %d lines", got, waitLimit, n)
		}
	}
}

// TestQueueFullAndOrder fills both backends, queues three clients one
// after another (sluice_queue_length counts them on /metrics) and sends
// seven more, ten in all, with max_queue = 3: the seven are refused at
// once, rejected:queue-full, while the three wait on. Each connection that then
// ends gives its slot to the client at the head of the queue.
func TestQueueFullAndOrder(t *testing.T) {
	lb := startLimitedBackends(t)
	p, addrs, _ := launchOps(t, 2, queueConfig(lb.a.addr, lb.b.addr, "queue_timeout = \"10m\"\nmax_queue = 3\n"), nil)
	api := newAdmin(t, addrs[0], queueToken)
	held := fillBackends(t, addrs[1])
	if n := queueLength(t, api); n != 0 {
		t.Fatalf("sluice_queue_length %v with no client waiting", n)
	}
	var queued []*queueClient
	for i := range 3 {
		queued = append(queued, openQueueClient(t, addrs[1], fmt.Sprintf("q%d", i)))
		waitQueueLength(t, api, float64(i+1))
	}

	var wg sync.WaitGroup
	for i := range 7 {
		wg.Go(func() {
			// The reset may come before the connect has returned.
			c, err := net.DialTimeout("tcp", addrs[1], waitLimit)
			if err != nil {
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(2 * waitLimit))
			fmt.Fprintf(c, "x%d\n", i)
			if name, err := bufio.NewReader(c).ReadString('\n'); err == nil {
				t.Errorf("client x%d was served by %s past a full queue", i, name)
			}
		})
	}
	wg.Wait()
	p.waitN(7, "7 access lines rejected:queue-full", isEnd("rejected:queue-full"))
	if n := queueLength(t, api); n != 3 {
		t.Fatalf("sluice_queue_length %v after the refusals, want the 3 still waiting", n)
	}

	for i, h := range held[:3] {
		h.c.Close()
		got := lb.waitFirsts(t, len(held)+i+1)
		if last := got[len(got)-1]; last != queued[i].name {
			t.Fatalf("after %s ended, %s got its slot; want %s, the head of the queue (order so far %q)", h.name, last, queued[i].name, got)
		}
		queued[i].mustServe(t)
	}
	waitQueueLength(t, api, 0)
	if n := p.count(isEnd("rejected:queue-full")); n != 7 {
		t.Errorf("%d access lines rejected:queue-full, want 7", n)
	}
}

// splitConfig is the weight and slow start tests' config: the admin API
// on addrs[0] and rule q on addrs[1], round-robin to a and b; extra goes
// into the rule.
func splitConfig(a, b, extra string) func(addrs []string) string {
	return func(addrs []string) string {
		return fmt.Sprintf("log_format = \"json\"\nadmin = %q\nadmin_token = %q\n\n[[rule]]\nname = \"q\"\nlisten = %q\nbackends = [%q, %q]\nbalance = \"round-robin\"\n%s",
			addrs[0], queueToken, addrs[1], a, b, extra)
	}
}

// putBackend sets backend address of rule q through the API.
func putBackend(t *testing.T, api *adminClient, address, body string) {
	t.Helper()
	if code, reply := api.put("/api/v1/rules/q/backends/"+url.PathEscape(address), body); code != 200 {
		t.Fatalf("PUT %s %s: %d %s", address, body, code, reply)
	}
}

// pick is one connection of a split measurement: when it began and the
// backend that answered it.
type pick struct {
	at      time.Time
	backend string
}

// picks makes connections through addr with parallel clients, each
// connection reading which backend it reached (namedEcho), until enough
// returns true for the picks so far; it fails the test on a failed
// connection, or when enough is not reached within 4 × waitLimit.
func picks(t *testing.T, addr string, parallel int, enough func([]pick) bool) []pick {
	t.Helper()
	var mu sync.Mutex
	var got []pick
	var firstErr error
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range parallel {
		wg.Go(func() {
			cl := &churn{addr: addr}
			for {
				select {
				case <-stop:
					return
				default:
				}
				at := time.Now()
				name, err := cl.once()
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				got = append(got, pick{at, name})
				mu.Unlock()
			}
		})
	}
	defer wg.Wait()
	defer close(stop)
	for deadline := time.Now().Add(4 * waitLimit); ; time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		done, n, err := enough(got), len(got), firstErr
		snapshot := append([]pick(nil), got...)
		mu.Unlock()
		switch {
		case err != nil:
			t.Fatalf("a connection failed: %v", err)
		case done:
			return snapshot
		case time.Now().After(deadline):
			t.Fatalf("only %d connections within %v", n, 4*waitLimit)
		}
	}
}

// shareOf returns the percentage of ps that reached backend name, and how
// many ps there were.
func shareOf(ps []pick, name string) (float64, int) {
	n := 0
	for _, p := range ps {
		if p.backend == name {
			n++
		}
	}
	if len(ps) == 0 {
		return 0, 0
	}
	return 100 * float64(n) / float64(len(ps)), len(ps)
}

// TestWeightChangeMovesSplit measures the split between two round-robin
// backends over 2,000 connections, before and after the API sets a's
// weight to 3: 50% and then 75% to a, within 5 points.
func TestWeightChangeMovesSplit(t *testing.T) {
	a, b := startBackend(t, namedEcho("a")), startBackend(t, namedEcho("b"))
	_, addrs, _ := launchOps(t, 2, splitConfig(a.addr, b.addr, ""), nil)
	api := newAdmin(t, addrs[0], queueToken)
	first2000 := func(ps []pick) bool { return len(ps) >= 2000 }
	measure := func(want float64) {
		t.Helper()
		ps := picks(t, addrs[1], 8, first2000)[:2000]
		share, _ := shareOf(ps, "a")
		t.Logf("a's share over 2000 connections: %.1f%%, want %.0f%%", share, want)
		if share < want-5 || share > want+5 {
			t.Errorf("a's share over 2000 connections is %.1f%%, want %.0f%% ± 5", share, want)
		}
	}
	measure(50)
	putBackend(t, api, a.addr, `{"weight":3}`)
	measure(75)
}

// TestSlowStartRamps drains b and sets it back to ready with slow_start
// = "4s" while clients connect in a loop: in the first second after the
// PUT b's share of round-robin is well below its share once the ramp is
// over (connections begun 4 s after the PUT), which is about half.
func TestSlowStartRamps(t *testing.T) {
	a, b := startBackend(t, namedEcho("a")), startBackend(t, namedEcho("b"))
	const ramp = 4 * time.Second
	_, addrs, _ := launchOps(t, 2, splitConfig(a.addr, b.addr, fmt.Sprintf("slow_start = %q\n", ramp)), nil)
	api := newAdmin(t, addrs[0], queueToken)
	putBackend(t, api, b.addr, `{"state":"drain"}`)
	var sent, answered time.Time
	var once sync.Once
	ps := picks(t, addrs[1], 4, func(ps []pick) bool {
		once.Do(func() {
			sent = time.Now()
			putBackend(t, api, b.addr, `{"state":"ready"}`)
			answered = time.Now()
		})
		_, n := shareOf(after(ps, answered.Add(ramp)), "")
		return n >= 400
	})
	early, nEarly := shareOf(between(ps, sent, sent.Add(time.Second)), "b")
	late, nLate := shareOf(after(ps, answered.Add(ramp)), "b")
	for s := range 6 {
		from := sent.Add(time.Duration(s) * time.Second)
		if share, n := shareOf(between(ps, from, from.Add(time.Second)), "b"); n > 0 {
			t.Logf("b's share in second %d after the PUT: %.1f%% of %d", s+1, share, n)
		}
	}
	t.Logf("b's share after the ramp: %.1f%% of %d", late, nLate)
	if nEarly < 20 {
		t.Fatalf("only %d connections in the first second after the PUT", nEarly)
	}
	if early > 30 || late < 40 || late > 60 {
		t.Errorf("b's share: %.1f%% in the first second after ready, %.1f%% after the %v ramp; want at most 30%% and then 40-60%%", early, late, ramp)
	}
}

// between returns the picks begun in [from, to).
func between(ps []pick, from, to time.Time) []pick {
	var out []pick
	for _, p := range ps {
		if !p.at.Before(from) && p.at.Before(to) {
			out = append(out, p)
		}
	}
	return out
}

// after returns the picks begun at t or later.
func after(ps []pick, t time.Time) []pick { return between(ps, t, t.Add(time.Hour)) }
