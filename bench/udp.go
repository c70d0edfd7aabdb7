package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// The UDP figures. Each runs through the direct path and every forwarder
// that relays UDP (see forwarder.udpArgv), with a fresh backend per
// measurement:
//
//   - request/response: udpRRSockets client sockets each keep one 64-byte
//     request in flight to the echo backend; round trips per second.
//   - one-way: udpSenders senders each send as fast as they can for the
//     figure's duration; the rate is what the sink received and verified,
//     not what was sent.
const (
	udpRRSockets = 16
	udpSenders   = 4
	// udpRRTimeout is how long a request waits for its answer before it is
	// sent again (and counted lost).
	udpRRTimeout = 200 * time.Millisecond
	// udpOpenLimit bounds the opening of the request/response sessions.
	udpOpenLimit = 10 * time.Second
	// sinkQuiet and sinkSettle bound the wait for datagrams still in a
	// forwarder's buffers once the senders stop.
	sinkQuiet  = 100 * time.Millisecond
	sinkSettle = 2 * time.Second
)

// udpFigures returns the UDP figures in table order.
func udpFigures() []figure {
	return []figure{
		figure{name: "udp request/response", udp: true, backend: echoBackend, rows: []row{
			{label: "udp req/resp/s (16 sockets, 64 B)", format: "%.0f", cmp: vsDirect},
		}, run: udpReqResp}.withCPU(usPerOp, "round trip").withBusiestThread(),
		figure{name: "udp one-way 64 B", udp: true, backend: sinkBackend, rows: []row{
			{label: "udp delivered dgrams/s (4 senders, 64 B)", format: "%.0f", cmp: vsDirect},
		}, run: udpOneWay(64, false)}.withCPU(usPerOp, "datagram").withBusiestThread(),
		figure{name: "udp one-way 1400 B", udp: true, backend: sinkBackend, rows: []row{
			{label: "udp delivered Gbit/s (4 senders, 1400 B)", format: "%.2f", cmp: vsDirect},
		}, run: udpOneWay(1400, true)}.withCPU(msPerGbit, "").withBusiestThread(),
	}
}

// relays reports whether f takes part in fig: the direct path always (it
// has no configuration at all); otherwise forwarders configured for the
// figure's transport, or for the TLS figures.
func (f forwarder) relays(fig figure) bool {
	switch {
	case f.direct():
		return true
	case fig.udp:
		return f.udpArgv != nil
	case fig.tls != nil:
		return f.tlsArgv != nil
	case fig.listeners != nil:
		return f.bin != ""
	case fig.states != nil:
		return f.statesArgv != nil
	}
	return f.argv != nil
}

// measureUDP starts a fresh UDP backend and f in front of it, runs the
// figure, and stops both. The error gathers the figure's verdict, what the
// sink found wrong, and the forwarder dying or refusing to stop.
func (r *runner) measureUDP(ctx context.Context, fig figure, f forwarder, dir string) (result, error) {
	be, err := startUDPBackend(fig.backend)
	if err != nil {
		return result{}, err
	}
	defer be.close()
	addr, p, err := launchUDP(ctx, f, dir, be.addr())
	if err != nil {
		return result{}, err
	}
	out, err := fig.measured(ctx, env{addr: addr, proc: p, d: r.d, udp: be})
	err = errors.Join(err, be.failure())
	if p != nil {
		err = errors.Join(err, stopUDP(p))
	}
	return out, err
}

// launchUDP starts f's UDP relay in front of backend and returns the
// address clients send to and the process, nil for the direct path.
func launchUDP(ctx context.Context, f forwarder, dir, backend string) (string, *proc, error) {
	if f.udpArgv == nil {
		return backend, nil, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", nil, fmt.Errorf("%s: %w", f.name, err)
	}
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return "", nil, fmt.Errorf("find a free udp port: %w", err)
	}
	listen := c.LocalAddr().(*net.UDPAddr)
	c.Close()
	argv, err := f.udpArgv(dir, listen.String(), backend)
	if err != nil {
		return "", nil, err
	}
	p, err := startProc(ctx, f.name, dir, argv, listen.Port, udpBound)
	if err != nil {
		return "", nil, err
	}
	return listen.String(), p, nil
}

// stopUDP stops a UDP forwarder and whatever it forked (socat's children
// outlive their parent). socat exits with status 143 on SIGTERM, which is
// a clean stop.
func stopUDP(p *proc) error {
	err := p.stop()
	_ = killGroup(p) // the leader is gone; its children may not be
	var exit interface{ ExitCode() int }
	if err != nil && errors.As(p.waitErr, &exit) && exit.ExitCode() == 128+15 {
		return nil
	}
	return err
}

// udpReqResp keeps udpRRSockets sockets playing 64-byte ping-pong with the
// echo backend for the figure's duration and reports round trips per
// second. A request unanswered for udpRRTimeout is sent again and counted
// lost; an answer that differs from its request fails the figure. The
// sessions are opened before the clock starts, one at a time (see
// openUDPSessions).
func udpReqResp(ctx context.Context, e env) (result, error) {
	conns, err := openUDPSessions(ctx, e.addr, udpRRSockets)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	if err != nil {
		return result{}, err
	}
	counts := make([]int64, udpRRSockets)
	lost := make([]int64, udpRRSockets)
	errs := make([]error, udpRRSockets)
	start := time.Now()
	until := start.Add(e.d)
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Go(func() { counts[i], lost[i], errs[i] = udpPingPong(ctx, c, uint32(i), until) })
	}
	wg.Wait()
	elapsed := time.Since(start)
	var total, totalLost int64
	for i := range counts {
		total += counts[i]
		totalLost += lost[i]
	}
	res := result{values: []float64{float64(total) / elapsed.Seconds()}}
	if totalLost > 0 {
		res.notes = append(res.notes, fmt.Sprintf("%d requests or answers lost and sent again (each cost %v)", totalLost, udpRRTimeout))
	}
	if err := errors.Join(errs...); err != nil {
		return res, err
	}
	if total == 0 {
		return res, errors.New("no UDP round trip completed")
	}
	return res, ctx.Err()
}

// openUDPSessions dials n sockets to addr and opens the forwarder's session
// for each with a first round trip (request 1), one socket after another.
// A forwarder learns a client from its first datagram; socat's forking
// listener hands the listening socket, connected to that client, to a
// child, and datagrams of other clients already queued on it go along and
// get their answers sent to the wrong client. Opening the sessions one at a
// time measures the steady state, for every forwarder alike.
func openUDPSessions(ctx context.Context, addr string, n int) ([]*net.UDPConn, error) {
	deadline := time.Now().Add(udpOpenLimit)
	msg, buf := make([]byte, msgSize), make([]byte, 1<<16)
	var conns []*net.UDPConn
	for i := range n {
		c, err := dialUDP(addr)
		if err != nil {
			return conns, err
		}
		conns = append(conns, c)
		fillDatagram(msg, uint32(i), 1)
		ok := false
		for !ok && err == nil && ctx.Err() == nil && time.Now().Before(deadline) {
			ok, err = udpRoundTrip(c, msg, buf, 1)
		}
		if err != nil {
			return conns, fmt.Errorf("udp request/response: opening session %d: %w", i, err)
		}
		if !ok {
			return conns, fmt.Errorf("udp request/response: session %d not answered within %v", i, udpOpenLimit)
		}
	}
	return conns, ctx.Err()
}

// udpPingPong does round trips on c, an opened session (request 1 is done),
// until the deadline and returns how many completed and how many requests
// were sent again.
func udpPingPong(ctx context.Context, c *net.UDPConn, id uint32, until time.Time) (done, lost int64, err error) {
	defer context.AfterFunc(ctx, func() { c.Close() })()
	msg, buf := make([]byte, msgSize), make([]byte, 1<<16)
	for seq := uint64(2); time.Now().Before(until); seq++ {
		fillDatagram(msg, id, seq)
		ok, err := udpRoundTrip(c, msg, buf, seq)
		for !ok && err == nil && time.Now().Before(until) {
			lost++
			ok, err = udpRoundTrip(c, msg, buf, seq)
		}
		if err != nil {
			return done, lost, fmt.Errorf("udp request/response after %d round trips: %w", done, err)
		}
		if ok {
			done++
		}
	}
	return done, lost, ctx.Err()
}

// udpRoundTrip sends request seq and waits up to udpRRTimeout for its
// answer, skipping late answers to earlier requests. It reports false when
// none came in time.
func udpRoundTrip(c *net.UDPConn, msg, buf []byte, seq uint64) (bool, error) {
	if _, err := c.Write(msg); err != nil && !errors.Is(err, syscall.ECONNREFUSED) {
		return false, err
	}
	c.SetReadDeadline(time.Now().Add(udpRRTimeout))
	for {
		n, err := c.Read(buf)
		// A refusal (ICMP port unreachable) means the forwarder was not
		// bound for a moment, as socat's fork mode is not while it hands a
		// client to a child: the request is lost, like any other.
		if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, syscall.ECONNREFUSED) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if n >= 8 && binary.BigEndian.Uint64(buf) < seq {
			continue // the answer to a request that was sent again
		}
		if string(buf[:n]) != string(msg) {
			return false, fmt.Errorf("%w: %d bytes back for %d sent", errEchoMismatch, n, len(msg))
		}
		return true, nil
	}
}

// udpOneWay returns a figure in which udpSenders senders send size-byte
// datagrams to the sink as fast as they can for the figure's duration. It
// reports what the sink received per second: datagrams, or Gbit/s with
// gbits.
func udpOneWay(size int, gbits bool) func(context.Context, env) (result, error) {
	return func(ctx context.Context, e env) (result, error) {
		sent := make([]int64, udpSenders)
		errs := make([]error, udpSenders)
		until := time.Now().Add(e.d)
		var wg sync.WaitGroup
		for i := range udpSenders {
			wg.Go(func() { sent[i], errs[i] = udpSend(ctx, e.addr, uint32(i), size, until) })
		}
		wg.Wait()
		e.udp.waitQuiet(sinkQuiet, sinkSettle)
		var total int64
		for _, n := range sent {
			total += n
		}
		got, bytes := e.udp.received.Load(), e.udp.bytes.Load()
		v := float64(got) / e.d.Seconds()
		if gbits {
			v = gbitPerSec(bytes, e.d)
		}
		res := result{values: []float64{v}}
		if total > 0 {
			res.notes = append(res.notes, fmt.Sprintf("%d of %d datagrams delivered (%.0f%%)", got, total, 100*float64(got)/float64(total)))
		}
		if err := errors.Join(errs...); err != nil {
			return res, err
		}
		if got == 0 {
			return res, errors.New("the sink received no datagram")
		}
		return res, ctx.Err()
	}
}

// udpSend sends numbered datagrams of size bytes to addr until the deadline
// and returns how many it sent. A refusal (ICMP from a forwarder still
// starting, or one that has no session yet) is not an error.
func udpSend(ctx context.Context, addr string, id uint32, size int, until time.Time) (int64, error) {
	c, err := dialUDP(addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	msg := make([]byte, size)
	var n int64
	for seq := uint64(1); ctx.Err() == nil; seq++ {
		if seq%64 == 0 && !time.Now().Before(until) {
			break
		}
		fillDatagram(msg, id, seq)
		if _, err := c.Write(msg); err == nil {
			n++
		}
	}
	return n, ctx.Err()
}

// dialUDP returns a UDP socket connected to addr with large buffers.
func dialUDP(addr string) (*net.UDPConn, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	c, err := net.DialUDP("udp", nil, ua)
	if err != nil {
		return nil, err
	}
	c.SetReadBuffer(udpBufSize)
	c.SetWriteBuffer(udpBufSize)
	return c, nil
}
