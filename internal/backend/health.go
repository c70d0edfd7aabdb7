package backend

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"time"
)

// maxExpectRead bounds how much of a health check reply is searched for the
// expected bytes.
const maxExpectRead = 64 << 10

// Start starts the active health checks when the rule has a health check:
// one goroutine per backend, checking at once and then every Interval.
// Calling it again, or after Stop, does nothing.
func (p *Pool) Start() {
	if p.health == nil {
		return
	}
	p.runMu.Lock()
	defer p.runMu.Unlock()
	if p.cancel != nil || p.stopped {
		return
	}
	p.checks, p.cancel = context.WithCancel(context.Background())
	p.checkOf = make(map[*Backend]context.CancelFunc)
	for _, b := range p.Backends() {
		p.startCheckLocked(b)
	}
}

// startCheckLocked starts b's health check, once the pool's checks run.
// The caller holds p.runMu.
func (p *Pool) startCheckLocked(b *Backend) {
	if p.checks == nil || p.stopped {
		return
	}
	ctx, cancel := context.WithCancel(p.checks)
	p.checkOf[b] = cancel
	p.wg.Add(1)
	go p.watch(ctx, b)
}

// stopCheckLocked stops b's health check, if it runs; it does not wait
// for its end. The caller holds p.runMu.
func (p *Pool) stopCheckLocked(b *Backend) {
	if cancel := p.checkOf[b]; cancel != nil {
		cancel()
		delete(p.checkOf, b)
	}
}

// Stop stops the active health checks and the feeds and waits for them to
// end. It is idempotent; live connections are not touched.
func (p *Pool) Stop() {
	p.runMu.Lock()
	p.stopped = true
	if p.cancel != nil {
		p.cancel()
	}
	for _, cancel := range p.feeds {
		cancel()
	}
	p.runMu.Unlock()
	p.wg.Wait()
}

// watch checks b every Interval until ctx ends, but not while b is in
// maintenance (its health is then left as it was last known).
func (p *Pool) watch(ctx context.Context, b *Backend) {
	defer p.wg.Done()
	t := time.NewTicker(p.health.Interval)
	defer t.Stop()
	for {
		if b.State() != Maint {
			p.checkOnce(ctx, b)
		}
		if ctx.Err() != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// checkOnce checks b once and records the result. A check that fails for
// a shortage of this host's (see shortageOf) counts neither way.
func (p *Pool) checkOnce(ctx context.Context, b *Backend) {
	err := p.check(ctx, b)
	if ctx.Err() == nil && (err == nil || Blames(err)) {
		b.checkResult(err)
	}
}

// check connects to b within the check's Timeout, completes the TLS
// handshake when the pool speaks TLS (a certificate that does not verify
// fails the check), writes Send if set, and if Expect is set reads until
// the reply contains it, inside TLS when on.
func (p *Pool) check(ctx context.Context, b *Backend) error {
	ctx, cancel := context.WithTimeout(ctx, p.health.Timeout)
	defer cancel()
	port := p.health.Port
	if port == 0 {
		port = b.cfg.Address.Port // the first of a range
	}
	conn, err := b.dial(ctx, netip.Addr{}, port)
	if err != nil {
		return err
	}
	defer func() { conn.Close() }()
	if deadline, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(deadline); err != nil {
			return fmt.Errorf("backend %s: %w", b.cfg.Address, err)
		}
	}
	if p.tls != nil {
		tc, err := p.handshake(ctx, conn, b, nil)
		if err != nil {
			return fmt.Errorf("backend %s: %w", b.cfg.Address, err)
		}
		conn = tc
	}
	if p.health.Send != "" {
		if _, err := io.WriteString(conn, p.health.Send); err != nil {
			return fmt.Errorf("backend %s: send: %w", b.cfg.Address, err)
		}
	}
	if p.health.Expect == "" {
		return nil
	}
	if err := readUntil(conn, []byte(p.health.Expect)); err != nil {
		return fmt.Errorf("backend %s: %w", b.cfg.Address, err)
	}
	return nil
}

// readUntil reads from r until what it read contains want, failing on EOF,
// on a read error, or after maxExpectRead bytes.
func readUntil(r io.Reader, want []byte) error {
	buf := make([]byte, 0, 512)
	for len(buf) < maxExpectRead {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if bytes.Contains(buf, want) {
			return nil
		}
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("reply ended without %s (got %s)", strconv.Quote(string(want)), quoteShort(buf))
		}
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", strconv.Quote(string(want)), err)
		}
	}
	return fmt.Errorf("no %s in the first %d bytes of the reply", strconv.Quote(string(want)), len(buf))
}

// quoteShort quotes at most the first 64 bytes of b for an error message.
func quoteShort(b []byte) string {
	if len(b) > 64 {
		return strconv.Quote(string(b[:64])) + "..."
	}
	return strconv.Quote(string(b))
}
