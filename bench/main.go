// Command bench measures sluice side by side with a direct connection and
// with peer forwarders (HAProxy, nginx stream; socat for UDP) in one run,
// and prints one table. The TLS figures are in tlsfigures.go, the UDP ones in
// udp.go.
//
// Usage, from the module root:
//
//	go run ./bench [-d 5s] [-idle 5000] [-rounds 1] [-smoke] [-only sluice,haproxy,nginx,socat] [-figures PARTS] [-ports 10000] [-sluice PATH] [-base PATH]
//
// The bench builds sluice from ./cmd/sluice unless -sluice names a binary,
// and runs each peer that is installed. Every forwarder is its own process
// on a free loopback port in front of the bench's own backends (a sink, a
// source and an echo server, goroutines in this process), and runs alone,
// started afresh for each figure. With -rounds N every figure runs N times
// through each forwarder, the forwarders taking turns, and the table shows
// medians: on a shared, noisy machine that steadies the figures. Streams carry a deterministic
// pseudo-random pattern that the receiving end verifies byte for byte.
//
// The new-connections figure's clients (connclient.go) make their own
// system calls: a non-blocking socket, connect, write, read and close, the
// waits in Go's poller, no socket options and no address lookups. On a
// small machine the clients, the backend and the forwarder share the CPUs,
// and with net.Dial the bench's own share bounded the figure: every
// forwarder measured about as fast as direct. Under the figure, the
// forwarder's busiest thread's share of its CPU time shows how well it
// spreads the work over the CPUs.
//
// Lost or corrupted bytes, a forwarder that fails to start, dies, or leaves
// connections open are failures: the table marks them and the command exits
// with status 1. Usage errors exit with status 2. It reads /proc, so it runs
// on Linux only. The fleet figures (fleet.go) run only with -figures fleet.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	var usage usageError
	switch {
	case err == nil:
	case errors.As(err, &usage):
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// usageError is a bad command line.
type usageError struct{ msg string }

// Error returns the message.
func (e usageError) Error() string { return e.msg }

// options are the parsed command line.
type options struct {
	d         time.Duration
	idleN     int
	rounds    int
	only      map[string]bool
	sluiceBin string
	baseBin   string   // a second sluice to measure beside the first; empty: none
	figures   []string // name fragments; empty: every figure
	ports     int      // ports of the listeners figures
}

// usageText heads -h's output.
const usageText = `usage: go run ./bench [flags]

Measures sluice beside a direct connection and the installed peers, one
forwarder process at a time, and prints one table (README.md, Benchmark).
The new-connections clients make their own system calls (non-blocking
socket, connect, write, read, close; no socket options), so that the
bench's own CPU does not bound the figure on a small machine. The TLS
figures (sni passthrough, tls termination) use a certificate the bench
makes, and skip the column of a sluice that does not know their keys.
The listeners figures run sluice alone on -ports TCP ports, as one rule
with a port range and as a rule per port. The fleet figures (-figures
fleet, or make fleet) run only when asked for: sluice instances on an etcd
they start, configs pushed one after another (they need etcd).

`

// parseFlags reads the command line. -smoke changes the defaults of -d and
// -idle; explicit values win.
func parseFlags(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usageText)
		fs.PrintDefaults()
	}
	d := fs.Duration("d", 5*time.Second, "duration of each figure")
	idleN := fs.Int("idle", 5000, "connections held open for the idle figure")
	smoke := fs.Bool("smoke", false, "CI mode: about 1s per figure, 500 idle connections and 1000 ports")
	only := fs.String("only", strings.Join(peerNames(), ","), "comma-separated forwarders to measure besides direct")
	rounds := fs.Int("rounds", 1, "run every figure this many times through each forwarder, taking turns, and print medians")
	sluiceBin := fs.String("sluice", "", "use this sluice binary instead of building ./cmd/sluice")
	baseBin := fs.String("base", "", "also measure this sluice binary, in a column sluice-base beside sluice: before and after a change in one run")
	ports := fs.Int("ports", defaultPorts, "TCP ports sluice listens on in the listeners figures")
	figs := fs.String("figures", "", "comma-separated parts of figure names to run (e.g. \"streams,udp\"; a whole name picks that figure only; \"fleet\": the fleet figures, which need etcd and run only when named); empty: all but fleet")
	if err := fs.Parse(args); err != nil {
		return options{}, usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return options{}, usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	o := options{d: *d, idleN: *idleN, rounds: *rounds, only: make(map[string]bool), sluiceBin: *sluiceBin, baseBin: *baseBin, ports: *ports}
	if *smoke {
		set := make(map[string]bool)
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["d"] {
			o.d = time.Second
		}
		if !set["idle"] {
			o.idleN = 500
		}
		if !set["ports"] {
			o.ports = 1000
		}
	}
	for name := range strings.SplitSeq(*only, ",") {
		name = strings.TrimSpace(name)
		switch {
		case name == "" || name == "direct":
		case slices.Contains(peerNames(), name):
			o.only[name] = true
		default:
			return options{}, usageError{fmt.Sprintf("-only: unknown forwarder %q (want some of %s)", name, strings.Join(peerNames(), ","))}
		}
	}
	for part := range strings.SplitSeq(*figs, ",") {
		if part = strings.TrimSpace(part); part != "" {
			o.figures = append(o.figures, part)
		}
	}
	if o.d <= 0 {
		return options{}, usageError{fmt.Sprintf("-d %v: must be positive", o.d)}
	}
	if o.rounds <= 0 {
		return options{}, usageError{fmt.Sprintf("-rounds %d: must be positive", o.rounds)}
	}
	if o.ports < 2 {
		return options{}, usageError{fmt.Sprintf("-ports %d: must be at least 2", o.ports)}
	}
	if o.idleN <= 0 {
		return options{}, usageError{fmt.Sprintf("-idle %d: must be positive", o.idleN)}
	}
	return o, nil
}

// run is the whole bench: it parses args, sets everything up, measures,
// and prints the table to stdout and progress to stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	// The bench holds both ends of every idle connection, and the
	// forwarders inherit the limit.
	nofile, err := raiseFileLimit(uint64(2*o.idleN + 256))
	if err != nil {
		return err
	}
	loadBefore := loadAverage()
	tmp, err := os.MkdirTemp("", "sluice-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if withFleet, rest := splitFleet(o.figures); withFleet {
		if err := runFleet(ctx, o, tmp, stdout, stderr); err != nil || len(rest) == 0 {
			return err
		}
		o.figures = rest
	}
	fwds, skipped, err := setupForwarders(ctx, setupOptions{
		only: o.only, sluiceBin: o.sluiceBin, baseBin: o.baseBin, tmp: tmp, maxConns: o.idleN + 1024, nofile: nofile,
	})
	if err != nil {
		return err
	}
	tlsm, err := newTLSMaterial(tmp)
	if err != nil {
		return err
	}
	tlsc, err := newTLSClient(tlsm)
	if err != nil {
		return err
	}
	bk, err := startBackends(tlsm)
	if err != nil {
		return err
	}
	defer bk.close()
	r := runner{fwds: fwds, bk: bk, d: o.d, idleN: o.idleN, rounds: o.rounds, tmp: tmp, progress: stderr, tlsm: tlsm, tlsc: tlsc}
	figs, err := selectFigures(allFigures(o.ports), o.figures)
	if err != nil {
		return err
	}
	res, err := r.run(ctx, figs)
	if err != nil {
		return err
	}
	if err := printTable(stdout, res); err != nil {
		return err
	}
	printFooter(stdout, footer{fwds: fwds, skipped: skipped, d: o.d, idleN: o.idleN, rounds: o.rounds, loadBefore: loadBefore}, res)
	if len(res.errs) > 0 {
		return fmt.Errorf("%d measurements failed (see FAILED above)", len(res.errs))
	}
	return nil
}

// allFigures returns every figure in table order: TCP, state changes,
// TLS, UDP, and the listeners figures, on ports ports.
func allFigures(ports int) []figure {
	return slices.Concat(figures(), stateFigures(), tlsFigures(), udpFigures(), listenersFigures(ports))
}

// selectFigures keeps the figures whose names contain one of parts, or all
// of them when parts is empty. A part that names no figure is a usage error.
func selectFigures(all []figure, parts []string) ([]figure, error) {
	if len(parts) == 0 {
		return all, nil
	}
	var names []string
	for _, f := range all {
		names = append(names, f.name)
	}
	// A part that is a figure's whole name picks that figure only, so that
	// "request/response" need not bring "udp request/response" along.
	matches := func(name, p string) bool {
		if slices.Contains(names, p) {
			return name == p
		}
		return strings.Contains(name, p)
	}
	var out []figure
	for _, f := range all {
		if slices.ContainsFunc(parts, func(p string) bool { return matches(f.name, p) }) {
			out = append(out, f)
		}
	}
	for _, p := range parts {
		if !slices.ContainsFunc(names, func(n string) bool { return strings.Contains(n, p) }) {
			return nil, usageError{fmt.Sprintf("-figures: no figure is named like %q (figures: %s)", p, strings.Join(names, ", "))}
		}
	}
	return out, nil
}

// raiseFileLimit raises the soft RLIMIT_NOFILE to the hard limit and
// returns it; it fails when even the hard limit is below need.
func raiseFileLimit(need uint64) (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("read the open-file limit: %w", err)
	}
	if lim.Max < need {
		return 0, usageError{fmt.Sprintf("-idle needs %d open files, but the hard limit is %d (ulimit -Hn)", need, lim.Max)}
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("raise the open-file limit to %d: %w", lim.Max, err)
	}
	return lim.Max, nil
}
