package backend

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// dnsServer is a tiny authoritative DNS server on 127.0.0.1 UDP. It answers
// A and AAAA questions from a table, NXDOMAIN for unknown names, SERVFAIL
// while failing, and holds every answer while a hold channel is set.
type dnsServer struct {
	pc       net.PacketConn
	aQueries atomic.Int64 // A questions received

	mu      sync.Mutex // guards the fields below
	answers map[string][]netip.Addr
	failing bool
	hold    chan struct{}
}

func startDNS(t *testing.T) *dnsServer {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &dnsServer{pc: pc, answers: map[string][]netip.Addr{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.serve()
	}()
	t.Cleanup(func() {
		s.release()
		pc.Close()
		<-done
	})
	return s
}

// set makes name (without the final dot) resolve to addrs.
func (s *dnsServer) set(name string, addrs ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.answers[name+"."] = nil
	for _, a := range addrs {
		s.answers[name+"."] = append(s.answers[name+"."], netip.MustParseAddr(a))
	}
}

func (s *dnsServer) setFailing(f bool) {
	s.mu.Lock()
	s.failing = f
	s.mu.Unlock()
}

// holdAnswers makes the server wait with its answers until release.
func (s *dnsServer) holdAnswers() {
	s.mu.Lock()
	s.hold = make(chan struct{})
	s.mu.Unlock()
}

func (s *dnsServer) release() {
	s.mu.Lock()
	if s.hold != nil {
		close(s.hold)
		s.hold = nil
	}
	s.mu.Unlock()
}

func (s *dnsServer) serve() {
	buf := make([]byte, 1500)
	for {
		n, from, err := s.pc.ReadFrom(buf)
		if err != nil {
			return
		}
		s.mu.Lock()
		hold := s.hold
		s.mu.Unlock()
		if hold != nil {
			<-hold
		}
		if resp := s.answer(buf[:n]); resp != nil {
			s.pc.WriteTo(resp, from)
		}
	}
}

// answer builds the response to one query, or nil for garbage.
func (s *dnsServer) answer(query []byte) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return nil
	}
	q, err := p.Question()
	if err != nil {
		return nil
	}
	if q.Type == dnsmessage.TypeA {
		s.aQueries.Add(1)
	}
	s.mu.Lock()
	addrs, known := s.answers[strings.ToLower(q.Name.String())]
	failing := s.failing
	s.mu.Unlock()

	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired}
	switch {
	case failing:
		rh.RCode = dnsmessage.RCodeServerFailure
	case !known:
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.EnableCompression()
	_ = b.StartQuestions()
	_ = b.Question(q)
	_ = b.StartAnswers()
	rr := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}
	for _, a := range addrs {
		if failing {
			break
		}
		switch {
		case q.Type == dnsmessage.TypeA && a.Is4():
			_ = b.AResource(rr, dnsmessage.AResource{A: a.As4()})
		case q.Type == dnsmessage.TypeAAAA && a.Is6():
			_ = b.AAAAResource(rr, dnsmessage.AAAAResource{AAAA: a.As16()})
		}
	}
	resp, err := b.Finish()
	if err != nil {
		return nil
	}
	return resp
}

// lookup resolves host through this server only, with Go's own resolver.
func (s *dnsServer) lookup(ctx context.Context, host string) ([]netip.Addr, error) {
	r := &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "udp", s.pc.LocalAddr().String())
		},
	}
	return r.LookupNetIP(ctx, "ip", host)
}

// newTestResolver returns a Resolver using s, a fake clock and a recorder.
func newTestResolver(s *dnsServer) (*Resolver, *fakeClock, *logRecorder) {
	logs := newLogRecorder()
	r := NewResolver(s.lookup, logs.logger())
	clock := newFakeClock()
	r.now = clock.Now
	return r, clock, logs
}

func resolveOne(t *testing.T, r *Resolver, host string, ttl time.Duration) []string {
	t.Helper()
	addrs, err := r.Resolve(context.Background(), host, ttl)
	if err != nil {
		t.Fatalf("Resolve(%q): %v", host, err)
	}
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = a.String()
	}
	return out
}

const testName = "svc.sluice.test"

func TestResolverReresolvesAfterTTL(t *testing.T) {
	dns := startDNS(t)
	dns.set(testName, "192.0.2.1", "2001:db8::1")
	r, clock, _ := newTestResolver(dns)
	const ttl = 30 * time.Second

	got := resolveOne(t, r, testName, ttl)
	slices.Sort(got)
	if want := []string{"192.0.2.1", "2001:db8::1"}; !slices.Equal(got, want) {
		t.Fatalf("first answer %v, want %v", got, want)
	}
	dns.set(testName, "192.0.2.2")
	clock.Advance(ttl - time.Nanosecond)
	if got := resolveOne(t, r, testName, ttl); !slices.Contains(got, "192.0.2.1") {
		t.Fatalf("answer within TTL %v, want the cached one", got)
	}
	if n := dns.aQueries.Load(); n != 1 {
		t.Fatalf("%d A queries within the TTL, want 1", n)
	}
	// A caller with a shorter TTL sees the same entry as expired.
	if got := resolveOne(t, r, testName, time.Second); !slices.Equal(got, []string{"192.0.2.2"}) {
		t.Fatalf("answer for a 1s TTL caller %v, want [192.0.2.2]", got)
	}
	dns.set(testName, "192.0.2.3")
	clock.Advance(ttl)
	if got := resolveOne(t, r, testName, ttl); !slices.Equal(got, []string{"192.0.2.3"}) {
		t.Fatalf("answer after the TTL %v, want [192.0.2.3]", got)
	}
	if n := dns.aQueries.Load(); n != 3 {
		t.Fatalf("%d A queries, want 3", n)
	}
}

func TestResolverServesStaleAnswer(t *testing.T) {
	for _, mode := range []string{"servfail", "server gone"} {
		t.Run(mode, func(t *testing.T) {
			dns := startDNS(t)
			dns.set(testName, "192.0.2.1")
			r, clock, logs := newTestResolver(dns)
			const ttl = 30 * time.Second
			resolveOne(t, r, testName, ttl)

			if mode == "servfail" {
				dns.setFailing(true)
			} else {
				dns.pc.Close()
			}
			clock.Advance(ttl)
			if got := resolveOne(t, r, testName, ttl); !slices.Equal(got, []string{"192.0.2.1"}) {
				t.Fatalf("answer while the server fails %v, want the last good one", got)
			}
			const msg = "resolve failed, serving last good answer"
			if n := logs.count(msg, ""); n != 1 {
				t.Fatalf("%d %q records, want 1", n, msg)
			}
			// Within the retry pause, no new lookup and no new log line.
			before := dns.aQueries.Load()
			resolveOne(t, r, testName, ttl)
			if dns.aQueries.Load() != before || logs.count(msg, "") != 1 {
				t.Fatal("a failed name was looked up again within the retry pause")
			}
			if mode == "servfail" {
				dns.setFailing(false)
				dns.set(testName, "192.0.2.9")
				clock.Advance(staleRetry)
				if got := resolveOne(t, r, testName, ttl); !slices.Equal(got, []string{"192.0.2.9"}) {
					t.Fatalf("answer after the server recovered %v, want [192.0.2.9]", got)
				}
			}
		})
	}
}

func TestResolverUnknownNameFails(t *testing.T) {
	dns := startDNS(t)
	r, _, _ := newTestResolver(dns)
	for i := 1; i <= 2; i++ {
		_, err := r.Resolve(context.Background(), "nope.sluice.test", time.Minute)
		var dnsErr *net.DNSError
		if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
			t.Fatalf("Resolve of an unknown name: %v, want a not-found DNS error", err)
		}
		if !strings.Contains(err.Error(), `"nope.sluice.test"`) {
			t.Fatalf("error %q does not name the host", err)
		}
		if n := dns.aQueries.Load(); n != int64(i) {
			t.Fatalf("after %d calls %d A queries: failures must not be cached", i, n)
		}
	}
}

func TestResolverSingleFlight(t *testing.T) {
	dns := startDNS(t)
	dns.set(testName, "192.0.2.1")
	dns.holdAnswers()
	r, _, _ := newTestResolver(dns)

	const callers = 8
	var wg sync.WaitGroup
	results := make(chan error, callers)
	for range callers {
		wg.Go(func() {
			addrs, err := r.Resolve(context.Background(), testName, time.Minute)
			if err == nil && (len(addrs) != 1 || addrs[0] != netip.MustParseAddr("192.0.2.1")) {
				err = errors.New("wrong answer")
			}
			results <- err
		})
	}
	waitWaiters(t, r, testName, callers)
	dns.release()
	wg.Wait()
	close(results)
	for err := range results {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := dns.aQueries.Load(); n != 1 {
		t.Fatalf("%d concurrent callers caused %d A queries, want 1", callers, n)
	}
}

func TestResolverCallerGivesUp(t *testing.T) {
	dns := startDNS(t)
	dns.set(testName, "192.0.2.1")
	dns.holdAnswers()
	r, _, _ := newTestResolver(dns)

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := r.Resolve(ctx, testName, time.Minute)
		errc <- err
	}()
	waitWaiters(t, r, testName, 1)
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Resolve with a cancelled context: %v, want context.Canceled", err)
	}
	// The lookup carried on and filled the cache for later callers.
	dns.release()
	if got := resolveOne(t, r, testName, time.Minute); !slices.Equal(got, []string{"192.0.2.1"}) {
		t.Fatalf("answer %v, want [192.0.2.1]", got)
	}
	if n := dns.aQueries.Load(); n != 1 {
		t.Fatalf("%d A queries, want 1", n)
	}
}

func TestResolverIPLiteralNeedsNoLookup(t *testing.T) {
	r := NewResolver(func(context.Context, string) ([]netip.Addr, error) {
		t.Error("lookup called for an IP literal")
		return nil, errors.New("unexpected")
	}, nil)
	for _, host := range []string{"127.0.0.1", "::1", "::ffff:10.1.2.3"} {
		addrs, err := r.Resolve(context.Background(), host, time.Minute)
		if err != nil || len(addrs) != 1 || addrs[0] != netip.MustParseAddr(host).Unmap() {
			t.Fatalf("Resolve(%q) = %v, %v", host, addrs, err)
		}
	}
}

// waitWaiters polls (bounded) until n callers wait on host's lookup.
func waitWaiters(t *testing.T, r *Resolver, host string, n int) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		r.mu.Lock()
		got := 0
		if e := r.entries[host]; e != nil && e.flight != nil {
			got = e.flight.waiters
		}
		r.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d callers waiting on %q after %v, want %d", got, host, waitLimit, n)
		}
		time.Sleep(time.Millisecond)
	}
}
