package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The listeners figures: sluice holding n TCP ports on 127.0.0.1 (-ports,
// 10,000 by default), as one rule with a port range and as n single-port
// rules, all
// in front of the echo backend. They measure what a listening port costs
// (descriptors and memory, beyond a one-rule sluice's), how long sluice
// takes to bind them all, to reload the unchanged config and to stop, and
// whether a connection to the last port is as fast as one to the first.
// Only sluice takes part: the peers' configurations would measure their
// config parsers more than their listeners.

// defaultPorts is how many ports the listeners figures listen on unless
// -ports says otherwise.
const defaultPorts = 10000

// listenersWait bounds each wait of the listeners figures for sluice: to
// start, to reload, to log.
const listenersWait = 60 * time.Second

// listenersFigure is a listeners figure's setup.
type listenersFigure struct {
	layout listenersLayout
	ports  int // how many
}

// listenersLayout is how a listeners figure spreads its ports over rules.
type listenersLayout int

const (
	oneRange    listenersLayout = iota + 1 // one rule, listen = "127.0.0.1:A-B"
	rulePerPort                            // a rule per port
	onePort                                // one rule, one port: the baseline
)

// listenersFigures returns the listeners figures, on n ports, in table
// order.
func listenersFigures(n int) []figure {
	rows := func(what string) []row {
		return []row{
			{label: what + " fds per port (target ≤ 1.05)", format: "%.3f", cmp: plain},
			{label: what + " RSS KiB per port (target ≤ 4)", format: "%.2f", cmp: plain},
			{label: what + " start ms, all bound (target ≤ 1000)", format: "%.0f", cmp: plain},
			{label: what + " reload ms, unchanged (target ≤ 200)", format: "%.0f", cmp: plain},
			{label: what + " stop ms, SIGTERM (target ≤ 1000)", format: "%.0f", cmp: plain},
			{label: fmt.Sprintf("%s new conns/s, 1st port (%d clients)", what, connClients), format: "%.0f", cmp: plain},
			{label: fmt.Sprintf("%s new conns/s, %dth port", what, n), format: "%.0f", cmp: plain},
		}
	}
	return []figure{
		{name: "listeners range", backend: echoBackend, needsProc: true, listeners: &listenersFigure{oneRange, n},
			rows: rows(fmt.Sprintf("listeners: 1 rule, %d-port range,", n))},
		{name: "listeners rules", backend: echoBackend, needsProc: true, listeners: &listenersFigure{rulePerPort, n},
			rows: rows(fmt.Sprintf("listeners: %d 1-port rules,", n))},
	}
}

// measureListeners runs a listeners figure through the sluice f: a
// one-rule sluice for the baseline, then the ports laid out as fig says. A sluice that refuses a port range is an unsupportedError.
func (r *runner) measureListeners(ctx context.Context, fig figure, f forwarder, dir string) (result, error) {
	backend := r.bk.addr(fig.backend)
	base, err := listenersBaseline(ctx, f, filepath.Join(dir, "baseline"), backend)
	if err != nil {
		return result{}, err
	}
	lf := *fig.listeners
	first, err := freePortRange(lf.ports)
	if err != nil {
		return result{}, err
	}
	cfg := listenersConfig(lf.layout, first, lf.ports, backend)
	run := func(ctx context.Context, e env) (result, error) {
		return listenersRun(ctx, e, f, dir, cfg, first, lf.ports, base)
	}
	out, err := verdict(ctx, r.bk, run, env{d: r.d})
	var skip unsupportedError
	if errors.As(err, &skip) {
		return result{}, skip
	}
	return out, err
}

// listenersSample is what a listeners figure measures, in its rows' order.
type listenersSample struct {
	fdsPerPort, rssPerPort float64 // beyond the one-rule baseline's
	start, reload, stop    float64 // milliseconds
	connsFirst, connsLast  float64 // new connections per second
}

// values returns s in the figure's row order.
func (s listenersSample) values() []float64 {
	return []float64{s.fdsPerPort, s.rssPerPort, s.start, s.reload, s.stop, s.connsFirst, s.connsLast}
}

// listenersRun starts f on cfg, measures it and stops it.
func listenersRun(ctx context.Context, e env, f forwarder, dir, cfg string, first, n int, base usage) (result, error) {
	begin := time.Now()
	p, tail, err := startSluiceConfig(ctx, f, dir, cfg)
	if err != nil {
		if text := listenersRangeText(first, n); strings.Contains(err.Error(), text) && !strings.Contains(err.Error(), "in use") {
			return result{}, unsupportedError{"column skipped: this sluice refuses a port range in listen (" + refusal(err, text) + ")"}
		}
		return result{}, err
	}
	s := listenersSample{start: ms(time.Since(begin))}
	if err := listenersMeasure(ctx, e, p, tail, first, n, base, &s); err != nil {
		return result{}, errors.Join(err, p.stop())
	}
	begin = time.Now()
	if err := p.stop(); err != nil {
		return result{}, err
	}
	s.stop = ms(time.Since(begin))
	return result{values: s.values()}, nil
}

// refusal returns the line of err that names the range text: sluice's
// own words.
func refusal(err error, text string) string {
	for _, line := range strings.Split(err.Error(), "\n") {
		if strings.Contains(line, text) {
			return strings.TrimSpace(line)
		}
	}
	return firstLine([]byte(err.Error()))
}

// listenersMeasure measures the running sluice p into s: descriptors and
// memory per port against base, the reload of its unchanged config, and
// new connections to its first and last port.
func listenersMeasure(ctx context.Context, e env, p *proc, tail *logTail, first, n int, base usage, s *listenersSample) error {
	if err := sleepCtx(ctx, idleSettle); err != nil {
		return err
	}
	u, err := procUsage(p)
	if err != nil {
		return err
	}
	extra := float64(n - 1)
	s.fdsPerPort, s.rssPerPort = float64(u.fds-base.fds)/extra, float64(u.rssKiB-base.rssKiB)/extra
	reload, err := reloadTime(ctx, p, tail)
	if err != nil {
		return err
	}
	s.reload = ms(reload)
	if s.connsFirst, err = connsTo(ctx, first, e.d); err != nil {
		return err
	}
	s.connsLast, err = connsTo(ctx, first+n-1, e.d)
	return err
}

// connsTo runs the new-connections figure's clients against a port on
// 127.0.0.1 for d and returns their rate.
func connsTo(ctx context.Context, port int, d time.Duration) (float64, error) {
	res, err := newConns(ctx, env{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), d: d})
	if err != nil {
		return 0, fmt.Errorf("new connections to port %d: %w", port, err)
	}
	return res.values[0], nil
}

// listenersBaseline starts f with one rule in front of backend, reads its
// descriptors and memory once it has settled, and stops it.
func listenersBaseline(ctx context.Context, f forwarder, dir, backend string) (usage, error) {
	port, err := freePort()
	if err != nil {
		return usage{}, err
	}
	p, _, err := startSluiceConfig(ctx, f, dir, listenersConfig(onePort, port, 1, backend))
	if err != nil {
		return usage{}, err
	}
	if err := sleepCtx(ctx, idleSettle); err != nil {
		return usage{}, errors.Join(err, p.stop())
	}
	u, err := procUsage(p)
	return u, errors.Join(err, p.stop())
}

// listenersConfig is sluice's config for the layout of n ports, from port
// first on, to backend. Access lines are off, and the log at info, for the
// "started" and "reloaded" lines.
func listenersConfig(layout listenersLayout, first, n int, backend string) string {
	var b strings.Builder
	b.WriteString("log_level = \"info\"\naccess_log = \"off\"\n")
	rule := func(name, listen string) {
		fmt.Fprintf(&b, "\n[[rule]]\nname = %q\nlisten = %q\nbackends = [%q]\n", name, listen, backend)
	}
	switch layout {
	case oneRange:
		rule("range", listenersRangeText(first, n))
	case rulePerPort:
		for port := first; port < first+n; port++ {
			rule("p"+strconv.Itoa(port), net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		}
	case onePort:
		rule("one", net.JoinHostPort("127.0.0.1", strconv.Itoa(first)))
	}
	return b.String()
}

// listenersRangeText is the listen value of the n ports from first on.
func listenersRangeText(first, n int) string {
	return fmt.Sprintf("127.0.0.1:%d-%d", first, first+n-1)
}

// startSluiceConfig writes cfg into dir and starts f's sluice binary on
// it, returning once sluice has logged that it started (every listener
// bound), and the tail of its log from there.
func startSluiceConfig(ctx context.Context, f forwarder, dir, cfg string) (*proc, *logTail, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, err
	}
	path, err := writeConfig(dir, "sluice.toml", cfg)
	if err != nil {
		return nil, nil, err
	}
	tail := &logTail{path: filepath.Join(dir, "output.log")}
	started := func(int) (bool, error) {
		got, err := tail.next("msg=started")
		return got != "", err
	}
	p, err := startProc(ctx, f.name, dir, []string{f.bin, "-c", path}, 0, started)
	return p, tail, err
}

// reloadTime sends p SIGHUP and returns how long sluice took to log that
// the reload was done.
func reloadTime(ctx context.Context, p *proc, tail *logTail) (time.Duration, error) {
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		return 0, err
	}
	for time.Since(start) < listenersWait {
		switch got, err := tail.next("msg=reloaded", `msg="reload rejected`); {
		case err != nil:
			return 0, err
		case got == "msg=reloaded":
			return time.Since(start), nil
		case got != "":
			return 0, fmt.Errorf("%s rejected the reload of its unchanged config%s", p.name, p.outputTail())
		}
		if err := p.alive(); err != nil {
			return 0, err
		}
		if err := sleepCtx(ctx, time.Millisecond); err != nil {
			return 0, err
		}
	}
	return 0, fmt.Errorf("%s: no reloaded line %v after SIGHUP%s", p.name, listenersWait, p.outputTail())
}

// logTail reads a growing log file line by line, from where it last
// stopped.
type logTail struct {
	path    string
	off     int64
	partial []byte // a line not yet complete
}

// next reads the lines logged since the last call and returns the first
// of wants that one of them contains, or "" when none does.
func (t *logTail) next(wants ...string) (string, error) {
	lines, err := t.read()
	for _, line := range lines {
		for _, want := range wants {
			if strings.Contains(line, want) {
				return want, nil
			}
		}
	}
	return "", err
}

// read returns the complete lines the file has gained since the last read.
func (t *logTail) read() ([]string, error) {
	f, err := os.Open(t.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.NewSectionReader(f, t.off, 1<<40))
	if err != nil {
		return nil, err
	}
	t.off += int64(len(data))
	data = append(t.partial, data...)
	end := bytes.LastIndexByte(data, '\n')
	t.partial = append([]byte(nil), data[end+1:]...)
	if end < 0 {
		return nil, nil
	}
	return strings.Split(string(data[:end]), "\n"), nil
}

// freePortRange returns the first of n contiguous loopback ports that no
// socket uses now, below the ephemeral range where it can: a few bases
// are tried.
func freePortRange(n int) (int, error) {
	used, err := usedPorts()
	if err != nil {
		return 0, err
	}
	for _, base := range []int{20000, 10000, 21000, 11000, 40000, 50000} {
		free := true
		for port := base; port < base+n && free; port++ {
			free = !used[port]
		}
		if free {
			return base, nil
		}
	}
	return 0, fmt.Errorf("no %d contiguous free loopback ports found at the bases tried", n)
}

// usedPorts returns the local ports of every TCP socket on the machine,
// in any state, from /proc/net/tcp and tcp6.
func usedPorts() (map[int]bool, error) {
	used := make(map[int]bool)
	for _, name := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, err := os.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("read the sockets in use: %w", err)
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			fields := strings.Fields(line)
			if len(fields) < 2 {
				continue
			}
			_, hex, _ := strings.Cut(fields[1], ":")
			if port, err := strconv.ParseUint(hex, 16, 16); err == nil {
				used[int(port)] = true
			}
		}
	}
	return used, nil
}

// sleepCtx waits d, or less when ctx is cancelled.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ms is d in milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
