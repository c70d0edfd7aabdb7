package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"sluice/internal/fleet"
)

// The fleet figures (-figures fleet, or make fleet): sluice instances
// following one config in etcd (sluice --etcd), and configs pushed to it
// one after another, each as sluice cluster push writes it (fleet.Push:
// a transaction on the config key's revision). A push counts as applied on
// an instance at the time of the instance's log line "config: applied
// from etcd" with the push's revision; the next push goes out once every
// instance applied the last. They need etcd (Debian's etcd-server), and
// are not part of the default run or -smoke.
//
// Each set first idles for fleetIdle with every instance connected (lease
// keepalives, each instance's probe once a second, its key's refresh),
// then pushes: etcd's CPU time (from /proc/PID/stat) and the bytes it
// sent its clients over gRPC (etcd_network_client_grpc_sent_bytes_total
// from --listen-metrics-urls) are read around both phases, and the push
// phase's figures are shown beyond the idle rate.

// fleetFigure is the name -figures picks the fleet figures by.
const fleetFigure = "fleet"

// appliedMsg is the line an instance logs once a config pushed to etcd
// runs; startMsg the one it logs when it starts with the config from etcd.
// Both give the revision.
const (
	appliedMsg = "config: applied from etcd"
	startMsg   = "config: from etcd"
)

const (
	fleetPushes   = 50              // pushes per set
	fleetIdle     = 5 * time.Second // the idle phase
	fleetConverge = 30 * time.Second
)

// fleetSet is one column of the fleet table.
type fleetSet struct {
	members, instances int
}

// fleetSets are the two: three instances on a three-member
// cluster (the target: p99 push → applied everywhere ≤ 1 s), and fifty
// instances on one member.
var fleetSets = []fleetSet{{members: 3, instances: 3}, {members: 1, instances: 50}}

// fleetResult is what one set measured.
type fleetResult struct {
	set       fleetSet
	docBytes  int
	converge  []time.Duration // per push: until the last instance applied it
	each      []time.Duration // per push and instance
	idle      fleetPhase
	pushing   fleetPhase
	instances int
}

// fleetPhase is etcd's cost over one phase.
type fleetPhase struct {
	d    time.Duration
	cpu  time.Duration // every member's
	sent float64       // bytes to clients, every member's
}

// splitFleet takes the fleet figure out of -figures' parts.
func splitFleet(parts []string) (bool, []string) {
	rest := slices.DeleteFunc(slices.Clone(parts), func(p string) bool { return p == fleetFigure })
	return len(rest) != len(parts), rest
}

// runFleet measures every fleet set and prints their table, or says why
// it cannot (no etcd).
func runFleet(ctx context.Context, o options, tmp string, stdout, stderr io.Writer) error {
	etcdBin, err := exec.LookPath("etcd")
	if err != nil {
		fmt.Fprintln(stdout, "fleet: skipped: etcd is not installed (apt-get install etcd-server); the fleet figures need it")
		return nil
	}
	bin := o.sluiceBin
	if bin == "" {
		if bin, err = buildSluice(ctx, tmp); err != nil {
			return err
		}
	}
	var results []fleetResult
	for i, set := range fleetSets {
		fmt.Fprintf(stderr, "fleet: %d instances, %d etcd members, %d pushes\n", set.instances, set.members, fleetPushes)
		dir := filepath.Join(tmp, fmt.Sprintf("fleet%d", i))
		res, err := measureFleet(ctx, etcdBin, bin, dir, set, fleetPushes, fleetIdle)
		if err != nil {
			return fmt.Errorf("fleet, %d instances: %w", set.instances, err)
		}
		results = append(results, res)
	}
	return printFleet(stdout, results)
}

// measureFleet runs one set: etcd, the instances, an idle phase of idle
// and the pushes.
func measureFleet(ctx context.Context, etcdBin, bin, dir string, set fleetSet, pushes int, idle time.Duration) (fleetResult, error) {
	res := fleetResult{set: set, instances: set.instances}
	c, err := startEtcd(ctx, etcdBin, dir, set.members)
	if err != nil {
		return res, err
	}
	defer c.stop()
	cli, fo, err := connectFleet(c)
	if err != nil {
		return res, err
	}
	defer cli.Close()
	doc := fleetDoc(0)
	rev, err := fleet.Push(ctx, cli, fo, doc, 0, false)
	if err != nil {
		return res, fmt.Errorf("first push: %w", err)
	}
	insts, err := startInstances(ctx, bin, dir, c.endpoints(), set.instances)
	defer stopInstances(insts)
	if err != nil {
		return res, err
	}
	if _, err := waitApplied(ctx, insts, rev); err != nil {
		return res, err
	}
	if res.idle, err = fleetPhaseOf(ctx, c, func() error { return sleepCtx(ctx, idle) }); err != nil {
		return res, err
	}
	res.pushing, err = fleetPhaseOf(ctx, c, func() error {
		return pushAll(ctx, cli, fo, insts, rev, pushes, &res)
	})
	return res, errors.Join(err, instancesAlive(insts))
}

// pushAll pushes the configs one after another from revision rev, each
// once every instance applied the one before, and records the times.
func pushAll(ctx context.Context, cli *clientv3.Client, fo fleet.Options, insts []*fleetInstance, rev int64, pushes int, res *fleetResult) error {
	for i := 1; i <= pushes; i++ {
		doc := fleetDoc(i)
		res.docBytes = len(doc)
		start := time.Now()
		next, err := fleet.Push(ctx, cli, fo, doc, rev, false)
		if err != nil {
			return fmt.Errorf("push %d: %w", i, err)
		}
		rev = next
		at, err := waitApplied(ctx, insts, rev)
		if err != nil {
			return fmt.Errorf("push %d: %w", i, err)
		}
		var last time.Duration
		for _, t := range at {
			d := t.Sub(start)
			res.each = append(res.each, d)
			last = max(last, d)
		}
		res.converge = append(res.converge, last)
	}
	return nil
}

// fleetPhaseOf runs phase and reads etcd's CPU time and sent bytes around
// it.
func fleetPhaseOf(ctx context.Context, c *etcdCluster, phase func() error) (fleetPhase, error) {
	cpu0, err0 := c.cpu()
	sent0, err1 := c.sentBytes(ctx)
	start := time.Now()
	if err := errors.Join(err0, err1, phase()); err != nil {
		return fleetPhase{}, err
	}
	d := time.Since(start)
	cpu1, err0 := c.cpu()
	sent1, err1 := c.sentBytes(ctx)
	return fleetPhase{d: d, cpu: cpu1 - cpu0, sent: sent1 - sent0}, errors.Join(err0, err1)
}

// fleetDoc is push i's config: two small rules on unix sockets in each
// instance's directory, the second one's idle timeout changing with i.
// Nothing connects: the figure is the config's way, not traffic.
func fleetDoc(i int) []byte {
	return fmt.Appendf(nil, "log_format = \"json\"\n\n[[rule]]\nname = \"web\"\nlisten = \"unix:front.sock\"\nbackends = [\"127.0.0.1:9\"]\n"+
		"\n[[rule]]\nname = \"side\"\nlisten = \"unix:side.sock\"\nbackends = [\"127.0.0.1:9\"]\nidle_timeout = \"%ds\"\n", 60+i)
}

// fleetInstance is one sluice --etcd of a set, in a directory of its own
// (where the config's relative unix sockets land), and what its log said
// so far.
type fleetInstance struct {
	p       *proc
	log     string
	read    int64               // bytes of log read so far
	partial []byte              // a line not yet ended
	applied map[int64]time.Time // revision -> the time its applied line gives
}

// startInstances starts n instances, each once the one before listens.
func startInstances(ctx context.Context, bin, dir, endpoints string, n int) ([]*fleetInstance, error) {
	var out []*fleetInstance
	for i := range n {
		idir := filepath.Join(dir, fmt.Sprintf("i%02d", i))
		if err := os.MkdirAll(idir, 0o755); err != nil {
			return out, err
		}
		argv := []string{bin, "--etcd", endpoints, "--instance", fmt.Sprintf("bench-%02d", i), "--log-format", "json"}
		sock := filepath.Join(idir, "front.sock")
		p, err := startProc(ctx, fmt.Sprintf("sluice instance %d", i), idir, argv, 0, func(int) (bool, error) {
			_, err := os.Stat(sock)
			return err == nil, nil
		})
		if err != nil {
			return out, err
		}
		out = append(out, &fleetInstance{p: p, log: filepath.Join(idir, "output.log"), applied: map[int64]time.Time{}})
	}
	return out, nil
}

// stopInstances stops the instances, killing those that do not stop.
func stopInstances(insts []*fleetInstance) {
	for _, in := range insts {
		if in.p.stop() != nil {
			in.p.kill()
		}
	}
}

// instancesAlive fails if an instance has exited.
func instancesAlive(insts []*fleetInstance) error {
	var errs []error
	for _, in := range insts {
		errs = append(errs, in.p.alive())
	}
	return errors.Join(errs...)
}

// waitApplied waits until every instance logged that it applied rev, and
// returns those lines' times.
func waitApplied(ctx context.Context, insts []*fleetInstance, rev int64) ([]time.Time, error) {
	deadline := time.Now().Add(fleetConverge)
	out := make([]time.Time, len(insts))
	for i, in := range insts {
		for {
			if err := in.scan(); err != nil {
				return nil, err
			}
			if t, ok := in.applied[rev]; ok {
				out[i] = t
				break
			}
			if err := in.p.alive(); err != nil {
				return nil, err
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("%s did not apply revision %d within %v%s", in.p.name, rev, fleetConverge, in.p.outputTail())
			}
			if err := sleepCtx(ctx, 10*time.Millisecond); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// scan reads what the instance logged since the last scan and records the
// revisions it says it runs.
func (in *fleetInstance) scan() error {
	f, err := os.Open(in.log)
	if err != nil {
		return err
	}
	defer f.Close()
	data, err := io.ReadAll(io.NewSectionReader(f, in.read, 1<<40))
	if err != nil {
		return err
	}
	in.read += int64(len(data))
	data = append(in.partial, data...)
	end := bytes.LastIndexByte(data, '\n') + 1
	in.partial = slices.Clone(data[end:])
	for line := range strings.SplitSeq(string(data[:end]), "\n") {
		var rec struct {
			Time     time.Time `json:"time"`
			Msg      string    `json:"msg"`
			Revision int64     `json:"revision"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && (rec.Msg == appliedMsg || rec.Msg == startMsg) {
			in.applied[rec.Revision] = rec.Time
		}
	}
	return nil
}

// nearestRank is the q-quantile of ds by the nearest-rank method: with 50
// samples, p99 is the largest.
func nearestRank(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	k := int(float64(len(s))*q+0.999999) - 1
	return s[min(max(k, 0), len(s)-1)]
}

// printFleet prints the fleet table: one column per set.
func printFleet(w io.Writer, results []fleetResult) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(label string, cell func(r fleetResult) string) {
		fmt.Fprintf(tw, "%s\t", label)
		for _, r := range results {
			fmt.Fprintf(tw, "%s\t", cell(r))
		}
		fmt.Fprintln(tw)
	}
	msf := func(d time.Duration) string { return fmt.Sprintf("%.1f", ms(d)) }
	row("fleet", func(r fleetResult) string { return fmt.Sprintf("%d instances", r.instances) })
	row("etcd members", func(r fleetResult) string { return fmt.Sprint(r.set.members) })
	row("pushes (config of N bytes)", func(r fleetResult) string { return fmt.Sprintf("%d (%d B)", len(r.converge), r.docBytes) })
	for _, q := range []struct {
		name string
		q    float64
	}{{"p50", 0.5}, {"p99", 0.99}} {
		row("push → applied on every instance, "+q.name+" (ms)", func(r fleetResult) string { return msf(nearestRank(r.converge, q.q)) })
	}
	row("push → applied on every instance, max (ms)", func(r fleetResult) string { return msf(nearestRank(r.converge, 1)) })
	row("push → applied on one instance, p50 (ms)", func(r fleetResult) string { return msf(nearestRank(r.each, 0.5)) })
	row("push → applied on one instance, p99 (ms)", func(r fleetResult) string { return msf(nearestRank(r.each, 0.99)) })
	printFleetCosts(row)
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nidle: %v with every instance connected, no push (keepalives, a probe per instance a second, key refreshes);"+
		" pushes: one after another, each once every instance applied the one before. CPU from /proc/PID/stat of every etcd member;"+
		" bytes: %s of every member. Applied: the time of the instance's %q line.\n", fleetIdle, grpcSentMetric, appliedMsg)
	return nil
}

// printFleetCosts adds etcd's rows: CPU and bytes sent, idle and per push
// beyond the idle rate.
func printFleetCosts(row func(string, func(fleetResult) string)) {
	rate := func(v float64, d time.Duration) float64 { return v / d.Seconds() }
	extra := func(r fleetResult, idle, pushing float64) float64 {
		return (pushing - rate(idle, r.idle.d)*r.pushing.d.Seconds()) / float64(max(len(r.converge), 1))
	}
	row("etcd CPU, idle (% of a core)", func(r fleetResult) string {
		return fmt.Sprintf("%.1f", 100*rate(r.idle.cpu.Seconds(), r.idle.d))
	})
	row("etcd CPU per push, beyond idle (ms)", func(r fleetResult) string {
		return fmt.Sprintf("%.1f", 1000*extra(r, r.idle.cpu.Seconds(), r.pushing.cpu.Seconds()))
	})
	row("etcd → clients, idle (KiB/s)", func(r fleetResult) string {
		return fmt.Sprintf("%.1f", rate(r.idle.sent, r.idle.d)/1024)
	})
	row("etcd → clients per push, beyond idle (KiB)", func(r fleetResult) string {
		return fmt.Sprintf("%.1f", extra(r, r.idle.sent, r.pushing.sent)/1024)
	})
	row("  of which per instance (B)", func(r fleetResult) string {
		return fmt.Sprintf("%.0f", extra(r, r.idle.sent, r.pushing.sent)/float64(r.instances))
	})
}
