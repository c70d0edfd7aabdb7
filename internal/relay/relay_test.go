package relay

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"sluice/internal/access"
)

// pair is a relay under test with the far ends of its two connections:
// client talks to the relay's client side, server is the backend's end.
type pair struct {
	client, server net.Conn
	relay          *Relay
	result         chan Result
}

// connPair returns two connected stream sockets of the given network.
func connPair(t testing.TB, network string) (net.Conn, net.Conn) {
	t.Helper()
	addr := "127.0.0.1:0"
	if network == "unix" {
		addr = filepath.Join(t.TempDir(), "s")
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	a, err := net.Dial(network, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	return a, b
}

// startPair starts a relay between a client pair and a backend pair.
func startPair(t *testing.T, network string, opts Options) *pair {
	t.Helper()
	client, front := connPair(t, network)
	back, server := connPair(t, network)
	return startPairOf(t, client, front, back, server, opts)
}

// startPairOf starts a relay between front and back, whose far ends are
// client and server.
func startPairOf(t *testing.T, client, front, back, server net.Conn, opts Options) *pair {
	t.Helper()
	p := &pair{client: client, server: server, relay: New(front, back, opts), result: make(chan Result, 1)}
	go func() { p.result <- p.relay.Run() }()
	t.Cleanup(func() {
		client.Close()
		server.Close()
		p.relay.Stop(access.Closed)
	})
	if opts.Engine != nil && opts.Bandwidth == 0 {
		waitFor(t, "the relay to start on the engine", p.relay.onLoop)
	}
	return p
}

// onLoop reports whether the relay has started on an engine's loop.
func (r *Relay) onLoop() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ec != nil
}

// startPairB is startPair for benchmarks: a relay over TCP with pools.
func startPairB(b *testing.B, pools *Pools) *pair {
	client, front := connPair(b, "tcp")
	back, server := connPair(b, "tcp")
	p := &pair{client: client, server: server, relay: New(front, back, Options{Pools: pools}), result: make(chan Result, 1)}
	go func() { p.result <- p.relay.Run() }()
	b.Cleanup(func() {
		client.Close()
		server.Close()
		p.relay.Stop(access.Closed)
	})
	return p
}

func (p *pair) wait(t *testing.T) Result {
	t.Helper()
	select {
	case r := <-p.result:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("relay did not finish")
		return Result{}
	}
}

// sendAndHash writes n random bytes to w, half-closes it, and returns their hash.
func sendAndHash(w net.Conn, n int) ([32]byte, error) {
	h := sha256.New()
	buf := make([]byte, 64<<10)
	for left := n; left > 0; {
		b := buf[:min(left, len(buf))]
		rand.Read(b)
		h.Write(b)
		if _, err := w.Write(b); err != nil {
			return [32]byte{}, err
		}
		left -= len(b)
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum, w.(interface{ CloseWrite() error }).CloseWrite()
}

// readAndHash reads r to EOF and returns the hash and count.
func readAndHash(r io.Reader) ([32]byte, int64, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum, n, err
}

func TestBulkBothWays(t *testing.T) { eachEngine(t, testBulkBothWays) }

func testBulkBothWays(t *testing.T, e *Engine) {
	const size = 16 << 20
	for _, tc := range []struct {
		name, network string
		pools         *Pools
	}{
		{"tcp splice", "tcp", NewPools(0)},
		{"tcp big pipe", "tcp", NewPools(1 << 20)},
		{"tcp buffers", "tcp", NewPools(-1)},
		{"unix splice", "unix", NewPools(0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var counters Counters
			p := startPair(t, tc.network, Options{Engine: e, Pools: tc.pools, Counters: &counters})
			type res struct {
				sent, got [32]byte
				n         int64
				err       error
			}
			up, down := make(chan res, 2), make(chan res, 2)
			transfer := func(from, to net.Conn, out chan res) {
				var wg sync.WaitGroup
				var r res
				wg.Add(1)
				go func() {
					defer wg.Done()
					var err error
					r.got, r.n, err = readAndHash(to)
					if err != nil {
						r.err = err
					}
				}()
				sent, err := sendAndHash(from, size)
				wg.Wait()
				r.sent = sent
				if err != nil {
					r.err = err
				}
				out <- r
			}
			go transfer(p.client, p.server, up)
			go transfer(p.server, p.client, down)
			for _, ch := range []chan res{up, down} {
				r := <-ch
				if r.err != nil {
					t.Fatal(r.err)
				}
				if r.n != size || r.sent != r.got {
					t.Fatalf("got %d bytes, hash match %v", r.n, r.sent == r.got)
				}
			}
			final := p.wait(t)
			if final.Up != size || final.Down != size || final.End != access.EOF {
				t.Fatalf("result %+v", final)
			}
			if counters.Up.Load() != size || counters.Down.Load() != size {
				t.Fatalf("counters up %d down %d", counters.Up.Load(), counters.Down.Load())
			}
			if n := tc.pools.lent.Load(); n != 0 {
				t.Fatalf("%d carriers still lent after the relay ended", n)
			}
		})
	}
}

// TestHalfCloseClientFirst: the client sends a request and FIN; the backend
// reads to EOF and only then answers.
func TestHalfCloseClientFirst(t *testing.T) { eachEngine(t, testHalfCloseClientFirst) }

func testHalfCloseClientFirst(t *testing.T, e *Engine) {
	p := startPair(t, "tcp", Options{Engine: e})
	go func() {
		req, _ := io.ReadAll(p.server)
		p.server.Write(bytes.ToUpper(req))
		p.server.(*net.TCPConn).CloseWrite()
	}()
	p.client.Write([]byte("hello"))
	p.client.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(p.client)
	if err != nil || string(got) != "HELLO" {
		t.Fatalf("got %q, %v", got, err)
	}
	if r := p.wait(t); r.End != access.EOF || r.Up != 5 || r.Down != 5 {
		t.Fatalf("result %+v", r)
	}
}

// TestHalfCloseBackendFirst: the backend sends FIN first while the client
// keeps sending.
func TestHalfCloseBackendFirst(t *testing.T) { eachEngine(t, testHalfCloseBackendFirst) }

func testHalfCloseBackendFirst(t *testing.T, e *Engine) {
	p := startPair(t, "tcp", Options{Engine: e})
	p.server.Write([]byte("banner"))
	p.server.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(p.client)
	if err != nil || string(got) != "banner" {
		t.Fatalf("got %q, %v", got, err)
	}
	for i := 0; i < 10; i++ {
		if _, err := p.client.Write([]byte("more")); err != nil {
			t.Fatal(err)
		}
	}
	p.client.(*net.TCPConn).CloseWrite()
	rest, err := io.ReadAll(p.server)
	if err != nil || len(rest) != 40 {
		t.Fatalf("backend got %d bytes, %v", len(rest), err)
	}
	if r := p.wait(t); r.End != access.EOF {
		t.Fatalf("result %+v", r)
	}
}

func TestResetPropagates(t *testing.T) { eachEngine(t, testResetPropagates) }

func testResetPropagates(t *testing.T, e *Engine) {
	for _, side := range []string{"backend", "client"} {
		t.Run(side, func(t *testing.T) {
			p := startPair(t, "tcp", Options{Engine: e})
			resetter, other := p.server, p.client
			if side == "client" {
				resetter, other = p.client, p.server
			}
			resetter.Write([]byte("x"))
			buf := make([]byte, 1)
			if _, err := io.ReadFull(other, buf); err != nil {
				t.Fatal(err)
			}
			resetter.(*net.TCPConn).SetLinger(0)
			resetter.Close()
			other.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err := other.Read(buf)
			if !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("other side got %v, want connection reset", err)
			}
			if r := p.wait(t); r.End != access.Reset {
				t.Fatalf("result %+v", r)
			}
		})
	}
}

func TestIdleTimeout(t *testing.T) { eachEngine(t, testIdleTimeout) }

func testIdleTimeout(t *testing.T, e *Engine) {
	p := startPair(t, "tcp", Options{Engine: e, IdleTimeout: 200 * time.Millisecond})
	if r := p.wait(t); r.End != access.IdleTimeout {
		t.Fatalf("result %+v", r)
	}
	if _, err := p.client.Read(make([]byte, 1)); err == nil {
		t.Fatal("client still open after idle timeout")
	}
}

// TestIdleTimeoutOtherDirection: traffic one way keeps the relay alive even
// though the other direction is silent.
func TestIdleTimeoutOtherDirection(t *testing.T) { eachEngine(t, testIdleTimeoutOtherDirection) }

func testIdleTimeoutOtherDirection(t *testing.T, e *Engine) {
	// Ten pings 200 ms apart outlive the 1 s limit twice over, and a ping
	// may come 800 ms late before the relay would be idle.
	p := startPair(t, "tcp", Options{Engine: e, IdleTimeout: time.Second})
	buf := make([]byte, 4)
	for i := 0; i < 10; i++ {
		time.Sleep(200 * time.Millisecond) // the traffic pattern under test
		if _, err := p.server.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(p.client, buf); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
	}
	select {
	case r := <-p.result:
		t.Fatalf("relay ended early: %+v", r)
	default:
	}
	if r := p.wait(t); r.End != access.IdleTimeout || r.Down != 40 {
		t.Fatalf("result %+v", r)
	}
}

func TestHalfCloseTimeout(t *testing.T) { eachEngine(t, testHalfCloseTimeout) }

func testHalfCloseTimeout(t *testing.T, e *Engine) {
	p := startPair(t, "tcp", Options{Engine: e, IdleTimeout: time.Hour, HalfCloseTimeout: 200 * time.Millisecond})
	p.client.(*net.TCPConn).CloseWrite()
	if r := p.wait(t); r.End != access.IdleTimeout {
		t.Fatalf("result %+v", r)
	}
}

func TestStop(t *testing.T) { eachEngine(t, testStop) }

func testStop(t *testing.T, e *Engine) {
	p := startPair(t, "tcp", Options{Engine: e})
	p.client.Write([]byte("abc"))
	io.ReadFull(p.server, make([]byte, 3))
	p.relay.Stop(access.Drained)
	if r := p.wait(t); r.End != access.Drained || r.Up != 3 {
		t.Fatalf("result %+v", r)
	}
	if _, err := p.client.Read(make([]byte, 1)); err == nil {
		t.Fatal("client still open after stop")
	}
}

// TestIdleHoldsNothing: between messages a relay holds no pipe and no buffer.
func TestIdleHoldsNothing(t *testing.T) { eachEngine(t, testIdleHoldsNothing) }

func testIdleHoldsNothing(t *testing.T, e *Engine) {
	pools := NewPools(0)
	p := startPair(t, "tcp", Options{Engine: e, Pools: pools})
	msg, buf := bytes.Repeat([]byte("idle"), 250), make([]byte, 1000)
	for i := 0; i < 20; i++ {
		for _, way := range []struct {
			name     string
			from, to net.Conn
		}{{"up", p.client, p.server}, {"down", p.server, p.client}} {
			if _, err := way.from.Write(msg); err != nil {
				t.Fatalf("round %d %s: %v", i, way.name, err)
			}
			if _, err := io.ReadFull(way.to, buf); err != nil || !bytes.Equal(buf, msg) {
				t.Fatalf("round %d %s: got %q, %v", i, way.name, buf, err)
			}
		}
		if n := waitLent(pools); n != 0 {
			t.Fatalf("round %d: %d carriers lent while idle", i, n)
		}
	}
}

// TestBandwidth: a limited relay does not move bytes faster than its rate
// (a lower bound on the time taken, which a slow machine cannot break), and
// still delivers every byte.
func TestBandwidth(t *testing.T) { eachEngine(t, testBandwidth) }

func testBandwidth(t *testing.T, e *Engine) {
	const rate = 512 << 10
	const size = 1 << 20
	p := startPair(t, "tcp", Options{Engine: e, Bandwidth: rate})
	start := time.Now()
	type sent struct {
		sum [32]byte
		err error
	}
	sentCh := make(chan sent, 1)
	go func() { s, err := sendAndHash(p.client, size); sentCh <- sent{s, err} }()
	got, n, err := readAndHash(p.server)
	took := time.Since(start)
	if err != nil || n != size {
		t.Fatalf("got %d bytes, %v", n, err)
	}
	if s := <-sentCh; s.err != nil || s.sum != got {
		t.Fatalf("send: %v; bytes changed on the way: %v", s.err, s.sum != got)
	}
	// The bucket starts full (a tenth of a second's worth), so the
	// transfer cannot finish before (size - burst) / rate.
	burst := rate / 10
	least := time.Duration(size-burst) * time.Second / rate
	if took < least {
		t.Fatalf("%d bytes at %d B/s took %v, less than %v", size, rate, took, least)
	}
}

// TestSmallChunksSkipPipes: request/response traffic of a few bytes is
// copied through buffers and never takes a pipe; a bulk transfer on the
// same pools does splice.
func TestSmallChunksSkipPipes(t *testing.T) { eachEngine(t, testSmallChunksSkipPipes) }

func testSmallChunksSkipPipes(t *testing.T, e *Engine) {
	pools := NewPools(0)
	defer pools.Close()
	p := startPair(t, "tcp", Options{Engine: e, Pools: pools})
	go io.Copy(p.server, p.server) // echo
	msg, buf := []byte("ping-0123456789"), make([]byte, 15)
	for i := range 200 {
		if _, err := p.client.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(p.client, buf); err != nil || !bytes.Equal(buf, msg) {
			t.Fatalf("round trip %d: %q, %v", i, buf, err)
		}
	}
	if n := pools.made.Load(); n != 0 {
		t.Fatalf("%d pipes made for 15-byte messages, want none", n)
	}
	// Bulk: 8 MiB one way, read back through the echo.
	big := bytes.Repeat([]byte("0123456789abcdef"), 512<<10)
	go p.client.Write(big)
	got := make([]byte, len(big))
	if _, err := io.ReadFull(p.client, got); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("bulk echo: %v (equal %v)", err, bytes.Equal(got, big))
	}
	if pools.made.Load() == 0 {
		t.Fatal("no pipe made for an 8 MiB transfer")
	}
}

// TestMixedChunkSizes sends bursts of every size from a byte to a few
// hundred KiB both ways at once, with pauses between some of them, so that
// directions switch between buffers and pipes again and again (and park
// in between); every byte must arrive in order.
func TestMixedChunkSizes(t *testing.T) { eachEngine(t, testMixedChunkSizes) }

func testMixedChunkSizes(t *testing.T, e *Engine) {
	pools := NewPools(0)
	defer pools.Close()
	p := startPair(t, "tcp", Options{Engine: e, Pools: pools, ParkAfter: time.Millisecond, Parker: newParker(t)})
	sizes := []int{1, 64, 4095, 4096, 4097, 32 << 10, 1, 300 << 10, 7, 1 << 20, 100, 64 << 10, 3}
	send := func(w net.Conn) ([32]byte, error) {
		h := sha256.New()
		for round := range 3 {
			for i, n := range sizes {
				b := make([]byte, n)
				rand.Read(b)
				h.Write(b)
				if _, err := w.Write(b); err != nil {
					return [32]byte{}, err
				}
				if (i+round)%4 == 0 {
					time.Sleep(3 * time.Millisecond) // long enough to park
				}
			}
		}
		var sum [32]byte
		copy(sum[:], h.Sum(nil))
		return sum, w.(interface{ CloseWrite() error }).CloseWrite()
	}
	type out struct {
		sum [32]byte
		err error
	}
	upSent, downSent := make(chan out, 1), make(chan out, 1)
	go func() { s, err := send(p.client); upSent <- out{s, err} }()
	go func() { s, err := send(p.server); downSent <- out{s, err} }()
	upGot, _, upErr := readAndHash(p.server)
	downGot, _, downErr := readAndHash(p.client)
	u, d := <-upSent, <-downSent
	if u.err != nil || d.err != nil || upErr != nil || downErr != nil {
		t.Fatalf("errors: send up %v, send down %v, read up %v, read down %v", u.err, d.err, upErr, downErr)
	}
	if upGot != u.sum || downGot != d.sum {
		t.Fatal("bytes changed on the way")
	}
	if r := p.wait(t); r.End != access.EOF {
		t.Fatalf("result %+v", r)
	}
	if n := waitLent(pools); n != 0 {
		t.Fatalf("%d carriers still lent", n)
	}
}

// TestStopDuringBulk: Stop ends a relay promptly while data streams both
// ways without a pause, so a direction never has to wait for its sockets.
func TestStopDuringBulk(t *testing.T) { eachEngine(t, testStopDuringBulk) }

func testStopDuringBulk(t *testing.T, e *Engine) {
	for _, tc := range []struct {
		name  string
		pools *Pools
	}{{"splice", NewPools(0)}, {"buffers", NewPools(-1)}} {
		t.Run(tc.name, func(t *testing.T) {
			defer tc.pools.Close()
			counters := &Counters{}
			p := startPair(t, "tcp", Options{Engine: e, Pools: tc.pools, Counters: counters})
			stream := func(c net.Conn) {
				buf := make([]byte, 64<<10)
				for {
					if _, err := c.Write(buf); err != nil {
						return
					}
				}
			}
			drain := func(c net.Conn) { io.Copy(io.Discard, c) }
			go stream(p.client)
			go drain(p.server)
			go stream(p.server)
			go drain(p.client)
			waitFor(t, "a MiB relayed each way", func() bool {
				return counters.BytesUp() >= 1<<20 && counters.BytesDown() >= 1<<20
			})
			p.relay.Stop(access.Closed)
			if r := p.wait(t); r.End != access.Closed || r.Up == 0 || r.Down == 0 {
				t.Fatalf("result %+v", r)
			}
			if n := waitLent(tc.pools); n != 0 {
				t.Fatalf("%d carriers still lent", n)
			}
		})
	}
}

func TestBusyThenHalfClose(t *testing.T) { eachEngine(t, testBusyThenHalfClose) }

// testBusyThenHalfClose: a connection busy for longer than its idle limit
// and then half-closed ends with EOF, not a timeout: the half-close limit
// (shorter than the time since the idle timer last looked) must count from
// the last activity, not from when the timer last saw some. The backend
// has the half-close limit, 500 ms, to answer the FIN with its own.
func testBusyThenHalfClose(t *testing.T, e *Engine) {
	p := startPair(t, "tcp", Options{Engine: e, IdleTimeout: time.Second, HalfCloseTimeout: 500 * time.Millisecond})
	go io.Copy(p.server, p.server) // echo until the client's FIN
	buf := make([]byte, 1)
	for i := range 15 {
		time.Sleep(100 * time.Millisecond)
		if _, err := p.client.Write([]byte{'.'}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(p.client, buf); err != nil {
			t.Fatalf("tick %d: %v", i, err)
		}
	}
	p.client.(*net.TCPConn).CloseWrite()
	go func() {
		io.Copy(io.Discard, p.server)
		p.server.(*net.TCPConn).CloseWrite()
	}()
	if r := p.wait(t); r.End != access.EOF || r.Up != 15 || r.Down != 15 {
		t.Fatalf("result %+v, want eof after 15 bytes each way", r)
	}
}

// waitLent waits, boundedly, for the relay goroutines to return what they
// borrowed after the last byte was delivered, and returns what is still lent.
func waitLent(pools *Pools) int64 {
	for i := 0; i < 200 && pools.lent.Load() != 0; i++ {
		time.Sleep(5 * time.Millisecond)
	}
	return pools.lent.Load()
}
