package backend

import (
	"reflect"
	"time"

	"sluice/internal/congestion"
	"sluice/internal/endpoint"
	"sluice/internal/tlsconf"
)

// Settings is what a Pool is built from: one rule's backends and how they
// are picked, dialed and checked. The server builds it from the rule's
// validated config, which has filled in every default; the pool adds none
// of its own. A reload that brings Settings unequal to a pool's (see Equal)
// builds a new pool.
type Settings struct {
	// Name is the rule's name, for logs and errors.
	Name     string
	Backends []Target // in config order
	// From names where further backends are discovered (the config's
	// backends_from, as written), for Equal and Inherit: the pool's
	// owner feeds them (Pool.Feed); empty: nowhere.
	From string
	// Balance is the strategy: RoundRobin, LeastConn, Random, SourceHash
	// or First. Any other value means RoundRobin, with a warning.
	Balance string
	// Retries is how many further backends a connection tries after a
	// failed connect; 0 or less: none.
	Retries int
	// ConnectTimeout bounds one connect; zero: no bound but the kernel's.
	ConnectTimeout time.Duration
	// ResolveTTL is how long a resolved host name is reused; zero: not at all.
	ResolveTTL time.Duration
	// HealthCheck is the active check, every field set; nil: passive
	// health only (connect failures and successes).
	HealthCheck *HealthCheck
	// CongestionControl is given to every socket the pool connects.
	CongestionControl congestion.Choice
	// TLS, when set, makes every connect (and health check) speak TLS to
	// the backend: the handshake follows the PROXY header, which goes in
	// plaintext, and must verify as TLS says; nil: plain TCP. Such a pool
	// is never Direct.
	TLS *tlsconf.Client
	// ObserveTLS, when set, is told the result of each TLS handshake of a
	// connection's connect (not of a health check), in the words of
	// tlsconf.Result, and how long it took: for metrics.
	ObserveTLS func(result string, d time.Duration)
	// SlowStart is how long a backend that comes up or returns to ready
	// ramps its weight from 1/20 to full; zero: off (see slowstart.go).
	SlowStart time.Duration
	// QueueTimeout is how long a client may wait in the pool's queue when
	// every usable backend is full; zero: no queue (see queue.go).
	QueueTimeout time.Duration
	// MaxQueue bounds the clients waiting in the queue; zero or less
	// with a QueueTimeout: DefaultMaxQueue.
	MaxQueue int
	// Source is where the sockets towards the backends come from, for
	// connections, UDP sessions and health checks alike (see Source and
	// Pool.Origin); the zero value: the kernel's choice.
	Source Source
	// Mark is the firewall mark (SO_MARK) of every socket towards the
	// backends; zero: none. Unix socket backends are not marked.
	Mark uint32
}

// Equal reports whether s and o are the same in every field, so that a
// pool built from one is the pool the other would build. It compares
// every field there is (a field added to Settings is compared too): TLS
// by its settings and its files' contents (tlsconf.Client.Equal), except
// ObserveTLS, which is how a pool reports, not what it is: a pool kept
// across a reload keeps the observer it was built with.
func (s Settings) Equal(o Settings) bool {
	if !s.TLS.Equal(o.TLS) {
		return false
	}
	s.TLS, o.TLS = nil, nil
	s.ObserveTLS, o.ObserveTLS = nil, nil
	return reflect.DeepEqual(s, o)
}

// Target is one backend as a rule lists it.
type Target struct {
	Address Address
	Weight  int  // relative share for weighted strategies; less than 1 counts as 1
	Backup  bool // takes traffic only while no primary backend is up
	// MaxConns bounds the backend's live connections: a full backend is
	// not picked. Zero: unlimited.
	MaxConns int
}

// Address is where a backend listens: Network "tcp" with Host and Port, or
// Network "unix" with Path; the same type as the config's.
type Address = endpoint.Address

// HealthCheck is a rule's active health check of its backends.
type HealthCheck struct {
	Interval time.Duration // between checks of one backend
	Timeout  time.Duration // bounds one check
	Rise     int           // passed checks in a row that mark a backend up
	Fall     int           // failed checks in a row that mark a backend down
	Send     string        // bytes to send once connected; empty: none
	Expect   string        // bytes the reply must contain; empty: connecting is enough
	Port     uint16        // port checks connect to instead of the backend's first; 0: that one
}
