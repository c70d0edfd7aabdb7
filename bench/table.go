package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

// printTable writes the results as one aligned table.
func printTable(w io.Writer, res *results) error {
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintf(tw, "figure\t%s\n", strings.Join(res.columns, "\t"))
	for _, rw := range res.rows {
		cells := make([]string, len(res.columns))
		for i, col := range res.columns {
			cells[i] = res.format(rw, col)
		}
		fmt.Fprintf(tw, "%s\t%s\n", rw.label, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

// format renders one cell: the value and, per the row's comparison, its
// ratio to direct or to the lowest forwarder.
func (res *results) format(rw row, col string) string {
	c, ok := res.cells[rw.label][col]
	switch {
	case !ok:
		return "-"
	case c.failed:
		return "FAIL"
	}
	s := fmt.Sprintf(rw.format, c.value())
	var base float64
	switch rw.cmp {
	case vsDirect:
		if col == res.columns[0] {
			return s
		}
		d, ok := res.cells[rw.label][res.columns[0]]
		if !ok || d.failed {
			return s
		}
		base = d.value()
	case vsLowest:
		base = res.lowest(rw)
	default:
		return s
	}
	if base <= 0 || math.IsNaN(base) {
		return s
	}
	return fmt.Sprintf("%s (%.2fx)", s, c.value()/base)
}

// lowest returns the lowest successful value in row rw, or NaN when fewer
// than two columns have one (a ratio to itself says nothing).
func (res *results) lowest(rw row) float64 {
	low, n := math.Inf(1), 0
	for _, c := range res.cells[rw.label] {
		if !c.failed {
			low = min(low, c.value())
			n++
		}
	}
	if n < 2 {
		return math.NaN()
	}
	return low
}

// footer describes what was measured and how.
type footer struct {
	fwds    []forwarder
	skipped []string
	d       time.Duration
	idleN   int
	rounds  int
	// loadBefore is the machine's load average when the bench started:
	// other work on a shared machine shows in the figures.
	loadBefore string
}

// printFooter writes the versions, settings and notes that belong with the
// table.
func printFooter(w io.Writer, f footer, res *results) {
	fmt.Fprintln(w)
	for _, fw := range f.fwds[1:] {
		fmt.Fprintf(w, "%-8s %s\n", fw.name, fw.version)
	}
	fmt.Fprintf(w, "settings: %v per figure and round, %d round(s) (cells are medians), idle N=%d, %d CPUs, bench GOMAXPROCS %d, %s, Linux %s\n",
		f.d, f.rounds, f.idleN, runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version(), kernelRelease())
	fmt.Fprintf(w, "load average (1 min) before: %s, after: %s\n", f.loadBefore, loadAverage())
	fmt.Fprintln(w, "ratios: to direct (higher is better, except p99); idle rows: to the lowest forwarder (lower is better)")
	fmt.Fprintln(w, "backends and load generators run in the bench process; forwarders run one at a time, fresh for each figure")
	for _, fw := range f.fwds {
		for _, n := range fw.notes {
			fmt.Fprintln(w, n)
		}
	}
	for _, s := range f.skipped {
		fmt.Fprintln(w, s)
	}
	for _, n := range res.notes {
		fmt.Fprintln(w, "note:", n)
	}
	for _, err := range res.peerErrs {
		fmt.Fprintln(w, "peer FAILED (not sluice's fault, run goes on):", err)
	}
	for _, err := range res.errs {
		fmt.Fprintln(w, "FAILED:", err)
	}
}

// kernelRelease returns the running kernel's release, or "?".
func kernelRelease() string {
	data, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(data))
}

// loadAverage returns the one-minute load average, or "?".
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	load, _, _ := strings.Cut(string(data), " ")
	return load
}
