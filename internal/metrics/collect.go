package metrics

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Descriptions of the series that are read from atomics at scrape time.
var (
	descConnectionsTotal = prometheus.NewDesc(nameConnectionsTotal,
		"Connections (and UDP sessions) admitted, by rule.", []string{"rule"}, nil)
	descConnectionsActive = prometheus.NewDesc(nameConnectionsActive,
		"Connections (and UDP sessions) open now, by rule.", []string{"rule"}, nil)
	descBytesTotal = prometheus.NewDesc(nameBytesTotal,
		"Bytes relayed, by rule and direction (up: client to backend, down: backend to client).",
		[]string{"rule", "direction"}, nil)
	descRejectedTotal = prometheus.NewDesc(nameRejectedTotal,
		"Clients turned away before a backend was dialled, by rule and reason.", []string{"rule", "reason"}, nil)
	descUDPSessionsActive = prometheus.NewDesc(nameUDPSessionsActive,
		"UDP sessions open now, by rule.", []string{"rule"}, nil)
	descBackendUp = prometheus.NewDesc(nameBackendUp,
		"Whether a backend takes new connections (1) or is down (0).", []string{"rule", "route", "backend"}, nil)
	descBackendConnectErrors = prometheus.NewDesc(nameBackendConnectErrs,
		"Failed connects to a backend.", []string{"rule", "route", "backend"}, nil)
	descBackendBytes = prometheus.NewDesc(nameBackendBytes,
		"Bytes relayed to and from a backend, live connections included, by direction (up: client to backend, down: backend to client).",
		[]string{"rule", "route", "backend", "direction"}, nil)
	descBackendConnections = prometheus.NewDesc(nameBackendConnections,
		"Connections (and UDP sessions) that reached a backend.", []string{"rule", "route", "backend"}, nil)
	descBackendActive = prometheus.NewDesc(nameBackendActive,
		"Connections (and UDP sessions) open to a backend now.", []string{"rule", "route", "backend"}, nil)
	descBackendState = prometheus.NewDesc(nameBackendState,
		"A backend's admin state: 1 for the state it is in (ready, drain or maint), 0 for the others.",
		[]string{"rule", "route", "backend", "state"}, nil)
)

// ruleCollector exports the per-rule atomics of every live Rule handle.
type ruleCollector struct{ m *Metrics }

// Describe sends the descriptions of every series the collector exports.
func (c ruleCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descConnectionsTotal
	ch <- descConnectionsActive
	ch <- descBytesTotal
	ch <- descRejectedTotal
	ch <- descUDPSessionsActive
	ch <- descRouteConnections
}

// Collect reads every rule's counters.
func (c ruleCollector) Collect(ch chan<- prometheus.Metric) {
	for _, r := range c.m.snapshotRules() {
		ch <- prometheus.MustNewConstMetric(descConnectionsTotal, prometheus.CounterValue, float64(r.total.Load()), r.name)
		ch <- prometheus.MustNewConstMetric(descConnectionsActive, prometheus.GaugeValue, float64(r.active.Load()), r.name)
		ch <- prometheus.MustNewConstMetric(descBytesTotal, prometheus.CounterValue, float64(r.up.Load()), r.name, directionUp)
		ch <- prometheus.MustNewConstMetric(descBytesTotal, prometheus.CounterValue, float64(r.down.Load()), r.name, directionD)
		if n := r.sessions.Load(); n != 0 || r.udp.Load() {
			ch <- prometheus.MustNewConstMetric(descUDPSessionsActive, prometheus.GaugeValue, float64(n), r.name)
		}
		r.rejected.Range(func(reason, n any) bool {
			ch <- prometheus.MustNewConstMetric(descRejectedTotal, prometheus.CounterValue,
				float64(n.(*atomic.Uint64).Load()), r.name, reason.(string))
			return true
		})
		r.routes.Range(func(route, n any) bool {
			ch <- prometheus.MustNewConstMetric(descRouteConnections, prometheus.CounterValue,
				float64(n.(*atomic.Uint64).Load()), r.name, route.(string))
			return true
		})
	}
}

// backendCollector exports backend health read through the backend source.
type backendCollector struct{ m *Metrics }

// Describe sends the descriptions of every series the collector exports.
func (c backendCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descBackendUp
	ch <- descBackendConnectErrors
	ch <- descBackendState
	ch <- descBackendBytes
	ch <- descBackendConnections
	ch <- descBackendActive
}

// Collect asks the backend source for a snapshot. A backend reported twice
// for the same rule is exported once, so a source that briefly lists an old
// and a new pool during a reload cannot break the scrape.
func (c backendCollector) Collect(ch chan<- prometheus.Metric) {
	src := c.m.backends.Load()
	if src == nil {
		return
	}
	type key struct{ rule, route, backend string }
	seen := make(map[key]bool)
	for _, b := range (*src)() {
		k := key{b.Rule, b.Route, b.Backend}
		if seen[k] {
			continue
		}
		seen[k] = true
		up := 0.0
		if b.Up {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(descBackendUp, prometheus.GaugeValue, up, b.Rule, b.Route, b.Backend)
		ch <- prometheus.MustNewConstMetric(descBackendConnectErrors, prometheus.CounterValue,
			float64(b.ConnectErrors), b.Rule, b.Route, b.Backend)
		collectState(ch, b)
		collectTraffic(ch, b)
	}
}

// collectTraffic exports b's connection and byte counts.
func collectTraffic(ch chan<- prometheus.Metric, b BackendState) {
	ch <- prometheus.MustNewConstMetric(descBackendConnections, prometheus.CounterValue,
		float64(b.Connections), b.Rule, b.Route, b.Backend)
	ch <- prometheus.MustNewConstMetric(descBackendActive, prometheus.GaugeValue,
		float64(b.Active), b.Rule, b.Route, b.Backend)
	ch <- prometheus.MustNewConstMetric(descBackendBytes, prometheus.CounterValue,
		float64(b.BytesUp), b.Rule, b.Route, b.Backend, directionUp)
	ch <- prometheus.MustNewConstMetric(descBackendBytes, prometheus.CounterValue,
		float64(b.BytesDown), b.Rule, b.Route, b.Backend, directionD)
}

// collectState exports b's admin state as a state set: one series per
// state, 1 for b's and 0 for the others. An empty State counts as ready.
func collectState(ch chan<- prometheus.Metric, b BackendState) {
	state := b.State
	if state == "" {
		state = AdminStates[0]
	}
	for _, s := range AdminStates {
		v := 0.0
		if s == state {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(descBackendState, prometheus.GaugeValue, v, b.Rule, b.Route, b.Backend, s)
	}
}
