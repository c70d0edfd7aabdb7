package metrics

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The series of the process itself: what runs, and its config reloads.
const (
	nameBuildInfo      = "sluice_build_info"
	nameReloadsTotal   = "sluice_config_reloads_total"
	nameLastReloadTime = "sluice_config_last_reload_success_timestamp_seconds"
)

var (
	descBuildInfo = prometheus.NewDesc(nameBuildInfo,
		"Always 1, labelled with the version of sluice and of Go it was built with.", []string{"version", "goversion"}, nil)
	descReloadsTotal = prometheus.NewDesc(nameReloadsTotal,
		"Config reloads (SIGHUP or the admin API), by result: ok, or error (the config stayed as it was).",
		[]string{"result"}, nil)
	descLastReloadTime = prometheus.NewDesc(nameLastReloadTime,
		"When the running config was loaded: at start, then at each successful reload, as a Unix time.", nil, nil)
)

// process holds the process-wide series; its zero value exports only the
// reload counters.
type process struct {
	build      atomic.Pointer[[2]string] // version, goversion; nil: not set
	reloadsOK  atomic.Uint64
	reloadsBad atomic.Uint64
	loaded     atomic.Int64 // Unix nanoseconds of the last config loaded; 0: none
}

// SetBuildInfo sets the labels of sluice_build_info: sluice's version and
// the Go version it was built with.
func (m *Metrics) SetBuildInfo(version, goversion string) {
	if m == nil {
		return
	}
	m.process.build.Store(&[2]string{version, goversion})
}

// ConfigLoaded records that the config was loaded at t without counting a
// reload: call it at start, as Prometheus does with its own.
func (m *Metrics) ConfigLoaded(t time.Time) {
	if m == nil {
		return
	}
	m.process.loaded.Store(t.UnixNano())
}

// Reloaded counts a config reload that ended at t: a success (err nil)
// also becomes the last load time; a failure left the config as it was.
func (m *Metrics) Reloaded(err error, t time.Time) {
	if m == nil {
		return
	}
	if err != nil {
		m.process.reloadsBad.Add(1)
		return
	}
	m.process.reloadsOK.Add(1)
	m.process.loaded.Store(t.UnixNano())
}

// processCollector exports the process-wide series.
type processCollector struct{ p *process }

// Describe sends the descriptions of every series the collector exports.
func (c processCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descBuildInfo
	ch <- descReloadsTotal
	ch <- descLastReloadTime
}

// Collect reads the process-wide values.
func (c processCollector) Collect(ch chan<- prometheus.Metric) {
	if b := c.p.build.Load(); b != nil {
		ch <- prometheus.MustNewConstMetric(descBuildInfo, prometheus.GaugeValue, 1, b[0], b[1])
	}
	ch <- prometheus.MustNewConstMetric(descReloadsTotal, prometheus.CounterValue, float64(c.p.reloadsOK.Load()), "ok")
	ch <- prometheus.MustNewConstMetric(descReloadsTotal, prometheus.CounterValue, float64(c.p.reloadsBad.Load()), "error")
	if n := c.p.loaded.Load(); n != 0 {
		ch <- prometheus.MustNewConstMetric(descLastReloadTime, prometheus.GaugeValue, float64(n)/1e9)
	}
}
