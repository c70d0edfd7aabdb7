package metrics

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestNamesAreDocumented holds the metric names to the table of
// docs/OPERATIONS.md (Metrics): each sluice_ family the registry gathers
// has a row there, and each row names a family it gathers.
func TestNamesAreDocumented(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := New(reg)
	if err != nil {
		t.Fatal(err)
	}
	r := m.Rule("web") // a series in every family: a rule that counted each kind, a backend
	r.ConnOpened()
	r.UDPSessionOpened()
	r.ConnectDuration(0)
	r.Rejected("acl")
	r.Routed("default")
	r.TLSHandshake(SideClient, "ok", 0)
	m.SetCertificateSource(func() []Certificate { return []Certificate{{Rule: "web", Name: "a.example"}} })
	m.SetBackendSource(func() []BackendState { return []BackendState{{Rule: "web", Backend: "10.0.0.5:80", Up: true}} })
	m.SetBuildInfo("dev", "go")
	m.ConfigLoaded(time.Now())
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var gathered []string
	for _, f := range fams {
		if name := f.GetName(); strings.HasPrefix(name, "sluice_") {
			gathered = append(gathered, name)
		}
	}
	slices.Sort(gathered)
	if documented := documentedMetrics(t); !slices.Equal(gathered, documented) {
		t.Errorf("metrics gathered: %v\ndocs/OPERATIONS.md's table: %v", gathered, documented)
	}
}

// documentedMetrics returns the metric of each row of docs/OPERATIONS.md's
// metrics table, sorted.
func documentedMetrics(t *testing.T) []string {
	doc, err := os.ReadFile("../../docs/OPERATIONS.md")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for line := range strings.Lines(string(doc)) {
		if rest, ok := strings.CutPrefix(line, "| `sluice_"); ok {
			name, _, _ := strings.Cut(rest, "`")
			names = append(names, "sluice_"+name)
		}
	}
	slices.Sort(names)
	return names
}
