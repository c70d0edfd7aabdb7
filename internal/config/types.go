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
	// AccessLog is where access lines go: "stderr", "off", or a file
	// path (made absolute from the config file's directory; as given in
	// quick mode). LogFile is where every other line goes: "stderr" or a
	// file path. Both default to "stderr".
	AccessLog, LogFile string

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
	// MaxConnections bounds the backend's live connections (TCP) or
	// sessions (UDP): a full backend is not picked. 0: unlimited.
	MaxConnections int
}

// HealthCheck configures active health checks of a rule's backends.
type HealthCheck struct {
	Interval time.Duration // default 5s
	Timeout  time.Duration // default 1s
	Rise     int           // successes to mark a backend up; default 2
	Fall     int           // failures to mark a backend down; default 3
	Send     string        // optional bytes to send after connecting
	Expect   string        // optional bytes the reply must contain
	// Port is where checks connect instead of each backend's own port
	// (the first of a backend's range); 0 (default): that port. Backends
	// given by unix path are checked on their path.
	Port uint16
}

// Upstream is the backend side of a rule, or of one of its routes: where
// its clients go and how sluice talks to those backends. A route inherits
// each key it does not set from its rule (and so from [defaults]).
type Upstream struct {
	Backends []Backend
	// BackendsFrom is where further backends are discovered while sluice
	// runs (etcd keys, DNS SRV records), joining Backends; the zero value:
	// none.
	BackendsFrom BackendsFrom
	Balance      string // round-robin | least-conn | random | source-hash | first

	ConnectTimeout time.Duration // dial timeout per backend; default 5s
	// Retries is how many further backends are tried after a failed dial.
	// Default: every other backend once (len(Backends)-1); with
	// BackendsFrom, at least 3.
	Retries int
	// ResolveTTL is how long a resolved backend host name is cached; default 30s.
	ResolveTTL time.Duration

	ProxyProtocol int          // 0 (off), 1 or 2: header sent to backends
	HealthCheck   *HealthCheck // nil: no active checks

	// TLS, when set, makes sluice terminate TLS for these clients
	// ([rule.tls] or [rule.route.tls]); nil: bytes pass through as sent.
	TLS *TLS
	// BackendTLS, when set, makes sluice speak TLS to the backends
	// ([rule.backend_tls] or per route); nil: plain TCP.
	BackendTLS *BackendTLS

	// SlowStart is how long a backend that comes up (health) or returns
	// to ready ramps its weight from 1/20 to full; 0 (default): off.
	SlowStart time.Duration
	// QueueTimeout is how long a TCP client may wait in the queue when
	// every usable backend is full (max_connections); 0 (default): no
	// queue, the client is refused at once.
	QueueTimeout time.Duration
	// MaxQueue bounds the clients waiting in the queue; default 1024.
	MaxQueue int

	// Source is the local address sluice connects to the backends from;
	// the zero value (default): the kernel's choice.
	Source Source
	// Mark is the firewall mark (SO_MARK) of every socket towards the
	// backends, for policy routing; 0 (default): none.
	Mark uint32
}

// Source is where the backend side's sockets come from (the source key):
// a fixed local address, the client's own address, or, the zero value,
// wherever the kernel's routing puts them.
type Source struct {
	// Addr is a fixed address to bind to (never IPv4-mapped, without
	// zone); invalid: none.
	Addr netip.Addr
	// Client: the client's own address (source = "client"), bound with
	// IP_TRANSPARENT so that the backend sees the client as its peer.
	Client bool
}

// String returns the source as the source key takes it: an IP address,
// "client", or "off" for the zero value.
func (s Source) String() string {
	switch {
	case s.Client:
		return sourceClient
	case s.Addr.IsValid():
		return s.Addr.String()
	}
	return "off"
}

// Route is one [[rule.route]] of a TCP rule: which clients it takes, judged
// by their first bytes, and the backend side they go to. A route matches
// when every matcher it gives matches (one element of a list is enough);
// routes are tried in order and the first match wins. Host names (SNI,
// HTTPHost) are kept lower-case; the name and ALPN protocols as written.
// Every Upstream field but Backends and BackendsFrom is the rule's unless
// the route sets it; those two are the route's own, and at least one is set.
type Route struct {
	Name     string   // default "route-N", N counting the rule's routes from 1
	SNI      []string // TLS server names; "*.example.org" matches names under example.org
	ALPN     []string // TLS ALPN protocols, one of which the client must offer
	HTTPHost []string // HTTP/1.x Host header hosts (names, or IP addresses, IPv6 without brackets), compared without the header's port
	Detect   []string // protocols: "tls", "http", "ssh", "proxy"
	Upstream
}

// TLS is a [rule.tls] or [rule.route.tls] table: sluice terminates TLS.
// The files are named here and read by the server at start and at every
// reload, so that a renewed certificate is picked up; a relative path in
// the file is resolved against the config file's directory when parsed.
type TLS struct {
	// Certificates are the pairs served; the one whose names match the
	// client's server name is chosen, the first when none does.
	Certificates []CertKey
	MinVersion   uint16   // tls.VersionTLS12 (default) or tls.VersionTLS13
	ALPN         []string // protocols offered to clients; empty: none
	ClientCA     string   // file of CA certificates clients must be signed by; empty: no client certificates
}

// CertKey is one certificate and its private key, as PEM file paths.
type CertKey struct {
	Cert string
	Key  string
}

// BackendTLS is a [rule.backend_tls] table: sluice speaks TLS to backends.
type BackendTLS struct {
	CA                 string // file of CA certificates; empty: the system's roots
	ServerName         string // name verified and sent as SNI; empty: the backend's host
	Cert, Key          string // client certificate files; empty: none
	InsecureSkipVerify bool
}

// Rule is one forwarding rule. Validation fills in every default, so each
// field holds the value in force.
type Rule struct {
	Name     string
	Listen   Address
	Protocol Protocol
	// Upstream is the rule's own backend side: every client of a rule
	// without routes, and a routed rule's default route (the clients no
	// route takes). A routed rule may have no backends: unmatched clients
	// are then refused (rejected:no-route).
	Upstream

	// Routes choose the backend side by what a TCP client sends first.
	Routes []Route
	// PeekTimeout bounds the wait for a routed rule's client to send
	// enough to choose a route (and the TLS handshake of a terminating
	// one); default 3s. A client silent that long takes the default route.
	PeekTimeout time.Duration

	IdleTimeout  time.Duration // no bytes either way for this long closes; default 1h
	DrainTimeout time.Duration // graceful stop and half-close idle limit; default 30s

	Allow               []netip.Prefix // empty: every client allowed
	Deny                []netip.Prefix // deny wins over allow
	MaxConnections      int            // 0: unlimited
	MaxConnectionsPerIP int            // 0: unlimited
	PerIPPrefixV6       int            // leading bits of an IPv6 client address the per-IP limits count by; default 128
	RatePerIP           float64        // new connections per second per client IP; 0: unlimited
	Bandwidth           int64          // bytes per second per connection and direction; 0: unlimited

	AcceptProxyProtocol []netip.Prefix // senders whose PROXY header is trusted

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
