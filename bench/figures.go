package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// compare says how a row's values are put side by side in the table.
type compare int

const (
	// vsDirect prints each forwarder's value as a ratio to direct's.
	vsDirect compare = iota
	// vsLowest prints each forwarder's value as a ratio to the lowest
	// forwarder's; direct has no value (the idle rows).
	vsLowest
	// plain prints values without ratios (error counts).
	plain
)

// row is one line of the table.
type row struct {
	label  string
	format string // fmt verb for the value, such as "%.1f"
	cmp    compare
	// ratioOf, when set, makes the row derived: each column's value is
	// the ratio of its values in the two rows so labelled, once every
	// figure has run (see results.derive). No figure measures it.
	ratioOf *[2]string
}

// env is what a figure measures through.
type env struct {
	addr  string // the address clients dial: the forwarder's, or the backend's for direct
	proc  *proc  // the forwarder's process; nil for direct
	d     time.Duration
	idleN int         // connections for the idle figure
	udp   *udpBackend // the UDP figures' backend (udp.go); nil for the others
	tls   *tlsClient  // how the TLS figures' clients speak TLS
	api   *stateAPI   // the forwarder's admin API, for the state figure; nil for the others
}

// result is what a figure measured through one forwarder.
type result struct {
	values []float64 // one per row of the figure
	notes  []string  // things worth printing under the table
}

// figure is one entry in the bench's list. Adding a figure (UDP, say) means
// adding an entry to figures with its backend, rows and run function.
type figure struct {
	name    string
	backend backendKind
	// needsProc marks figures that only make sense for a forwarder process;
	// they are not run for direct.
	needsProc bool
	// udp marks figures relayed over UDP (udp.go): they run through the
	// forwarders' udpArgv, each measurement with a fresh UDP backend.
	udp bool
	// tls marks the TLS figures (tlsfigures.go): they run through the
	// forwarders' tlsArgv.
	tls *tlsFigure
	// listeners marks the listeners figures (listeners.go): sluice alone,
	// on many ports.
	listeners *listenersFigure
	// states marks the state-changes figure (statefigures.go): it runs
	// through the forwarders' statesArgv.
	states *stateFigure
	rows   []row
	// run measures through e and returns one value per row (but the cpu
	// row's, which the runner adds). An error means the forwarder
	// misbehaved (lost or corrupted bytes, died, refused to hold
	// connections), not merely that it was slow.
	run func(ctx context.Context, e env) (result, error)
	// cpu, when set, is the figure's last row: the forwarder's CPU time
	// (user and system, its whole process tree, read from /proc) per unit
	// of the first row's value, which must be a rate per second: per
	// Gbit, connection, round trip or datagram. Steadier than a rate on a
	// shared machine, since it does not depend on how much CPU the
	// forwarder was given.
	cpu *cpuRow
	// busiest, with cpu, adds a row after the CPU row: the share of the
	// forwarder's CPU time (summed over its threads, from
	// /proc/PID/task) that its busiest thread used, in percent. Near
	// 100% means one thread does the work and the other CPU is idle to
	// the forwarder; on two CPUs, 50% is even spreading.
	busiest bool
}

// runRows is how many values run returns: every row's but the CPU row's
// and the busiest thread's, which the runner adds, and the derived rows.
func (f figure) runRows() int {
	n := len(f.rows)
	for _, rw := range f.rows {
		if rw.ratioOf != nil {
			n--
		}
	}
	if f.cpu != nil {
		n--
	}
	if f.busiest {
		n--
	}
	return n
}

// cpuRow says how a figure's CPU row is worded and scaled.
type cpuRow struct {
	label string
	scale float64 // CPU seconds per unit times scale is the printed value
}

// Units of the CPU rows.
var (
	msPerGbit = cpuRow{label: "ms per Gbit", scale: 1e3}
	usPerOp   = cpuRow{label: "µs per", scale: 1e6}
)

// withCPU returns f with its CPU row: the label names what the first
// row's rate counts (unit, for usPerOp) and, since labels key the table's
// cells, the figure.
func (f figure) withCPU(c cpuRow, unit string) figure {
	if unit != "" {
		c.label += " " + unit
	}
	c.label = "  CPU " + c.label + " (" + f.name + ")"
	f.cpu = &c
	f.rows = append(f.rows, row{label: c.label, format: "%.1f", cmp: vsLowest})
	return f
}

// withBusiestThread returns f, which has its CPU row, with the busiest
// thread's row after it.
func (f figure) withBusiestThread() figure {
	f.busiest = true
	f.rows = append(f.rows, row{label: "  busiest thread, % of CPU (" + f.name + ")", format: "%.0f%%", cmp: plain})
	return f
}

// withRatio returns f with a derived row after its others: its first
// row's value divided by the value in row other, per column (see
// row.ratioOf).
func (f figure) withRatio(label, other string) figure {
	f.rows = append(f.rows, row{label: label, format: "%.2f", cmp: plain, ratioOf: &[2]string{f.rows[0].label, other}})
	return f
}

// figures returns the bench's figures in table order.
func figures() []figure {
	gbits := func(label string) []row { return []row{{label: label, format: "%.1f", cmp: vsDirect}} }
	return []figure{
		figure{name: "1 stream up", backend: sinkBackend, rows: gbits("1 stream Gbit/s"), run: upThroughput(1, dialPlain)}.withCPU(msPerGbit, ""),
		figure{name: "8 streams up", backend: sinkBackend, rows: gbits("8 streams Gbit/s"), run: upThroughput(8, dialPlain)}.withCPU(msPerGbit, ""),
		figure{name: "1 stream down", backend: sourceBackend, rows: gbits("1 stream down Gbit/s"), run: downThroughput}.withCPU(msPerGbit, ""),
		figure{name: "new connections", backend: echoBackend, rows: []row{
			{label: fmt.Sprintf("new conns/s (%d clients)", connClients), format: "%.0f", cmp: vsDirect},
			{label: "new conn errors", format: "%.0f", cmp: plain},
		}, run: newConns}.withCPU(usPerOp, "conn").withBusiestThread(),
		figure{name: "request/response", backend: echoBackend, rows: []row{
			{label: "req/resp/s (16 conns)", format: "%.0f", cmp: vsDirect},
			{label: "req/resp p99 µs", format: "%.0f", cmp: vsDirect},
		}, run: reqResp}.withCPU(usPerOp, "round trip"),
		{name: "idle", backend: echoBackend, needsProc: true, rows: []row{
			{label: "idle RSS/conn KiB", format: "%.1f", cmp: vsLowest},
			{label: "idle fds/conn", format: "%.2f", cmp: vsLowest},
		}, run: idle(dialPlain)},
	}
}

const (
	// dialTimeout bounds every connect.
	dialTimeout = 5 * time.Second
	// replyTimeout bounds waiting for a backend's answer after the
	// measured period; a working forwarder needs far less.
	replyTimeout = 30 * time.Second
)

// dialTCP connects to addr on loopback.
func dialTCP(ctx context.Context, addr string) (*net.TCPConn, error) {
	d := net.Dialer{Timeout: dialTimeout}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

// closeOnCancel closes c when ctx is cancelled, unblocking its reads and
// writes; call the returned function once done with c.
func closeOnCancel(ctx context.Context, c net.Conn) func() bool {
	return context.AfterFunc(ctx, func() { c.Close() })
}

// gbitPerSec converts a byte count over a period to Gbit/s.
func gbitPerSec(bytes int64, d time.Duration) float64 {
	return float64(bytes) * 8 / d.Seconds() / 1e9
}

// upThroughput returns a figure that sends pattern streams to the sink over
// streams connections at once, each opened by dial, for the figure's
// duration, and reports the bytes the sink verified per second, in
// aggregate.
func upThroughput(streams int, dial dialFunc) func(context.Context, env) (result, error) {
	return func(ctx context.Context, e env) (result, error) {
		sent := make([]int64, streams)
		errs := make([]error, streams)
		start := time.Now()
		until := start.Add(e.d)
		var wg sync.WaitGroup
		for i := range streams {
			wg.Go(func() { sent[i], errs[i] = sendStream(ctx, e, dial, rand.Uint64(), until) })
		}
		wg.Wait()
		elapsed := time.Since(start)
		var total int64
		for _, n := range sent {
			total += n
		}
		return result{values: []float64{gbitPerSec(total, elapsed)}}, errors.Join(errs...)
	}
}

// sendStream sends seed's pattern stream until the deadline, then FIN, and
// waits for the sink's count. It returns the bytes the sink confirmed.
func sendStream(ctx context.Context, e env, dial dialFunc, seed uint64, until time.Time) (int64, error) {
	w := streamWriter{p: newPattern(seed)}
	c, err := dial(ctx, e)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	defer closeOnCancel(ctx, c)()
	var hdr [8]byte
	binary.BigEndian.PutUint64(hdr[:], seed)
	if _, err := c.Write(hdr[:]); err != nil {
		return 0, fmt.Errorf("stream %016x: write header: %w", seed, err)
	}
	write := writeStream
	if _, ok := c.(*net.TCPConn); !ok {
		write = writeUntil // TLS: a write that times out breaks the connection
	}
	sent, err := write(c, &w, until)
	if err != nil {
		return 0, err
	}
	if err := c.CloseWrite(); err != nil {
		return 0, fmt.Errorf("stream %016x: close-write: %w", seed, err)
	}
	c.SetReadDeadline(time.Now().Add(replyTimeout))
	var reply [9]byte
	if _, err := io.ReadFull(c, reply[:]); err != nil {
		return 0, fmt.Errorf("stream %016x: no reply from the sink after FIN (is half-close relayed?): %w", seed, err)
	}
	got := int64(binary.BigEndian.Uint64(reply[:8]))
	switch {
	case reply[8] != 0:
		return 0, fmt.Errorf("stream %016x: the sink received corrupted bytes", seed)
	case got != sent:
		return 0, fmt.Errorf("stream %016x: sent %d bytes, the sink received %d", seed, sent, got)
	}
	return got, nil
}

// writeUntil writes w's stream to c in chunks until the deadline has
// passed and returns how many bytes it wrote. Its write deadline is
// replyTimeout later, for a forwarder that stops reading: a TLS connection
// whose write times out is broken for good, so the deadline cannot be the
// normal end as in writeStream.
func writeUntil(c net.Conn, w *streamWriter, deadline time.Time) (int64, error) {
	if err := c.SetWriteDeadline(deadline.Add(replyTimeout)); err != nil {
		return 0, err
	}
	var sent int64
	for time.Now().Before(deadline) {
		n, err := c.Write(w.next(maxChunk))
		w.advance(n)
		sent += int64(n)
		if err != nil {
			return sent, fmt.Errorf("stream %016x: write after %d bytes: %w", w.p.seed, sent, err)
		}
	}
	return sent, c.SetWriteDeadline(time.Time{})
}

// downThroughput has the source send one pattern stream for the figure's
// duration and reports the bytes received and verified per second.
func downThroughput(ctx context.Context, e env) (result, error) {
	start := time.Now()
	n, err := recvStream(ctx, e.addr, rand.Uint64(), e.d)
	return result{values: []float64{gbitPerSec(n, time.Since(start))}}, err
}

// recvStream asks the source for seed's stream for d, verifies every byte
// up to the source's FIN, and answers with the count.
func recvStream(ctx context.Context, addr string, seed uint64, d time.Duration) (int64, error) {
	chk := streamChecker{p: newPattern(seed)}
	c, err := dialTCP(ctx, addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	defer closeOnCancel(ctx, c)()
	var req [16]byte
	binary.BigEndian.PutUint64(req[:8], seed)
	binary.BigEndian.PutUint64(req[8:], uint64(d))
	if _, err := c.Write(req[:]); err != nil {
		return 0, fmt.Errorf("stream %016x: write request: %w", seed, err)
	}
	c.SetReadDeadline(time.Now().Add(d + replyTimeout))
	buf := make([]byte, maxChunk)
	for {
		n, err := c.Read(buf)
		if cerr := chk.check(buf[:n]); cerr != nil {
			return chk.total, cerr
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return chk.total, fmt.Errorf("stream %016x: read after %d bytes: %w", seed, chk.total, err)
		}
	}
	var count [8]byte
	binary.BigEndian.PutUint64(count[:], uint64(chk.total))
	if _, err := c.Write(count[:]); err != nil {
		return chk.total, fmt.Errorf("stream %016x: write count after the source's FIN (is half-close relayed?): %w", seed, err)
	}
	if err := c.CloseWrite(); err != nil {
		return chk.total, fmt.Errorf("stream %016x: close-write after the count (is half-close relayed?): %w", seed, err)
	}
	return chk.total, nil
}
