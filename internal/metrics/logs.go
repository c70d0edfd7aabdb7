package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// nameLogLinesDropped is the counter of log lines dropped because their log
// could not keep up (docs/OPERATIONS.md, Metrics).
const nameLogLinesDropped = "sluice_log_lines_dropped_total"

var descLogLinesDropped = prometheus.NewDesc(nameLogLinesDropped,
	"Access lines dropped because the access log could not keep up (a slow, full or blocked destination).", nil, nil)

// SetLogDropSource sets the function called at every scrape to report
// sluice_log_lines_dropped_total: the lines dropped since the process
// started. It must be safe for concurrent use and quick; nil reports 0.
func (m *Metrics) SetLogDropSource(source func() uint64) {
	if m == nil {
		return
	}
	if source == nil {
		m.logDrops.Store(nil)
		return
	}
	m.logDrops.Store(&source)
}

// logCollector exports the dropped log lines, 0 until a source is set.
type logCollector struct{ m *Metrics }

// Describe sends the description of the one series the collector exports.
func (c logCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descLogLinesDropped }

// Collect reads the source.
func (c logCollector) Collect(ch chan<- prometheus.Metric) {
	var n uint64
	if src := c.m.logDrops.Load(); src != nil {
		n = (*src)()
	}
	ch <- prometheus.MustNewConstMetric(descLogLinesDropped, prometheus.CounterValue, float64(n))
}
