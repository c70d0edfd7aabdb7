package metrics

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The series of routes and TLS (issue 15's metrics).
const (
	nameRouteConnections = "sluice_route_connections_total"
	nameTLSHandshakes    = "sluice_tls_handshakes_total"
	nameTLSDuration      = "sluice_tls_handshake_duration_seconds"
	nameCertExpiry       = "sluice_tls_certificate_expiry_timestamp_seconds"
)

// The sides of a TLS handshake, as the side label gives them: with a
// client (sluice terminates) or with a backend (sluice originates).
const (
	SideClient  = "client"
	SideBackend = "backend"
)

// handshakeBuckets are the TLS handshake histogram's upper bounds in
// seconds: from a resumed handshake on loopback to a slow client near the
// default peek timeout.
var handshakeBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}

// Certificate is one certificate a rule serves, as its expiry metric
// reports it. The server provides them through SetCertificateSource.
type Certificate struct {
	Rule     string    // the rule's name
	Name     string    // the certificate's first DNS name, or its subject's common name
	NotAfter time.Time // when it expires
}

var (
	descRouteConnections = prometheus.NewDesc(nameRouteConnections,
		"Connections each route of a rule took, by rule and route (\"default\": the rule's own backends).",
		[]string{"rule", "route"}, nil)
	descCertExpiry = prometheus.NewDesc(nameCertExpiry,
		"When a certificate sluice serves expires, as a Unix time, by rule and certificate name.",
		[]string{"rule", "name"}, nil)
)

// tlsVecs are the TLS handshake collectors, labelled by rule and side.
type tlsVecs struct {
	handshakes *prometheus.CounterVec
	duration   *prometheus.HistogramVec
}

// newTLSVecs creates the handshake collectors.
func newTLSVecs() tlsVecs {
	return tlsVecs{
		handshakes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: nameTLSHandshakes,
			Help: "TLS handshakes, by rule, side (client: sluice terminates; backend: sluice connects with TLS) and result (ok, or why it failed).",
		}, []string{"rule", "side", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    nameTLSDuration,
			Help:    "Time TLS handshakes took, failed ones included, by rule and side.",
			Buckets: handshakeBuckets,
		}, []string{"rule", "side"}),
	}
}

// forget drops the handshake series of the rule called name.
func (v tlsVecs) forget(name string) {
	v.handshakes.DeletePartialMatch(prometheus.Labels{"rule": name})
	v.duration.DeletePartialMatch(prometheus.Labels{"rule": name})
}

// TLSHandshake counts one TLS handshake of the rule on side (SideClient or
// SideBackend) that ended with result ("ok", or a short word from a small
// fixed set saying why it failed, such as "timeout" or "verify") after d.
func (r *Rule) TLSHandshake(side, result string, d time.Duration) {
	if r == nil || r.tls.handshakes == nil {
		return
	}
	r.tls.handshakes.WithLabelValues(r.name, side, result).Inc()
	r.tls.duration.WithLabelValues(r.name, side).Observe(d.Seconds())
}

// Routed counts a connection that route took: a route name from the
// config, or "default" for the rule's own backends.
func (r *Rule) Routed(route string) {
	if r == nil {
		return
	}
	if c, ok := r.routes.Load(route); ok {
		c.(*atomic.Uint64).Add(1)
		return
	}
	c, _ := r.routes.LoadOrStore(route, new(atomic.Uint64))
	c.(*atomic.Uint64).Add(1)
}

// SetCertificateSource sets the function called at every scrape to report
// the expiry of the certificates sluice serves. It must be safe for
// concurrent use and quick; nil reports none.
func (m *Metrics) SetCertificateSource(source func() []Certificate) {
	if m == nil {
		return
	}
	if source == nil {
		m.certs.Store(nil)
		return
	}
	m.certs.Store(&source)
}

// certCollector exports certificate expiry read through the source.
type certCollector struct{ m *Metrics }

// Describe sends the description of the series the collector exports.
func (c certCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descCertExpiry }

// Collect asks the certificate source for a snapshot; a certificate
// named twice for one rule is exported once.
func (c certCollector) Collect(ch chan<- prometheus.Metric) {
	src := c.m.certs.Load()
	if src == nil {
		return
	}
	seen := make(map[[2]string]bool)
	for _, cert := range (*src)() {
		k := [2]string{cert.Rule, cert.Name}
		if seen[k] {
			continue
		}
		seen[k] = true
		ch <- prometheus.MustNewConstMetric(descCertExpiry, prometheus.GaugeValue,
			float64(cert.NotAfter.Unix()), cert.Rule, cert.Name)
	}
}

// RouteCounts returns how many connections each route took so far, by
// route name; nil for a nil *Rule or a rule no route has taken a
// connection of.
func (r *Rule) RouteCounts() map[string]uint64 {
	if r == nil {
		return nil
	}
	var out map[string]uint64
	r.routes.Range(func(route, n any) bool {
		if out == nil {
			out = make(map[string]uint64)
		}
		out[route.(string)] = n.(*atomic.Uint64).Load()
		return true
	})
	return out
}
