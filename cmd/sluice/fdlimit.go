package main

import (
	"fmt"
	"io"
	"math"

	"golang.org/x/sys/unix"

	"sluice/internal/config"
	"sluice/internal/server"
)

// fdReserve is what sluice keeps for itself beside its rules: the engine's
// event loops, the admin API, the logs, the config file, health checks.
const fdReserve = 64

// minRoom is the fewest TCP connections `sluice check` expects the limit
// to leave room for beside the listening sockets without a warning.
const minRoom = 1024

// reportDescriptors tells out, in a comment after the config `sluice
// check` prints, how many descriptors the listening sockets of cfg hold
// against the limit sluice runs under (the hard RLIMIT_NOFILE, to which it
// raises the soft one at start), how many connections that leaves room
// for (a TCP connection holds two: the client's socket and the backend's;
// a UDP session one), and how many the rules' max_connections and
// max_sessions may take. It warns on warn when the sockets do not fit, or
// leave room for fewer than minRoom connections.
func reportDescriptors(out, warn io.Writer, cfg *config.Config) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		fmt.Fprintf(warn, "sluice: cannot read the file descriptor limit: %v\n", err)
		return
	}
	limit := int(min(lim.Max, math.MaxInt32))
	f := server.FootprintOf(cfg)
	room := max(limit-f.Descriptors-fdReserve, 0)
	fmt.Fprintf(out, "\n# %d TCP and %d UDP listening ports hold %d file descriptors; the limit is %d (RLIMIT_NOFILE): room for about %d TCP connections",
		f.TCPPorts, f.UDPPorts, f.Descriptors, limit, room/2)
	if n, bounded := allowedDescriptors(cfg); bounded {
		fmt.Fprintf(out, "; max_connections and max_sessions allow connections that hold up to %d", n)
	}
	fmt.Fprintln(out)
	switch {
	case f.Descriptors+fdReserve > limit:
		fmt.Fprintf(warn, "sluice: warning: the listening sockets need %d file descriptors, more than the limit of %d: raise it (LimitNOFILE=, ulimit -n) or listen on fewer ports\n",
			f.Descriptors+fdReserve, limit)
	case room/2 < minRoom:
		fmt.Fprintf(warn, "sluice: warning: the listening sockets hold %d of the %d file descriptors the limit allows, leaving room for about %d TCP connections: raise it (LimitNOFILE=, ulimit -n)\n",
			f.Descriptors, limit, room/2)
	}
}

// allowedDescriptors returns how many descriptors the connections and
// sessions that the rules' limits allow would hold at most, and whether
// every rule has such a limit. A rule's max_connections counts its TCP
// connections (two descriptors each) and UDP sessions (one) together;
// max_sessions its UDP sessions.
func allowedDescriptors(cfg *config.Config) (int, bool) {
	n := 0
	for _, rc := range cfg.Rules {
		limit := rc.MaxConnections
		if rc.Protocol == config.UDP && rc.MaxSessions > 0 && (limit == 0 || rc.MaxSessions < limit) {
			limit = rc.MaxSessions
		}
		if limit == 0 {
			return 0, false
		}
		if rc.Protocol.HasTCP() {
			limit *= 2
		}
		n += limit
	}
	return n, true
}
