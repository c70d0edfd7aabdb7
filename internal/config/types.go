// Package config defines sluice's configuration: the TOML schema, loading,
// defaults and validation. Every error it returns names what is wrong and
// where (file:line, rule name, address). It opens no sockets.
package config

import (
	"net/netip"
	"time"

	"sluice/internal/congestion"
	"sluice/internal/endpoint"
)

// Config is a complete, validated sluice configuration. Durations, sizes and
// addresses are already parsed; a zero value in an optional field means the
// documented default has been applied by validation (see Rule).
type Config struct {
	// Path is the file the config was loaded from; empty in quick mode.
	Path string

	LogLevel   string // "debug" | "info" | "warn" | "error"
	LogFormat  string // "text" | "json"
	Admin      string // admin HTTP listen address; empty means off
	AdminToken string // bearer token for the admin API; empty means none

	Rules []Rule
}

// Protocol says which transports a rule forwards.
type Protocol string

// The protocols a rule may forward.
const (
	TCP    Protocol = "tcp"
	UDP    Protocol = "udp"
	TCPUDP Protocol = "tcp+udp"
)

// HasTCP reports whether the protocol includes TCP.
func (p Protocol) HasTCP() bool { return p == TCP || p == TCPUDP }

// HasUDP reports whether the protocol includes UDP.
func (p Protocol) HasUDP() bool { return p == UDP || p == TCPUDP }

// Address is a parsed listen or backend address (see the endpoint package).
type Address = endpoint.Address

// Backend is one upstream of a rule.
type Backend struct {
	Address Address
	Weight  int  // relative share for weighted strategies; default 1
	Backup  bool // takes traffic only while no primary backend is up
}

// HealthCheck configures active health checks of a rule's backends.
type HealthCheck struct {
	Interval time.Duration // default 5s
	Timeout  time.Duration // default 1s
	Rise     int           // successes to mark a backend up; default 2
	Fall     int           // failures to mark a backend down; default 3
	Send     string        // optional bytes to send after connecting
	Expect   string        // optional bytes the reply must contain
}

// Rule is one forwarding rule. Validation fills in every default, so each
// field holds the value in force.
type Rule struct {
	Name     string
	Listen   Address
	Protocol Protocol
	Backends []Backend
	Balance  string // round-robin | least-conn | random | source-hash | first

	ConnectTimeout time.Duration // dial timeout per backend; default 5s
	IdleTimeout    time.Duration // no bytes either way for this long closes; default 1h
	DrainTimeout   time.Duration // graceful stop and half-close idle limit; default 30s
	// Retries is how many further backends are tried after a failed dial.
	// Default: every other backend once (len(Backends)-1).
	Retries int
	// ResolveTTL is how long a resolved backend host name is cached; default 30s.
	ResolveTTL time.Duration

	Allow               []netip.Prefix // empty: every client allowed
	Deny                []netip.Prefix // deny wins over allow
	MaxConnections      int            // 0: unlimited
	MaxConnectionsPerIP int            // 0: unlimited
	PerIPPrefixV6       int            // leading bits of an IPv6 client address the per-IP limits count by; default 128
	RatePerIP           float64        // new connections per second per client IP; 0: unlimited
	Bandwidth           int64          // bytes per second per connection and direction; 0: unlimited

	ProxyProtocol       int            // 0 (off), 1 or 2: header sent to backends
	AcceptProxyProtocol []netip.Prefix // senders whose PROXY header is trusted

	HealthCheck *HealthCheck // nil: no active checks

	UDPSessionTimeout time.Duration // default 60s
	MaxSessions       int           // UDP sessions per rule; 0: unlimited

	// CongestionControl picks the TCP congestion control of the rule's
	// connections; the zero value is "auto" (see package congestion).
	CongestionControl congestion.Choice

	// Workers is how many event loops serve the rule's listening sockets:
	// on Linux a UDP rule reads its datagrams through this many sockets
	// sharing the address (SO_REUSEPORT), one loop each. At least 1;
	// default runtime.GOMAXPROCS(0) when the config is built.
	Workers int
}
