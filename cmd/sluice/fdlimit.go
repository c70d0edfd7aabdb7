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

// reportDescriptors tells w (for `sluice check`) how many descriptors the
// listening sockets of cfg hold against the limit sluice runs under (the
// hard RLIMIT_NOFILE, to which it raises the soft one at start), and how
// many connections that leaves room for: a TCP connection holds two (the
// client's socket and the backend's), a UDP session one. It warns when the
// sockets, or the sockets and the connections the rules allow
// (max_connections, max_sessions), do not fit.
func reportDescriptors(w io.Writer, cfg *config.Config) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		fmt.Fprintf(w, "sluice: cannot read the file descriptor limit: %v\n", err)
		return
	}
	limit := int(min(lim.Max, math.MaxInt32))
	f := server.FootprintOf(cfg)
	room := max(limit-f.Descriptors-fdReserve, 0)
	fmt.Fprintf(w, "sluice: %d TCP and %d UDP listening ports hold %d file descriptors; the limit is %d (RLIMIT_NOFILE): room for about %d TCP connections\n",
		f.TCPPorts, f.UDPPorts, f.Descriptors, limit, room/2)
	allowed := 0
	for _, rc := range cfg.Rules {
		if rc.Protocol.HasTCP() {
			allowed += 2 * rc.MaxConnections
		}
		if rc.Protocol.HasUDP() {
			allowed += rc.MaxSessions
		}
	}
	switch {
	case f.Descriptors+fdReserve > limit:
		fmt.Fprintf(w, "sluice: warning: the listening sockets need %d file descriptors, more than the limit of %d: raise it (LimitNOFILE=, ulimit -n) or listen on fewer ports\n",
			f.Descriptors+fdReserve, limit)
	case allowed > room:
		fmt.Fprintf(w, "sluice: warning: max_connections and max_sessions allow connections that need %d file descriptors beside the listening sockets' %d, more than the limit of %d: raise it (LimitNOFILE=, ulimit -n)\n",
			allowed, f.Descriptors, limit)
	}
}
