package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"
)

// The TLS figures. Each runs through direct and every forwarder that has a
// TLS configuration (forwarder.tlsArgv), set up per figure:
//
//   - SNI passthrough: one rule with three routes by server name
//     (sniNames), each to its own backend; the clients send the last name,
//     and the other two routes' backends fail the figure if reached.
//     "1 stream" sends a real ClientHello and then raw pattern bytes to a
//     sink that skips the hello: past the route choice a passthrough relay
//     only moves bytes, and encrypting them would spend the bench's share
//     of two CPUs on AES instead of measuring the forwarder. "new
//     connections" is a full TLS 1.3 handshake with a TLS echo backend
//     through the forwarder, a 64-byte echo and a close. Direct goes to the
//     same backend without a forwarder.
//   - TLS termination: the forwarder holds the bench's certificate (ECDSA
//     P-256) and relays plaintext to the echo or sink backend. Direct is
//     the bench's own TLS echo or sink server, for scale.
//   - idle: connections held open after a handshake and a small echo; the
//     forwarder's memory and descriptors per connection.

// tlsMode is what a TLS figure has the forwarder do.
type tlsMode int

const (
	passthrough tlsMode = iota + 1 // route by SNI, relay the TLS bytes
	terminate                      // hold the certificate, relay plaintext
)

// tlsFigure is a TLS figure's setup.
type tlsFigure struct {
	mode tlsMode
	// direct is the backend direct's clients go to: one that speaks what
	// they speak without a forwarder.
	direct backendKind
}

// tlsConnClients is how many clients open TLS connections at once: enough
// to keep two CPUs busy with handshakes.
const tlsConnClients = 32

// tlsFigures returns the TLS figures in table order.
func tlsFigures() []figure {
	pass := &tlsFigure{mode: passthrough, direct: helloSinkBackend}
	passEcho := &tlsFigure{mode: passthrough, direct: tlsEchoBackend}
	termEcho := &tlsFigure{mode: terminate, direct: tlsEchoBackend}
	termSink := &tlsFigure{mode: terminate, direct: tlsSinkBackend}
	conns := func(what string) []row {
		return []row{
			{label: fmt.Sprintf("%s new TLS conns/s (%d clients)", what, tlsConnClients), format: "%.0f", cmp: vsDirect},
			{label: what + " TLS conn errors", format: "%.0f", cmp: plain},
		}
	}
	idleRows := func(what string) []row {
		return []row{
			{label: what + " idle RSS/conn KiB", format: "%.1f", cmp: vsLowest},
			{label: what + " idle fds/conn", format: "%.2f", cmp: vsLowest},
		}
	}
	return []figure{
		figure{name: "sni passthrough 1 stream", backend: helloSinkBackend, tls: pass, rows: []row{
			{label: "SNI passthrough 1 stream Gbit/s (ClientHello, then raw)", format: "%.1f", cmp: vsDirect},
		}, run: upThroughput(1, dialHello)}.withCPU(msPerGbit, "").withBusiestThread().
			withRatio("  ÷ 1 stream up, same column (needs that figure)", "1 stream Gbit/s"),
		figure{name: "sni passthrough new connections", backend: tlsEchoBackend, tls: passEcho, rows: conns("SNI passthrough"),
			run: tlsConns(false)}.withCPU(usPerOp, "handshake").withBusiestThread(),
		{name: "sni passthrough idle", backend: tlsEchoBackend, tls: passEcho, needsProc: true, rows: idleRows("SNI passthrough"), run: idle(dialTLS)},
		figure{name: "tls termination new connections", backend: echoBackend, tls: termEcho, rows: conns("TLS termination"),
			run: tlsConns(true)}.withCPU(usPerOp, "handshake").withBusiestThread(),
		figure{name: "tls termination 1 stream", backend: sinkBackend, tls: termSink, rows: []row{
			{label: "TLS termination 1 stream Gbit/s", format: "%.1f", cmp: vsDirect},
		}, run: upThroughput(1, dialTLS)}.withCPU(msPerGbit, "").withBusiestThread(),
		{name: "tls termination idle", backend: echoBackend, tls: termEcho, needsProc: true, rows: idleRows("TLS termination"), run: idle(dialTLS)},
	}
}

// tlsConns returns a figure in which tlsConnClients clients each do a full
// TLS handshake through e, a msgSize-byte echo and a close, over and over
// for the figure's duration. It reports handshakes per second and failed
// cycles; with note, it also notes what the first connection negotiated.
func tlsConns(note bool) func(context.Context, env) (result, error) {
	return func(ctx context.Context, e env) (result, error) {
		var once sync.Once
		var negotiated string
		cycle := func(msg, buf []byte, deadline time.Time) error {
			cs, err := tlsCycle(ctx, e, msg, buf, deadline)
			if err == nil {
				once.Do(func() { negotiated = describeTLS(cs) })
			}
			return err
		}
		counts := make([]connCounts, tlsConnClients)
		start := time.Now()
		until := start.Add(e.d)
		var wg sync.WaitGroup
		for i := range counts {
			wg.Go(func() { counts[i] = connLoop(ctx, cycle, until) })
		}
		wg.Wait()
		res, err := connResult(ctx, counts, time.Since(start))
		if note && negotiated != "" {
			res.notes = append(res.notes, "negotiated "+negotiated)
		}
		return res, err
	}
}

// tlsCycle is one connection of tlsConns: handshake, echo, close.
func tlsCycle(ctx context.Context, e env, msg, buf []byte, deadline time.Time) (tls.ConnectionState, error) {
	d := net.Dialer{Timeout: dialTimeout, KeepAlive: -1}
	c, err := d.DialContext(ctx, "tcp", e.addr)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer c.Close()
	c.SetDeadline(deadline)
	tc := tls.Client(c, e.tls.cfg)
	if err := tc.Handshake(); err != nil {
		return tls.ConnectionState{}, handshakeError(err)
	}
	if err := roundTrip(tc, msg, buf); err != nil {
		return tls.ConnectionState{}, err
	}
	return tc.ConnectionState(), tc.Close()
}

// tlsSpec is what a forwarder's TLS configuration says.
type tlsSpec struct {
	mode   tlsMode
	listen string
	// routes are the passthrough routes' backends, by sniNames' order.
	routes [3]string
	// backend is termination's plaintext backend.
	backend string
	m       *tlsMaterial
}

// measureTLS starts f configured for the TLS figure in front of the bench's
// backends (direct goes to the figure's direct backend), runs the figure,
// and stops f. A sluice that does not know the figure's config keys yet
// is an unsupportedError, not a failure.
func (r *runner) measureTLS(ctx context.Context, fig figure, f forwarder, dir string) (result, error) {
	addr, p := r.bk.addr(fig.tls.direct), (*proc)(nil)
	if !f.direct() {
		spec := tlsSpec{mode: fig.tls.mode, backend: r.bk.addr(fig.backend), m: r.tlsm,
			routes: [3]string{r.bk.addr(decoyOneBackend), r.bk.addr(decoyTwoBackend), r.bk.addr(fig.backend)}}
		var err error
		addr, p, err = launchWith(ctx, f.name, dir, func(listen string) ([]string, error) {
			spec.listen = listen
			return f.tlsArgv(dir, spec)
		})
		if err != nil {
			return result{}, unsupported(f, err)
		}
	}
	out, err := verdict(ctx, r.bk, fig.measured, env{addr: addr, proc: p, d: r.d, idleN: r.idleN, tls: r.tlsc})
	if p != nil {
		err = errors.Join(err, p.stop())
	}
	return out, err
}

// unsupportedError is a sluice that refused a TLS figure's configuration
// because it does not know its keys: built before routes or TLS
// termination.
type unsupportedError struct{ msg string }

// Error returns the message.
func (e unsupportedError) Error() string { return e.msg }

// unsupported turns sluice's refusal of an unknown config key of routes or
// TLS into an unsupportedError; every other error, and every peer's, stays
// as it is.
func unsupported(f forwarder, err error) error {
	if f.peer {
		return err
	}
	for key, what := range map[string]string{"route": "routes", "tls": "TLS termination"} {
		if strings.Contains(err.Error(), `unknown key "`+key+`"`) {
			return unsupportedError{fmt.Sprintf("column skipped: this sluice's config has no %s support (unknown key %q)", what, key)}
		}
	}
	return err
}
