// Package metrics holds sluice's Prometheus collectors in one struct that is
// created with the registry it registers into (never the global default) and
// passed to whoever counts.
//
// Every method is nil-safe: a nil *Metrics or a nil *Rule does nothing, so
// code paths and tests that do not care about metrics pass nil. Labels are
// bounded: a rule name, a backend address from the config, a direction or a
// rejection reason, never a client address.
//
// The hot path costs one atomic add: a relay adds the bytes of each chunk to
// the *atomic.Int64 pair that Rule.Bytes returns, and a custom collector
// reads them at scrape time. Per-connection events (opened, closed, rejected)
// are atomic adds on the rule's handle too; only the connect-duration
// histogram goes through client_golang.
package metrics

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"sluice/internal/access"
)

// Metric names, as docs/OPERATIONS.md (Metrics) documents them; a test
// holds the two together.
const (
	nameConnectionsTotal    = "sluice_connections_total"
	nameConnectionsActive   = "sluice_connections_active"
	nameBytesTotal          = "sluice_bytes_total"
	nameRejectedTotal       = "sluice_rejected_total"
	nameBackendUp           = "sluice_backend_up"
	nameBackendConnectErrs  = "sluice_backend_connect_errors_total"
	nameBackendState        = "sluice_backend_state"
	nameConnectDuration     = "sluice_connect_duration_seconds"
	nameUDPSessionsActive   = "sluice_udp_sessions_active"
	nameBackendBytes        = "sluice_backend_bytes_total"
	nameBackendConnections  = "sluice_backend_connections_total"
	nameBackendActive       = "sluice_backend_connections_active"
	directionUp, directionD = "up", "down"
)

// connectBuckets are the connect-duration histogram's upper bounds in
// seconds: from a loopback connect (tens of microseconds) to a connect
// timeout of several seconds.
var connectBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// BackendState is one backend's health as the metrics report it. The server
// provides a snapshot of every backend through SetBackendSource.
type BackendState struct {
	Rule          string // the rule's name
	Route         string // the route's name; "default" for a routed rule's own backends, empty for a rule without routes
	Backend       string // the backend address as configured, e.g. "10.0.0.5:80"
	Up            bool   // healthy (while in maintenance: last known)
	ConnectErrors uint64 // failed connects since the backend was configured
	// State is the admin state set on the backend, one of AdminStates.
	State string
	// Connections counts the connections (UDP: sessions) that reached the
	// backend; Active, those open now.
	Connections uint64
	Active      int64
	// BytesUp (client→backend) and BytesDown are the bytes of the
	// backend's ended connections and of its live ones so far.
	BytesUp, BytesDown int64
}

// AdminStates are the values of a backend's State (backend.States by
// name), each a series of sluice_backend_state.
var AdminStates = []string{"ready", "drain", "maint"}

// Metrics is sluice's set of collectors. Create it with New; a nil *Metrics
// is valid and records nothing.
type Metrics struct {
	connectDuration *prometheus.HistogramVec
	tls             tlsVecs
	backends        atomic.Pointer[func() []BackendState]
	certs           atomic.Pointer[func() []Certificate]
	process         process
	queues          atomic.Pointer[func() []QueueLength] // see queue.go
	logDrops        atomic.Pointer[func() uint64]

	mu    sync.Mutex       // guards the following fields
	rules map[string]*Rule // by rule name
}

// New creates the collectors and registers them, together with the Go
// runtime and process collectors, into reg. It fails when reg already holds
// collectors of the same names.
func New(reg *prometheus.Registry) (*Metrics, error) {
	m := &Metrics{
		connectDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    nameConnectDuration,
			Help:    "Time to connect to a backend, retries included, of connections that reached one.",
			Buckets: connectBuckets,
		}, []string{"rule"}),
		tls:   newTLSVecs(),
		rules: make(map[string]*Rule),
	}
	for _, c := range []prometheus.Collector{
		m.connectDuration,
		m.tls.handshakes,
		m.tls.duration,
		ruleCollector{m},
		backendCollector{m},
		certCollector{m},
		processCollector{&m.process},
		queueCollector{m},
		logCollector{m},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: register collectors: %w", err)
		}
	}
	return m, nil
}

// Rule returns the handle of the rule called name, creating it on first use.
// The same name always returns the same handle until Forget, so a reload
// that keeps a rule keeps counting up. A nil *Metrics returns a nil *Rule.
func (m *Metrics) Rule(name string) *Rule {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.rules[name]
	if r == nil {
		r = &Rule{name: name, duration: m.connectDuration.WithLabelValues(name), tls: m.tls}
		m.rules[name] = r
	}
	return r
}

// Forget drops every series of the rule called name: call it when a reload
// removes the rule. Handles still held (by draining connections) keep
// working but are no longer exported; a later Rule(name) starts from zero.
func (m *Metrics) Forget(name string) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.rules, name)
	m.connectDuration.DeleteLabelValues(name)
	m.tls.forget(name)
}

// SetBackendSource sets the function called at every scrape to report
// sluice_backend_up and sluice_backend_connect_errors_total. It must be safe
// for concurrent use and quick; nil reports no backends.
func (m *Metrics) SetBackendSource(source func() []BackendState) {
	if m == nil {
		return
	}
	if source == nil {
		m.backends.Store(nil)
		return
	}
	m.backends.Store(&source)
}

// snapshotRules returns the live rule handles. The registry sorts the
// series it gathers, so their order does not matter.
func (m *Metrics) snapshotRules() []*Rule {
	m.mu.Lock()
	out := make([]*Rule, 0, len(m.rules))
	for _, r := range m.rules {
		out = append(out, r)
	}
	m.mu.Unlock()
	return out
}

// Rule is one rule's set of counters. Get it from Metrics.Rule; a nil *Rule
// is valid and records nothing. All methods are safe for concurrent use.
type Rule struct {
	name     string
	duration prometheus.Observer
	tls      tlsVecs

	total    atomic.Uint64
	active   atomic.Int64
	sessions atomic.Int64
	udp      atomic.Bool // the rule forwards UDP: it has sluice_udp_sessions_active
	up, down atomic.Int64

	rejectedAll atomic.Uint64
	rejected    sync.Map // reason string → *atomic.Uint64
	routes      sync.Map // route name → *atomic.Uint64
}

// ConnOpened counts a connection (or UDP session) that was admitted:
// sluice_connections_total and sluice_connections_active go up by one.
func (r *Rule) ConnOpened() {
	if r == nil {
		return
	}
	r.total.Add(1)
	r.active.Add(1)
}

// ConnClosed counts the end of a connection counted by ConnOpened.
func (r *Rule) ConnClosed() {
	if r == nil {
		return
	}
	r.active.Add(-1)
}

// SetUDP says whether the rule forwards UDP. Only such a rule (or one
// with UDP sessions still open) exports sluice_udp_sessions_active: a
// TCP-only rule has no UDP series.
func (r *Rule) SetUDP(on bool) {
	if r == nil {
		return
	}
	r.udp.Store(on)
}

// UDPSessionOpened counts a new UDP session in sluice_udp_sessions_active.
// It does not touch the connection counters; call ConnOpened as well if a
// session should count as a connection.
func (r *Rule) UDPSessionOpened() {
	if r == nil {
		return
	}
	r.sessions.Add(1)
}

// UDPSessionClosed counts the end of a session counted by UDPSessionOpened.
func (r *Rule) UDPSessionClosed() {
	if r == nil {
		return
	}
	r.sessions.Add(-1)
}

// Rejected counts a client turned away before any backend was dialled, by
// the reason its access line gives (its end is access.Rejected(reason)):
// a label from the small fixed set of reasons.
func (r *Rule) Rejected(reason access.Reason) {
	if r == nil {
		return
	}
	r.rejectedAll.Add(1)
	if c, ok := r.rejected.Load(string(reason)); ok {
		c.(*atomic.Uint64).Add(1)
		return
	}
	c, _ := r.rejected.LoadOrStore(string(reason), new(atomic.Uint64))
	c.(*atomic.Uint64).Add(1)
}

// ConnectDuration records how long reaching a backend took, retries included.
func (r *Rule) ConnectDuration(d time.Duration) {
	if r == nil {
		return
	}
	r.duration.Observe(d.Seconds())
}

// Bytes returns the rule's byte counters, up (client→backend) and down
// (backend→client), for a relay to add each chunk to directly: the hot path
// costs one atomic add and no lookup. They are exported as
// sluice_bytes_total. A nil *Rule returns fresh counters nobody reads, so the
// caller needs no nil check.
func (r *Rule) Bytes() (up, down *atomic.Int64) {
	if r == nil {
		return new(atomic.Int64), new(atomic.Int64)
	}
	return &r.up, &r.down
}

// Counters is a point-in-time copy of a rule's counters, for the admin API.
type Counters struct {
	ConnectionsTotal uint64 // connections admitted since the rule started
	Active           int64  // connections open now
	UDPSessions      int64  // UDP sessions open now
	BytesUp          int64  // bytes client→backend
	BytesDown        int64  // bytes backend→client
	Rejected         uint64 // clients rejected, every reason
}

// Counters returns the rule's current counts; zero for a nil *Rule.
func (r *Rule) Counters() Counters {
	if r == nil {
		return Counters{}
	}
	return Counters{
		ConnectionsTotal: r.total.Load(),
		Active:           r.active.Load(),
		UDPSessions:      r.sessions.Load(),
		BytesUp:          r.up.Load(),
		BytesDown:        r.down.Load(),
		Rejected:         r.rejectedAll.Load(),
	}
}
