package main

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// backendKind names one of the bench's own servers that the forwarders
// relay to.
type backendKind int

// The bench's backends. Their wire protocols:
//
//   - sink: the client sends an 8-byte seed and then the seed's pattern
//     stream; after the client's FIN the sink replies with the number of
//     bytes it received (8 bytes) and a status byte (0 when every byte
//     matched), then closes.
//   - source: the client sends an 8-byte seed and an 8-byte duration in
//     nanoseconds; the source sends the seed's pattern stream for that long,
//     then FIN; the client answers with the number of bytes it received
//     (8 bytes) and the source checks it against what it sent.
//   - echo: every byte is sent back; FIN is answered with FIN. Echo 2 is
//     a second one, for the rule with two backends (statefigures.go).
//   - hello sink: one TLS handshake record (a ClientHello), then as sink.
//   - TLS echo, TLS sink: a TLS server (tls.go), then as echo or sink.
//   - decoys: the backends of the passthrough rule's routes that no client
//     asks for; a connection to one is a failure.
//
// Integers are big-endian.
const (
	sinkBackend backendKind = iota
	sourceBackend
	echoBackend
	helloSinkBackend
	tlsEchoBackend
	tlsSinkBackend
	decoyOneBackend
	decoyTwoBackend
	echoTwoBackend
	numBackends
)

// String returns the backend's name for messages.
func (k backendKind) String() string {
	switch k {
	case sinkBackend:
		return "sink"
	case sourceBackend:
		return "source"
	case echoBackend:
		return "echo"
	case echoTwoBackend:
		return "echo 2"
	case helloSinkBackend:
		return "hello sink"
	case tlsEchoBackend:
		return "tls echo"
	case tlsSinkBackend:
		return "tls sink"
	case decoyOneBackend, decoyTwoBackend:
		return "decoy"
	}
	return fmt.Sprintf("backend(%d)", int(k))
}

// echoBufSize is the echo backend's buffer per connection. It is small
// because the idle figure holds thousands of echo connections open.
const echoBufSize = 4 << 10

// backends runs the bench's sink, source and echo servers on loopback and
// collects what they find wrong: a backend cannot fail a figure by itself,
// so it records failures for the figure to collect.
type backends struct {
	listeners [numBackends]net.Listener
	tlsCfg    *tls.Config    // the TLS backends' configuration
	wg        sync.WaitGroup // accept loops

	mu       sync.Mutex // guards the following fields
	failures []error
	conns    map[net.Conn]struct{} // open backend-side connections
	drained  chan struct{}         // closed (and replaced) when conns becomes empty
	closed   bool
}

// startBackends listens on free loopback ports and serves every backend,
// the TLS ones with m's certificate.
func startBackends(m *tlsMaterial) (*backends, error) {
	b := &backends{tlsCfg: m.serverConfig(), conns: make(map[net.Conn]struct{}), drained: make(chan struct{})}
	// No keepalive on accepted connections: its four socket options per
	// connection are a tenth of the echo backend's system calls in the
	// new-connections figure.
	lc := net.ListenConfig{KeepAlive: -1}
	for k := range numBackends {
		ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
		if err != nil {
			b.close()
			return nil, fmt.Errorf("%v backend: listen: %w", k, err)
		}
		b.listeners[k] = ln
	}
	for k, ln := range b.listeners {
		b.wg.Add(1)
		go b.serve(backendKind(k), ln)
	}
	return b, nil
}

// addr returns the loopback address of backend k.
func (b *backends) addr(k backendKind) string {
	return b.listeners[k].Addr().String()
}

// close stops every backend and closes its open connections.
func (b *backends) close() {
	for _, ln := range b.listeners {
		if ln != nil {
			ln.Close()
		}
	}
	b.mu.Lock()
	b.closed = true
	for c := range b.conns {
		c.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

// fail records something a backend found wrong.
func (b *backends) fail(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failures = append(b.failures, err)
}

// takeFailures returns the failures recorded since the last call, joined,
// or nil.
func (b *backends) takeFailures() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	err := errors.Join(b.failures...)
	b.failures = nil
	return err
}

// waitIdle waits until no backend connection is open, for at most timeout.
// Figures call it so that every backend verdict is in before they look, and
// so that a forwarder which does not pass on a client's close is caught.
func (b *backends) waitIdle(timeout time.Duration) error {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		b.mu.Lock()
		n, ch := len(b.conns), b.drained
		b.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ch:
		case <-timer.C:
			return fmt.Errorf("%d backend connections still open %v after the clients finished", n, timeout)
		}
	}
}

// track registers an open backend connection; it reports false when the
// backends are closing and the connection should be dropped.
func (b *backends) track(c net.Conn) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false
	}
	b.conns[c] = struct{}{}
	return true
}

// untrack closes c and forgets it.
func (b *backends) untrack(c net.Conn) {
	c.Close()
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.conns, c)
	if len(b.conns) == 0 {
		close(b.drained)
		b.drained = make(chan struct{})
	}
}

// serve accepts connections for backend k until its listener is closed.
func (b *backends) serve(k backendKind, ln net.Listener) {
	defer b.wg.Done()
	handle := map[backendKind]func(halfConn){
		sinkBackend: b.sink, sourceBackend: b.source, echoBackend: echo, echoTwoBackend: echo,
		helloSinkBackend: b.helloSink, tlsEchoBackend: b.tlsServe(echo), tlsSinkBackend: b.tlsServe(b.sink),
		decoyOneBackend: b.decoy(sniNames[0]), decoyTwoBackend: b.decoy(sniNames[1]),
	}[k]
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			// Out of descriptors, most likely: back off as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		if !b.track(c) {
			c.Close()
			continue
		}
		go func() {
			defer b.untrack(c)
			handle(c.(*net.TCPConn))
		}()
	}
}

// sink verifies one incoming pattern stream and reports its length.
func (b *backends) sink(c halfConn) {
	var seed [8]byte
	if _, err := io.ReadFull(c, seed[:]); err != nil {
		return // a client that sent nothing has nothing to verify
	}
	chk := streamChecker{p: newPattern(binary.BigEndian.Uint64(seed[:]))}
	buf := make([]byte, maxChunk)
	var status byte
	for status == 0 {
		n, err := c.Read(buf)
		if cerr := chk.check(buf[:n]); cerr != nil {
			b.fail(fmt.Errorf("sink: %w", cerr))
			status = 1
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			b.fail(fmt.Errorf("sink: stream %016x: read after %d bytes: %w", chk.p.seed, chk.total, err))
			return
		}
	}
	var reply [9]byte
	binary.BigEndian.PutUint64(reply[:8], uint64(chk.total))
	reply[8] = status
	if _, err := c.Write(reply[:]); err != nil && status == 0 {
		b.fail(fmt.Errorf("sink: stream %016x: reply: %w", chk.p.seed, err))
	}
}

// sourceReplyTimeout bounds how long the source waits for the client's
// count after its FIN.
const sourceReplyTimeout = 30 * time.Second

// source sends a pattern stream for the requested time and checks that the
// client received all of it.
func (b *backends) source(c halfConn) {
	var req [16]byte
	if _, err := io.ReadFull(c, req[:]); err != nil {
		return // a client that asked for nothing gets nothing
	}
	w := streamWriter{p: newPattern(binary.BigEndian.Uint64(req[:8]))}
	d := time.Duration(binary.BigEndian.Uint64(req[8:]))
	sent, err := writeStream(c, &w, time.Now().Add(d))
	if err != nil {
		b.fail(fmt.Errorf("source: %w", err))
		return
	}
	if err := c.CloseWrite(); err != nil {
		b.fail(fmt.Errorf("source: stream %016x: close-write: %w", w.p.seed, err))
		return
	}
	c.SetReadDeadline(time.Now().Add(sourceReplyTimeout))
	var count [8]byte
	if _, err := io.ReadFull(c, count[:]); err != nil {
		b.fail(fmt.Errorf("source: stream %016x: no byte count from the client after FIN: %w", w.p.seed, err))
		return
	}
	if got := int64(binary.BigEndian.Uint64(count[:])); got != sent {
		b.fail(fmt.Errorf("source: stream %016x: sent %d bytes, client received %d", w.p.seed, sent, got))
	}
}

// writeStream writes w's stream to c until the deadline and returns how
// many bytes it wrote. Reaching the deadline is the normal end.
func writeStream(c net.Conn, w *streamWriter, deadline time.Time) (int64, error) {
	if err := c.SetWriteDeadline(deadline); err != nil {
		return 0, err
	}
	var sent int64
	for {
		n, err := c.Write(w.next(maxChunk))
		w.advance(n)
		sent += int64(n)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return sent, c.SetWriteDeadline(time.Time{})
		}
		if err != nil {
			return sent, fmt.Errorf("stream %016x: write after %d bytes: %w", w.p.seed, sent, err)
		}
	}
}

// echo sends back everything it reads and answers FIN with FIN.
func echo(c halfConn) {
	buf := make([]byte, echoBufSize)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err == io.EOF {
			c.CloseWrite()
			return
		}
		if err != nil {
			return
		}
	}
}
