package backend

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sluice/internal/testkit/loopback"
	"sluice/internal/testkit/testca"
	"sluice/internal/tlsconf"
)

// tlsBackend is a backend on loopback that speaks TLS with a certificate
// for 127.0.0.1. Each connection is read as sluice writes it: header
// (len(header) bytes, in plaintext), then the TLS handshake, then the
// first bytes inside TLS, which it reports on got ("ping\n" is answered
// "pong\n", for health checks).
type tlsBackend struct {
	addr       Address
	got        chan string
	handshakes atomic.Int64 // completed
}

func startTLSBackend(t *testing.T, ca *testca.CA, header string) *tlsBackend {
	t.Helper()
	leaf := ca.Issue(t, "backend", "127.0.0.1")
	cfg := &tls.Config{Certificates: []tls.Certificate{leaf.Pair(t)}}
	s := &tlsBackend{got: make(chan string, 64)}
	s.addr = parseAddr(t, loopback.Serve(t, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(waitLimit))
		if header != "" {
			buf := make([]byte, len(header))
			if _, err := io.ReadFull(c, buf); err != nil || string(buf) != header {
				s.report("header " + string(buf))
				return
			}
		}
		tc := tls.Server(c, cfg)
		if err := tc.Handshake(); err != nil {
			s.report("handshake: " + err.Error())
			return
		}
		s.handshakes.Add(1)
		buf := make([]byte, 64)
		n, _ := tc.Read(buf)
		if string(buf[:n]) == "ping\n" {
			io.WriteString(tc, "pong\n")
		}
		s.report(string(buf[:n]))
	}))
	return s
}

// next returns what the next connection reported, or fails the test
// after waitLimit.
func (s *tlsBackend) next(t *testing.T) string {
	t.Helper()
	select {
	case got := <-s.got:
		return got
	case <-time.After(waitLimit):
		t.Fatal("the backend reported nothing")
		return ""
	}
}

// report passes on what a connection read, dropping it when nobody reads.
func (s *tlsBackend) report(what string) {
	select {
	case s.got <- what:
	default:
	}
}

// tlsClient returns a tlsconf.Client that trusts ca.
func tlsClient(t *testing.T, ca *testca.CA) *tlsconf.Client {
	t.Helper()
	c, err := tlsconf.NewClient(tlsconf.ClientFiles{CA: ca.File(t)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// observed records what ObserveTLS was told.
type observed struct {
	mu      sync.Mutex
	results []string
}

func (o *observed) observe(result string, d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if d <= 0 {
		result += "(no duration)"
	}
	o.results = append(o.results, result)
}

func (o *observed) get() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return strings.Join(o.results, ",")
}

// TestTLSDial: Attempts.Dial to a pool with TLS writes the header in
// plaintext, then completes the handshake (the backend's certificate
// verified for its IP address), then sends the replay inside TLS, and
// hands out the TLS connection; the handshake is observed.
func TestTLSDial(t *testing.T) {
	ca := testca.New(t, "ca")
	srv := startTLSBackend(t, ca, "PROXY TEST\r\n")
	var obs observed
	p := NewPool(Settings{Name: "web", Backends: backends([]Address{srv.addr}, nil), ConnectTimeout: waitLimit,
		TLS: tlsClient(t, ca), ObserveTLS: obs.observe}, nil, nil)
	if p.Direct() {
		t.Error("a pool that speaks TLS is Direct")
	}
	var a Attempts
	p.Begin(&a, netip.MustParseAddr("127.0.0.1"), []byte("PROXY TEST\r\n"), []byte("hello"))
	conn, b, err := a.Dial(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release()
	defer conn.Close()
	if _, ok := conn.(*tls.Conn); !ok {
		t.Errorf("Dial returned a %T, want a *tls.Conn", conn)
	}
	if got := srv.next(t); got != "hello" {
		t.Errorf("the backend read %q inside TLS, want the replay", got)
	}
	if got := obs.get(); got != "ok" {
		t.Errorf("observed %q, want ok", got)
	}
}

// TestTLSWrongCA: a backend whose certificate does not verify is a failed
// connect: the next backend is used, the failure is held against the first
// and logged with the reason.
func TestTLSWrongCA(t *testing.T) {
	ca := testca.New(t, "ca")
	bad := startTLSBackend(t, testca.New(t, "other"), "")
	good := startTLSBackend(t, ca, "")
	var obs observed
	logs := newLogRecorder()
	p := NewPool(Settings{Name: "web", Balance: First, Retries: 1, ConnectTimeout: waitLimit,
		Backends: backends([]Address{bad.addr, good.addr}, nil), TLS: tlsClient(t, ca), ObserveTLS: obs.observe}, nil, logs.logger())
	var a Attempts
	p.Begin(&a, netip.MustParseAddr("127.0.0.1"), nil, []byte("hi"))
	conn, b, err := a.Dial(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release()
	defer conn.Close()
	if b.Address() != good.addr || p.backends[0].ConnectErrors() != 1 || p.backends[1].ConnectErrors() != 0 {
		t.Errorf("connected to %v, connect errors %d and %d; want %v, 1 and 0", b.Address(), p.backends[0].ConnectErrors(), p.backends[1].ConnectErrors(), good.addr)
	}
	if got := obs.get(); got != "verify,ok" {
		t.Errorf("observed %q, want verify,ok", got)
	}
	recs := logs.Find(about("backend TLS handshake failed", bad.addr.String()))
	if len(recs) != 1 || recs[0].Attrs["result"] != "verify" || !strings.Contains(recs[0].Attrs["error"], "certificate") {
		t.Errorf("logged %+v, want one record of the verification failure", recs)
	}

	// With no other backend, the error names the backend and the cause.
	p2 := NewPool(Settings{Name: "web", Backends: backends([]Address{bad.addr}, nil), ConnectTimeout: waitLimit, TLS: tlsClient(t, ca)}, nil, nil)
	_, _, err = p2.Dial(context.Background(), netip.MustParseAddr("127.0.0.1"))
	if err == nil || !strings.Contains(err.Error(), bad.addr.String()) || !strings.Contains(err.Error(), "tls handshake") || !strings.Contains(err.Error(), "unknown authority") {
		t.Errorf("Dial to the one bad backend: %v", err)
	}
}

// TestTLSHealthCheck: the active check of a pool with TLS completes the
// handshake and sends and expects inside TLS: a backend whose certificate
// verifies stays up, one whose does not goes down.
func TestTLSHealthCheck(t *testing.T) {
	ca := testca.New(t, "ca")
	good := startTLSBackend(t, ca, "")
	bad := startTLSBackend(t, testca.New(t, "other"), "")
	hc := fastCheck()
	hc.Send, hc.Expect = "ping\n", "pong"
	logs := newLogRecorder()
	p := NewPool(Settings{Name: "web", HealthCheck: hc, Backends: backends([]Address{good.addr, bad.addr}, nil), TLS: tlsClient(t, ca)}, nil, logs.logger())
	p.Start()
	t.Cleanup(p.Stop)
	logs.waitCount(t, "backend down", bad.addr.String(), 1)
	rec, _ := logs.last("backend down", bad.addr.String())
	if !strings.Contains(rec.Attrs["reason"], "tls handshake") {
		t.Errorf("down for %q, want the handshake's failure", rec.Attrs["reason"])
	}
	deadline := time.Now().Add(waitLimit)
	for good.handshakes.Load() < int64(hc.Fall)*3 {
		if time.Now().After(deadline) {
			t.Fatalf("%d checks of the good backend within %v", good.handshakes.Load(), waitLimit)
		}
		time.Sleep(time.Millisecond)
	}
	p.Stop()
	if got := good.next(t); got != "ping\n" {
		t.Errorf("the good backend read %q inside TLS, want the check's send", got)
	}
	if !p.backends[0].Up() || logs.count("backend down", good.addr.String()) != 0 {
		t.Error("the backend whose certificate verifies was marked down")
	}
}

// TestSettingsEqualTLS: Settings whose TLS clients were made from the same
// files are equal, so a reload keeps the pool.
func TestSettingsEqualTLS(t *testing.T) {
	ca := testca.New(t, "ca")
	a := Settings{Name: "web", TLS: tlsClient(t, ca)}
	b := Settings{Name: "web", TLS: tlsClient(t, ca), ObserveTLS: func(string, time.Duration) {}}
	if !a.Equal(b) {
		t.Error("settings with TLS clients of the same files are unequal")
	}
	other := Settings{Name: "web", TLS: tlsClient(t, testca.New(t, "other"))}
	if a.Equal(other) {
		t.Error("settings with TLS clients of other CAs are equal")
	}
}
