package metrics

import "github.com/prometheus/client_golang/prometheus"

// nameQueueLength is the gauge of the clients waiting for a full backend.
const nameQueueLength = "sluice_queue_length"

var descQueueLength = prometheus.NewDesc(nameQueueLength,
	"Clients waiting in a queue for a slot on a full backend (max_connections), by rule, routes included.",
	[]string{"rule"}, nil)

// QueueLength is one rule's number of waiting clients, as the queue
// source reports it.
type QueueLength struct {
	Rule    string
	Waiting int
}

// queueCollector exports sluice_queue_length read through the queue source.
type queueCollector struct{ m *Metrics }

// Describe sends the description of the series the collector exports.
func (c queueCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descQueueLength }

// Collect asks the queue source for the rules' queue lengths.
func (c queueCollector) Collect(ch chan<- prometheus.Metric) {
	src := c.m.queues.Load()
	if src == nil {
		return
	}
	for _, q := range (*src)() {
		ch <- prometheus.MustNewConstMetric(descQueueLength, prometheus.GaugeValue, float64(q.Waiting), q.Rule)
	}
}

// SetQueueSource sets the function called at every scrape to report
// sluice_queue_length: one entry per rule that has a queue. It must be
// safe for concurrent use and quick; nil reports none.
func (m *Metrics) SetQueueSource(source func() []QueueLength) {
	if m == nil {
		return
	}
	if source == nil {
		m.queues.Store(nil)
		return
	}
	m.queues.Store(&source)
}
