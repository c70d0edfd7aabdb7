package metrics

import "testing"

// TestLogDropSource holds that sluice_log_lines_dropped_total is exported
// from the start, at 0, and reads its source at every scrape.
func TestLogDropSource(t *testing.T) {
	m, gather := newServed(t)
	if got := mustValue(t, gather(), nameLogLinesDropped); got != 0 {
		t.Errorf("%s = %v before any source, want 0", nameLogLinesDropped, got)
	}
	var n uint64 = 7
	m.SetLogDropSource(func() uint64 { return n })
	if got := mustValue(t, gather(), nameLogLinesDropped); got != 7 {
		t.Errorf("%s = %v, want 7", nameLogLinesDropped, got)
	}
	n = 9
	if got := mustValue(t, gather(), nameLogLinesDropped); got != 9 {
		t.Errorf("%s = %v after more drops, want 9", nameLogLinesDropped, got)
	}
	var nilMetrics *Metrics
	nilMetrics.SetLogDropSource(func() uint64 { return 1 })
}
