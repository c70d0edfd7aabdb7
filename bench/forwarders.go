package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"sluice/internal/congestion"
)

// forwarder is one column of the table: the direct connection, which the
// others are compared with, or a relay process started in front of a
// backend.
type forwarder struct {
	name    string
	version string
	// argv writes whatever configuration the forwarder needs into dir and
	// returns its command line for relaying listen to backend. It is nil for
	// the direct connection, which has no process.
	argv func(dir, listen, backend string) ([]string, error)
	// udpArgv is argv for relaying UDP (udp.go); nil when the forwarder
	// does not relay UDP, and for the direct connection.
	udpArgv func(dir, listen, backend string) ([]string, error)
	// tlsArgv is argv for the TLS figures (tlsfigures.go): it writes the
	// configuration spec describes; nil when the forwarder does not take
	// part in them, and for the direct connection.
	tlsArgv func(dir string, spec tlsSpec) ([]string, error)
	// bin is sluice's binary, for the figures that write sluice's own
	// config (listeners.go); empty for the peers, direct and sluice-1w.
	bin string
	// statesArgv is argv for the state-changes figure (statefigures.go),
	// with an admin API; nil for the forwarders that have none.
	statesArgv func(dir string, spec stateSpec) ([]string, error)
	// notes describe how the forwarder was configured, for the footer.
	notes []string
	// peer marks another project's forwarder: its failures are shown but
	// do not fail the run, which judges sluice.
	peer bool
	// variants are more columns of the same forwarder set up otherwise
	// (sluice and nginx with one UDP loop), placed right after it.
	variants []forwarder
}

// setupOptions are what the forwarders' configuration depends on.
type setupOptions struct {
	only      map[string]bool // forwarders to run; direct always runs
	sluiceBin string          // a prebuilt sluice; empty means build one
	baseBin   string          // another sluice measured beside it (sluice-base); empty: none
	tmp       string          // scratch directory
	maxConns  int             // connections the forwarders must accept at once
	nofile    uint64          // descriptor limit the forwarders inherit
}

// peerNames lists the forwarders besides direct, in column order.
func peerNames() []string { return []string{"sluice", "sluice-1w", "haproxy", "nginx", "socat"} }

// setupForwarders finds (or builds) each selected forwarder. A peer that is
// not installed is skipped with a note; sluice failing to build is an error.
func setupForwarders(ctx context.Context, o setupOptions) ([]forwarder, []string, error) {
	fwds := []forwarder{{name: "direct", version: "-"}}
	var skipped []string
	probes := map[string]func(context.Context, setupOptions) (forwarder, string, error){
		"sluice": probeSluice, "sluice-1w": probeSluiceOneWorker, "haproxy": probeHAProxy, "nginx": probeNginx, "socat": probeSocat,
	}
	if o.sluiceBin == "" && (o.only["sluice"] || o.only["sluice-1w"]) {
		bin, err := buildSluice(ctx, o.tmp) // once for both columns
		if err != nil {
			return nil, nil, err
		}
		o.sluiceBin = bin
	}
	for _, name := range peerNames() {
		if !o.only[name] {
			continue
		}
		f, skip, err := probes[name](ctx, o)
		if err != nil {
			return nil, nil, err
		}
		if skip != "" {
			skipped = append(skipped, name+": skipped, "+skip)
			continue
		}
		fwds = append(fwds, f)
		fwds = append(fwds, f.variants...)
	}
	return fwds, skipped, nil
}

// probeSluice builds sluice from this module (unless a binary was given)
// and asks it for its version.
func probeSluice(ctx context.Context, o setupOptions) (forwarder, string, error) {
	bin := o.sluiceBin
	if bin == "" {
		var err error
		if bin, err = buildSluice(ctx, o.tmp); err != nil {
			return forwarder{}, "", err
		}
	}
	version := "unknown"
	if out, err := exec.CommandContext(ctx, bin, "version").Output(); err == nil {
		version = firstLine(out)
	}
	f := forwarder{
		name:    "sluice",
		version: version,
		bin:     bin,
		argv: func(_, listen, backend string) ([]string, error) {
			return []string{bin, "-l", listen, "-r", backend, "--log-level", "warn"}, nil
		},
		udpArgv:    sluiceUDPArgv(bin, udpLoops),
		tlsArgv:    sluiceTLSArgv(bin),
		statesArgv: sluiceStatesArgv(bin),
		notes: []string{"sluice: quick mode, --log-level warn (no access log lines), congestion_control auto: cubic on its sockets to loopback peers" +
			" (system default here: " + congestion.SystemDefault() + ", which the bench's own sockets and the peers use)",
			fmt.Sprintf("sluice (udp): --workers %d (that many SO_REUSEPORT sockets, a loop each)", udpLoops), sluiceTLSNote, sluiceStatesNote()},
	}
	if o.baseBin != "" {
		f.variants = []forwarder{baseSluice(ctx, o.baseBin)}
	}
	return f, "", nil
}

// baseSluice is the column of a second sluice binary, run as sluice is, for
// a before-and-after in one run. Its UDP runs with its own default number
// of loops (an older binary may not know --workers).
func baseSluice(ctx context.Context, bin string) forwarder {
	version := "unknown"
	if out, err := exec.CommandContext(ctx, bin, "version").Output(); err == nil {
		version = firstLine(out)
	}
	return forwarder{
		name:    "sluice-base",
		version: version + " (" + bin + ")",
		bin:     bin,
		argv: func(_, listen, backend string) ([]string, error) {
			return []string{bin, "-l", listen, "-r", backend, "--log-level", "warn"}, nil
		},
		udpArgv: func(_, listen, backend string) ([]string, error) {
			return []string{bin, "-l", listen, "-r", backend, "-p", "udp", "--log-level", "warn"}, nil
		},
		tlsArgv:    sluiceTLSArgv(bin),
		statesArgv: sluiceStatesArgv(bin),
		notes:      []string{"sluice-base: " + bin + ", run as sluice is (its UDP with its default loops)"},
	}
}

// probeSluiceOneWorker is sluice with --workers 1, for TCP and UDP: one
// event loop serves the rule, as before rules used every loop, beside the
// sluice column at the default (one per CPU).
func probeSluiceOneWorker(ctx context.Context, o setupOptions) (forwarder, string, error) {
	f, skip, err := probeSluice(ctx, o)
	if err != nil || skip != "" {
		return f, skip, err
	}
	argv := f.argv
	f.name = "sluice-1w"
	f.argv = func(dir, listen, backend string) ([]string, error) {
		a, err := argv(dir, listen, backend)
		return append(a, "--workers", "1"), err
	}
	f.udpArgv = sluiceUDPArgv(o.sluiceBin, 1)
	f.tlsArgv = nil    // the TLS figures compare sluice with the peers
	f.statesArgv = nil // and the state figure measures the API, not the loops
	f.bin = ""         // and the listeners figures measure sluice's default
	f.variants = nil
	f.notes = []string{"sluice-1w: sluice with --workers 1 (one event loop accepts for the rule; its UDP: one socket, one loop)"}
	return f, "", nil
}

// buildSluice runs go build for ./cmd/sluice of the module the bench is run
// in and returns the binary's path.
func buildSluice(ctx context.Context, tmp string) (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("build sluice: %w (or pass -sluice PATH)", err)
	}
	gomod, err := exec.CommandContext(ctx, goBin, "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(gomod)) == "" || strings.TrimSpace(string(gomod)) == os.DevNull {
		return "", fmt.Errorf("build sluice: run the bench inside the sluice module (go env GOMOD: %q, %v)", gomod, err)
	}
	bin := filepath.Join(tmp, "sluice")
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", bin, "./cmd/sluice")
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(gomod)))
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build sluice in %s: %v\n%s", cmd.Dir, err, bytes.TrimSpace(out))
	}
	return bin, nil
}

// haproxyConfig is HAProxy's configuration: plain TCP mode, two threads (the
// machine's size), long timeouts, and room for the idle figure's
// connections.
const haproxyConfig = `global
	nbthread 2
	maxconn %[1]d

defaults
	mode tcp
	maxconn %[1]d
	timeout connect 5s
	timeout client 1h
	timeout server 1h

frontend bench
	bind %[2]s
	default_backend relay

backend relay
	server backend %[3]s
`

// probeHAProxy finds haproxy on PATH.
func probeHAProxy(ctx context.Context, o setupOptions) (forwarder, string, error) {
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		return forwarder{}, "haproxy is not installed", nil
	}
	version := "unknown"
	if out, err := exec.CommandContext(ctx, bin, "-v").Output(); err == nil {
		version = firstLine(out)
		if f := strings.Fields(version); len(f) >= 3 {
			version = "HAProxy " + f[2]
		}
	}
	// HAProxy needs about two descriptors per connection, plus a few.
	maxconn := min(o.maxConns, int(o.nofile/2)-100)
	return forwarder{
		peer:    true,
		name:    "haproxy",
		version: version,
		argv: func(dir, listen, backend string) ([]string, error) {
			cfg := filepath.Join(dir, "haproxy.cfg")
			text := fmt.Sprintf(haproxyConfig, maxconn, listen, backend)
			if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
				return nil, fmt.Errorf("haproxy: %w", err)
			}
			return []string{bin, "-db", "-f", cfg}, nil
		},
		tlsArgv: haproxyTLSArgv(bin, maxconn),
		notes:   []string{fmt.Sprintf("haproxy: mode tcp, nbthread 2, maxconn %d, timeouts 1h", maxconn), haproxyTLSNote},
	}, "", nil
}

// nginxConfig is nginx's configuration: a stream proxy in the foreground
// with two workers, half-close on (as the sink and source need) and enough
// connections for the idle figure in either worker.
const nginxConfig = `%[1]s
daemon off;
worker_processes 2;
worker_rlimit_nofile %[2]d;
pid %[3]s/nginx.pid;
error_log %[3]s/error.log warn;

events {
	worker_connections %[4]d;
}

stream {
	server {
		listen %[5]s;
		proxy_pass %[6]s;
		proxy_half_close on;
		proxy_connect_timeout 5s;
		proxy_timeout 1h;
	}
}
`

// probeNginx finds nginx on PATH and its stream module, built in or
// loadable.
func probeNginx(ctx context.Context, o setupOptions) (forwarder, string, error) {
	bin, err := exec.LookPath("nginx")
	if err != nil {
		return forwarder{}, "nginx is not installed", nil
	}
	out, err := exec.CommandContext(ctx, bin, "-V").CombinedOutput()
	if err != nil {
		return forwarder{}, "", fmt.Errorf("nginx -V: %v: %s", err, bytes.TrimSpace(out))
	}
	loadModule, skip := nginxStreamModule(string(out))
	if skip != "" {
		return forwarder{}, skip, nil
	}
	version := strings.TrimPrefix(firstLine(out), "nginx version: ")
	// A worker needs two connections per relayed connection, and one worker
	// may get all of them.
	workerConns := min(2*o.maxConns+64, int(o.nofile))
	f := forwarder{
		peer:    true,
		name:    "nginx",
		version: version,
		argv: func(dir, listen, backend string) ([]string, error) {
			conf := filepath.Join(dir, "nginx.conf")
			text := fmt.Sprintf(nginxConfig, loadModule, o.nofile, dir, workerConns, listen, backend)
			if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
				return nil, fmt.Errorf("nginx: %w", err)
			}
			return []string{bin, "-p", dir + "/", "-c", conf, "-e", filepath.Join(dir, "error.log")}, nil
		},
		udpArgv: nginxUDPArgv(bin, loadModule, o.nofile, udpLoops),
		tlsArgv: nginxTLSArgv(bin, loadModule, o.nofile, workerConns),
		notes: []string{
			fmt.Sprintf("nginx: stream proxy, worker_processes 2, worker_connections %d, proxy_half_close on", workerConns),
			nginxTLSNote,
			fmt.Sprintf("nginx (udp): listen udp reuseport, worker_processes %d, proxy_timeout 10s", udpLoops),
		},
	}
	f.variants = []forwarder{oneLoop(f, nginxUDPArgv(bin, loadModule, o.nofile, 1), "nginx-1w: nginx's UDP with worker_processes 1")}
	return f, "", nil
}

// nginxStreamModule reads nginx -V output and returns the load_module line
// the config needs ("" when the stream module is built in), or a reason to
// skip nginx.
func nginxStreamModule(v string) (loadModule, skip string) {
	fields := strings.Fields(v)
	dynamic := false
	modules := "/usr/lib/nginx/modules"
	for _, f := range fields {
		switch {
		case f == "--with-stream":
			return "", ""
		case f == "--with-stream=dynamic":
			dynamic = true
		case strings.HasPrefix(f, "--modules-path="):
			modules = strings.TrimPrefix(f, "--modules-path=")
		}
	}
	if !dynamic {
		return "", "nginx is built without the stream module"
	}
	so := filepath.Join(modules, "ngx_stream_module.so")
	if _, err := os.Stat(so); err != nil {
		return "", "nginx's stream module is not installed (" + so + "; package libnginx-mod-stream)"
	}
	return "load_module " + so + ";", ""
}

// direct reports whether f is the direct connection, which has no process.
func (f forwarder) direct() bool {
	return f.argv == nil && f.udpArgv == nil && f.tlsArgv == nil && f.statesArgv == nil
}

// launch starts f in front of backend and returns the address clients dial
// and the process, which is nil for the direct connection.
func launch(ctx context.Context, f forwarder, dir, backend string) (string, *proc, error) {
	if f.argv == nil {
		return backend, nil, nil
	}
	return launchWith(ctx, f.name, dir, func(listen string) ([]string, error) { return f.argv(dir, listen, backend) })
}

// launchWith starts the forwarder that argv's command line runs, listening
// on a free loopback port, and returns that address and the process.
func launchWith(ctx context.Context, name, dir string, argv func(listen string) ([]string, error)) (string, *proc, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", nil, fmt.Errorf("%s: %w", name, err)
	}
	port, err := freePort()
	if err != nil {
		return "", nil, err
	}
	listen := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	args, err := argv(listen)
	if err != nil {
		return "", nil, err
	}
	p, err := startProc(ctx, name, dir, args, port, tcpListening)
	if err != nil {
		return "", nil, err
	}
	return listen, p, nil
}

// firstLine returns the first line of out, trimmed.
func firstLine(out []byte) string {
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(line)
}
