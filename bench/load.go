package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// msgSize is the payload of the connection-rate and request/response
	// figures.
	msgSize = 64
	// connClients is how many clients open connections at once.
	connClients = 64
	// rrConns is how many persistent connections play ping-pong.
	rrConns = 16
	// idleOpeners is how many goroutines open the idle connections.
	idleOpeners = 32
	// idleSettle is how long the idle figure lets the forwarder settle
	// before reading its memory.
	idleSettle = time.Second
)

// errEchoMismatch marks an echo that came back different: an integrity
// failure, unlike a refused or reset connection.
var errEchoMismatch = errors.New("echo came back different")

// randomMsg returns msgSize random bytes.
func randomMsg() []byte {
	msg := make([]byte, msgSize)
	for i := range msg {
		msg[i] = byte(rand.Uint32())
	}
	return msg
}

// roundTrip writes msg on c and reads its echo into buf, which must be as
// long as msg.
func roundTrip(c net.Conn, msg, buf []byte) error {
	if _, err := c.Write(msg); err != nil {
		return err
	}
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	return checkEcho(msg, buf)
}

// checkEcho reports errEchoMismatch unless buf holds msg.
func checkEcho(msg, buf []byte) error {
	if !bytes.Equal(msg, buf) {
		return errEchoMismatch
	}
	return nil
}

// connCounts is what one connection-rate client counted.
type connCounts struct {
	ok, failed int64
	firstErr   error // the first failure, for the notes
	integrity  error // an echo mismatch, which fails the figure
}

// newConns has connClients clients each connect, send msgSize bytes, read
// the echo and close, over and over for the figure's duration, through the
// lean client of connclient.go. It reports completed cycles per second and
// the number of failed cycles.
func newConns(ctx context.Context, e env) (result, error) {
	targets := make([]connTarget, connClients)
	for i := range targets {
		var err error
		if targets[i], err = newConnTarget(e.addr); err != nil {
			return result{}, err
		}
	}
	counts := make([]connCounts, connClients)
	start := time.Now()
	until := start.Add(e.d)
	var wg sync.WaitGroup
	for i := range counts {
		wg.Go(func() { counts[i] = connLoop(ctx, targets[i].cycle, until) })
	}
	wg.Wait()
	return connResult(ctx, counts, time.Since(start))
}

// connResult sums the connection-rate clients' counts over elapsed: cycles
// per second and failed cycles. An echo that came back different, or no
// completed cycle at all, fails the figure.
func connResult(ctx context.Context, counts []connCounts, elapsed time.Duration) (result, error) {
	var total connCounts
	var integrity []error
	for _, c := range counts {
		total.ok += c.ok
		total.failed += c.failed
		if total.firstErr == nil {
			total.firstErr = c.firstErr
		}
		integrity = append(integrity, c.integrity)
	}
	res := result{values: []float64{float64(total.ok) / elapsed.Seconds(), float64(total.failed)}}
	if total.failed > 0 {
		res.notes = append(res.notes, fmt.Sprintf("%d failed connection cycles, first: %v", total.failed, total.firstErr))
	}
	if err := errors.Join(integrity...); err != nil {
		return res, err
	}
	if total.ok == 0 {
		return res, fmt.Errorf("no connection cycle completed: %v", total.firstErr)
	}
	return res, ctx.Err()
}

// connLoop runs one connection-rate client until the deadline: cycle opens
// a connection, has msg echoed into buf, checks it and closes.
func connLoop(ctx context.Context, cycle func(msg, buf []byte, deadline time.Time) error, until time.Time) connCounts {
	var n connCounts
	msg, buf := randomMsg(), make([]byte, msgSize)
	// Each connection's echo is due long before this.
	deadline := until.Add(replyTimeout)
	for time.Now().Before(until) && ctx.Err() == nil {
		err := cycle(msg, buf, deadline)
		if err == nil {
			n.ok++
			continue
		}
		n.failed++
		if n.firstErr == nil {
			n.firstErr = err
		}
		if errors.Is(err, errEchoMismatch) && n.integrity == nil {
			n.integrity = fmt.Errorf("new connection: %w", err)
		}
	}
	return n
}

// reqResp keeps rrConns connections playing msgSize-byte ping-pong for the
// figure's duration and reports round trips per second and the 99th
// percentile round-trip time in microseconds.
func reqResp(ctx context.Context, e env) (result, error) {
	hists := make([]histogram, rrConns)
	errs := make([]error, rrConns)
	start := time.Now()
	until := start.Add(e.d)
	var wg sync.WaitGroup
	for i := range rrConns {
		wg.Go(func() { errs[i] = pingPong(ctx, e.addr, until, &hists[i]) })
	}
	wg.Wait()
	elapsed := time.Since(start)
	var all histogram
	for i := range hists {
		all.merge(&hists[i])
	}
	p99 := float64(all.quantile(0.99)) / float64(time.Microsecond)
	return result{values: []float64{float64(all.total) / elapsed.Seconds(), p99}}, errors.Join(errs...)
}

// pingPong does round trips on one connection until the deadline,
// recording each one's duration in h.
func pingPong(ctx context.Context, addr string, until time.Time, h *histogram) error {
	c, err := dialTCP(ctx, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	defer closeOnCancel(ctx, c)()
	c.SetDeadline(until.Add(replyTimeout))
	msg, buf := randomMsg(), make([]byte, msgSize)
	for now := time.Now(); now.Before(until); {
		if err := roundTrip(c, msg, buf); err != nil {
			return fmt.Errorf("request/response after %d round trips: %w", h.total, err)
		}
		end := time.Now()
		h.record(end.Sub(now))
		now = end
	}
	return nil
}

// idle returns a figure that opens e.idleN connections through the
// forwarder with dial, each with one round trip so the relay is
// established end to end, lets the forwarder settle, and reports the
// growth of its memory and descriptors per connection.
func idle(dial dialFunc) func(context.Context, env) (result, error) {
	return func(ctx context.Context, e env) (result, error) { return idleThrough(ctx, e, dial) }
}

// idleThrough is the idle figure's run through e.
func idleThrough(ctx context.Context, e env, dial dialFunc) (result, error) {
	before, err := procUsage(e.proc)
	if err != nil {
		return result{}, err
	}
	conns := make([]net.Conn, e.idleN)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	if err := openIdle(ctx, e, dial, conns); err != nil {
		return result{}, err
	}
	settle := time.NewTimer(idleSettle)
	defer settle.Stop()
	select {
	case <-settle.C:
	case <-ctx.Done():
		return result{}, ctx.Err()
	}
	after, err := procUsage(e.proc)
	if err != nil {
		return result{}, err
	}
	n := float64(e.idleN)
	return result{values: []float64{
		float64(after.rssKiB-before.rssKiB) / n,
		float64(after.fds-before.fds) / n,
	}}, nil
}

// procUsage measures the forwarder's processes.
func procUsage(p *proc) (usage, error) {
	if p == nil {
		return usage{}, errors.New("the idle figure needs a forwarder process")
	}
	pids, err := p.pids()
	if err != nil {
		return usage{}, err
	}
	return measureUsage(pids)
}

// openIdle fills conns with connections through e opened by dial,
// idleOpeners at a time, each after one round trip. It stops at the first
// failure.
func openIdle(ctx context.Context, e env, dial dialFunc, conns []net.Conn) error {
	var next atomic.Int64
	var failed atomic.Bool
	errs := make([]error, idleOpeners)
	var wg sync.WaitGroup
	for w := range idleOpeners {
		wg.Go(func() {
			msg, buf := randomMsg()[:8], make([]byte, 8)
			for !failed.Load() && ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= len(conns) {
					return
				}
				c, err := dial(ctx, e)
				if err == nil {
					conns[i] = c
					c.SetDeadline(time.Now().Add(replyTimeout))
					err = roundTrip(c, msg, buf)
					c.SetDeadline(time.Time{})
				}
				if err != nil {
					errs[w] = fmt.Errorf("idle connection %d of %d: %w", i+1, len(conns), err)
					failed.Store(true)
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return ctx.Err()
}
