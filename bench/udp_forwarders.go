package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// udpLoops is how many event loops (sluice's workers, nginx's
// worker_processes) the UDP columns of sluice and nginx run with; their
// "-1w" columns run with one, so that the table shows how each scales.
const udpLoops = 2

// sluiceUDPArgv returns sluice's command line for relaying UDP with the
// given number of event loops (sockets).
func sluiceUDPArgv(bin string, workers int) func(dir, listen, backend string) ([]string, error) {
	return func(_, listen, backend string) ([]string, error) {
		return []string{bin, "-l", listen, "-r", backend, "-p", "udp", "--log-level", "warn", "--workers", strconv.Itoa(workers)}, nil
	}
}

// oneLoop returns the UDP-only column of f (nginx) run with one
// event loop, named f's name with "-1w".
func oneLoop(f forwarder, udpArgv func(dir, listen, backend string) ([]string, error), note string) forwarder {
	return forwarder{peer: f.peer, name: f.name + "-1w", version: f.version, udpArgv: udpArgv, notes: []string{note}}
}

// nginxUDPConfig is nginx's configuration for relaying UDP: a stream proxy
// with %[6]d workers, each with its own socket (reuseport, as nginx advises
// for UDP), sessions per client address (nginx ≥ 1.15) ending after 10s
// of quiet.
const nginxUDPConfig = `%[1]s
daemon off;
worker_processes %[6]d;
worker_rlimit_nofile %[2]d;
pid %[3]s/nginx.pid;
error_log %[3]s/error.log warn;

events {
	worker_connections 4096;
}

stream {
	server {
		listen %[4]s udp reuseport;
		proxy_pass %[5]s;
		proxy_timeout 10s;
	}
}
`

// nginxUDPArgv returns nginx's command line for relaying UDP with the given
// number of worker processes.
func nginxUDPArgv(bin, loadModule string, nofile uint64, workers int) func(dir, listen, backend string) ([]string, error) {
	return func(dir, listen, backend string) ([]string, error) {
		conf := filepath.Join(dir, "nginx.conf")
		text := fmt.Sprintf(nginxUDPConfig, loadModule, nofile, dir, listen, backend, workers)
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			return nil, fmt.Errorf("nginx: %w", err)
		}
		return []string{bin, "-p", dir + "/", "-c", conf, "-e", filepath.Join(dir, "error.log")}, nil
	}
}

// probeSocat finds socat on PATH. It takes part in the UDP figures only: a
// process per TCP connection has no place in the idle figure.
func probeSocat(ctx context.Context, _ setupOptions) (forwarder, string, error) {
	bin, err := exec.LookPath("socat")
	if err != nil {
		return forwarder{}, "socat is not installed", nil
	}
	version := "unknown"
	if out, err := exec.CommandContext(ctx, bin, "-V").Output(); err == nil {
		for line := range strings.SplitSeq(string(out), "\n") {
			if strings.HasPrefix(line, "socat version") {
				version = strings.Join(strings.Fields(line)[:3], " ")
			}
		}
	}
	return forwarder{
		peer:    true,
		name:    "socat",
		version: version,
		udpArgv: func(_, listen, backend string) ([]string, error) {
			host, port, _ := strings.Cut(listen, ":")
			return []string{bin, "-T", "10", "UDP4-LISTEN:" + port + ",bind=" + host + ",reuseaddr,fork", "UDP4:" + backend}, nil
		},
		notes: []string{"socat: UDP figures only, UDP4-LISTEN with fork (a process per client), -T 10;" +
			" it mixes up clients whose first datagrams arrive together, so request/response opens its sessions one at a time"},
	}, "", nil
}

// udpBound reports whether a UDP socket is bound to port, from
// /proc/net/udp and udp6.
func udpBound(port int) (bool, error) {
	suffix := fmt.Sprintf(":%04X", port)
	for _, path := range []string{"/proc/net/udp", "/proc/net/udp6"} {
		f, err := os.Open(path)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("read bound UDP sockets: %w", err)
		}
		found := false
		sc := bufio.NewScanner(f)
		for sc.Scan() && !found {
			fields := strings.Fields(sc.Text())
			found = len(fields) > 1 && strings.HasSuffix(fields[1], suffix)
		}
		err = sc.Err()
		f.Close()
		if err != nil || found {
			return found, err
		}
	}
	return false, nil
}

// killGroup ends what is left of a forwarder's process group.
func killGroup(p *proc) error {
	return syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
}
