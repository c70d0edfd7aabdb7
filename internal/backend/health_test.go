package backend

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"sluice/internal/testkit/loopback"
)

// fastCheck is a health check that runs often; its timeout is generous so
// that a loaded machine does not fail checks that should pass.
func fastCheck() *HealthCheck {
	return &HealthCheck{Interval: 5 * time.Millisecond, Timeout: 2 * time.Second, Rise: 2, Fall: 2}
}

func TestActiveHealthFlapsWithListener(t *testing.T) {
	flappy := startNameServer(t, "flappy", "127.0.0.1:0")
	steady := startNameServer(t, "steady", "127.0.0.1:0")
	logs := newLogRecorder()
	rule := Settings{Name: "web", Balance: RoundRobin, HealthCheck: fastCheck(),
		Backends: backends([]Address{flappy.addr, steady.addr}, nil)}
	p := NewPool(rule, nil, logs.logger())
	p.Start()
	t.Cleanup(p.Stop)
	fb := p.backends[0]
	key := flappy.addr.String()

	for round := 1; round <= 2; round++ {
		flappy.ln.Close()
		logs.waitCount(t, "backend down", key, round)
		if fb.Up() {
			t.Fatal("logged down but Up() is true")
		}
		if rec, _ := logs.last("backend down", key); !strings.Contains(rec.Attrs["reason"], "health check failed") {
			t.Fatalf("down reason %q", rec.Attrs["reason"])
		}
		for range 10 {
			if name, _ := dialName(t, p); name != "steady" {
				t.Fatalf("served by %q while flappy is down", name)
			}
		}
		flappy = startNameServer(t, "flappy", key)
		logs.waitCount(t, "backend up", key, round)
		if !fb.Up() {
			t.Fatal("logged up but Up() is false")
		}
	}
	p.Stop()
	if d, u := logs.count("backend down", key), logs.count("backend up", key); d != 2 || u != 2 {
		t.Fatalf("%d down and %d up records for two flaps, want 2 and 2", d, u)
	}
	if n := logs.count("backend down", steady.addr.String()); n != 0 {
		t.Fatalf("the steady backend was marked down %d times", n)
	}
}

// pingServer answers each line "PING" with reply and counts the checks.
type pingServer struct {
	addr   Address
	checks atomic.Int64
}

func startPingServer(t *testing.T, network, address, reply string) *pingServer {
	t.Helper()
	ln, err := net.Listen(network, address)
	if err != nil {
		t.Fatal(err)
	}
	s := &pingServer{}
	if network == "unix" {
		s.addr = Address{Network: "unix", Path: address}
	} else {
		s.addr = tcpAddr(t, ln.Addr())
	}
	loopback.ServeOn(t, ln, func(c net.Conn) {
		line, err := bufio.NewReader(c).ReadString('\n')
		// Counted before the reply goes out: the checker may act on the
		// reply before this goroutine runs again.
		s.checks.Add(1)
		if err == nil && line == "PING\n" {
			io.WriteString(c, reply)
		}
	})
	return s
}

func TestHealthSendExpect(t *testing.T) {
	tests := []struct {
		name, reply, expect string
		wantUp              bool
		reason              string
	}{
		{"match", "+PONG ready\n", "PONG", true, ""},
		{"wrong reply", "NOPE\n", "PONG", false, `reply ended without "PONG" (got "NOPE\n")`},
		{"no reply", "", "PONG", false, `reply ended without "PONG"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startPingServer(t, "tcp", "127.0.0.1:0", tt.reply)
			hc := fastCheck()
			hc.Send, hc.Expect = "PING\n", tt.expect
			logs := newLogRecorder()
			p := NewPool(Settings{Name: "svc", HealthCheck: hc,
				Backends: backends([]Address{srv.addr}, nil)}, nil, logs.logger())
			p.Start()
			t.Cleanup(p.Stop)
			if !tt.wantUp {
				logs.waitCount(t, "backend down", srv.addr.String(), 1)
				rec, _ := logs.last("backend down", srv.addr.String())
				if !strings.Contains(rec.Attrs["reason"], tt.reason) {
					t.Fatalf("down reason %q, want it to contain %q", rec.Attrs["reason"], tt.reason)
				}
				return
			}
			waitChecks(t, srv, int64(hc.Fall)*3)
			p.Stop()
			if !p.backends[0].Up() || logs.count("backend down", "") != 0 {
				t.Fatal("a backend that answers as expected was marked down")
			}
		})
	}
}

// waitChecks polls (bounded) until srv has answered n checks.
func waitChecks(t *testing.T, srv *pingServer, n int64) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for srv.checks.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d checks within %v, want %d", srv.checks.Load(), waitLimit, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestHealthCheckUnix(t *testing.T) {
	path := filepath.Join(shortTempDir(t), "h.sock")
	srv := startPingServer(t, "unix", path, "PONG\n")
	hc := fastCheck()
	hc.Send, hc.Expect = "PING\n", "PONG"
	logs := newLogRecorder()
	p := NewPool(Settings{Name: "sock", HealthCheck: hc,
		Backends: backends([]Address{srv.addr}, nil)}, nil, logs.logger())
	markDown(t, p.backends[0]) // passively; active checks must bring it back
	p.Start()
	t.Cleanup(p.Stop)
	logs.waitCount(t, "backend up", srv.addr.String(), 1)
	if srv.checks.Load() < int64(hc.Rise) {
		t.Fatalf("up after %d checks, want at least rise=%d", srv.checks.Load(), hc.Rise)
	}
}

func TestActiveChecksDoNotTrial(t *testing.T) {
	// With active checks, a passively downed backend waits for them: no
	// trial connections however long it has been down.
	hc := &HealthCheck{Interval: time.Hour, Timeout: time.Second, Rise: 2, Fall: 3}
	p := NewPool(Settings{Name: "web", HealthCheck: hc,
		Backends: backends([]Address{testAddr(1), testAddr(2)}, nil)}, nil, nil)
	clock := newFakeClock()
	p.now = clock.Now
	a := p.backends[0]
	for range hc.Fall - 1 {
		a.ReportFailure(errors.New("refused"))
	}
	if !a.Up() {
		t.Fatalf("down after %d failures, want fall=%d", hc.Fall-1, hc.Fall)
	}
	a.ReportFailure(errors.New("refused"))
	clock.Advance(time.Hour)
	a.ReportSuccess() // a live session's success does not override the checks
	for i := range 20 {
		if got := mustPick(t, p, clientIP(i)); got != 1 {
			t.Fatalf("picked %d, want only the up backend", got)
		}
	}
	a.checkResult(nil)
	if a.Up() {
		t.Fatal("up after one passed check, want rise=2")
	}
	a.checkResult(nil)
	if !a.Up() {
		t.Fatal("still down after rise passed checks")
	}
}

// checkers counts the goroutines that run health checks: those Pool.Start
// made (startCheckLocked). A goroutine is listed, with who created it, from its go statement
// on, so the count is exact as soon as Start returns.
func checkers() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), "created by sluice/internal/backend.(*Pool).startCheckLocked in ")
		}
		buf = make([]byte, 2*len(buf))
	}
}

func TestStartStopAreSafe(t *testing.T) {
	srv := startPingServer(t, "tcp", "127.0.0.1:0", "")
	rule := Settings{Name: "web", HealthCheck: fastCheck(), Backends: backends([]Address{srv.addr}, nil)}
	p := NewPool(rule, nil, nil)
	before := checkers()
	p.Start()
	p.Start() // a second Start adds no checkers
	if n := checkers() - before; n != len(p.backends) {
		t.Fatalf("%d health checkers after two Starts, want one per backend (%d)", n, len(p.backends))
	}
	waitChecks(t, srv, 3)
	p.Stop()
	p.Stop()
	if _, err := p.Pick(netip.Addr{}); err != nil {
		t.Fatalf("Pick on a stopped pool: %v", err)
	}

	q := NewPool(rule, nil, nil)
	q.Stop() // before Start
	q.Start()
	if q.cancel != nil {
		t.Fatal("Start after Stop started health checks")
	}
	// Without a health check, Start and Stop do nothing.
	rule.HealthCheck = nil
	r := NewPool(rule, nil, nil)
	r.Start()
	if r.cancel != nil {
		t.Fatal("Start without a health check started checks")
	}
	r.Stop()
}

func TestReadUntilBoundsTheReply(t *testing.T) {
	err := readUntil(strings.NewReader(strings.Repeat("x", 2*maxExpectRead)), []byte("PONG"))
	if err == nil || !strings.Contains(err.Error(), "no \"PONG\" in the first") {
		t.Fatalf("readUntil on a long reply without the token: %v", err)
	}
	split := io.MultiReader(strings.NewReader("xxPO"), strings.NewReader("NGyy"))
	if err := readUntil(split, []byte("PONG")); err != nil {
		t.Fatalf("readUntil with the token split across reads: %v", err)
	}
}
