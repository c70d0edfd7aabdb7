package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// sample is a package whose tests pass, skip (with a reason of two lines,
// in a subtest, and with a log entry before the reason) and fail.
const sample = `package sample

import "testing"

func TestPasses(t *testing.T) { t.Log("not shown") }

func TestNeedsTool(t *testing.T) {
	t.Log("looked in /usr/bin")
	t.Skip("frobnicator not found (apt-get install frobnicator)")
}

func TestLongReason(t *testing.T) { t.Skip("first line\nsecond line") }

func TestTable(t *testing.T) {
	t.Run("root", func(t *testing.T) { t.Skip("needs root") })
	t.Run("user", func(t *testing.T) {})
}

func TestFails(t *testing.T) { t.Error("boom") }
`

// TestReport runs go test -json on a real package and checks what the
// report makes of it: the package's result, the failed test's output and
// not the passing one's, one line per skipped test with its reason, and
// the failure.
func TestReport(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatal("the go tool is needed to run go test -json:", err)
	}
	dir := t.TempDir()
	for name, text := range map[string]string{"go.mod": "module sample\n\ngo 1.22\n", "sample_test.go": sample} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(goTool, "test", "-json", "-count=1", "./...")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	stream, _ := cmd.Output() // exits 1: TestFails fails
	var out bytes.Buffer
	failed, err := report(bytes.NewReader(stream), &out)
	if err != nil || !failed {
		t.Errorf("report = %v, %v; want failed, no error", failed, err)
	}
	got := out.String()
	for _, want := range []string{
		"--- FAIL: TestFails",
		"sample_test.go:19: boom",
		"FAIL\tsample\t",
		"skipped tests (3), and why:\n",
		"SKIP sample TestNeedsTool: sample_test.go:9: frobnicator not found (apt-get install frobnicator)\n",
		"SKIP sample TestLongReason: sample_test.go:12: first line second line\n",
		"SKIP sample TestTable/root: sample_test.go:15: needs root\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
	for _, unwanted := range []string{"not shown", "looked in", "=== RUN", "TestPasses", "\nPASS\n"} {
		if strings.Contains(got, unwanted) {
			t.Errorf("report shows %q, which a plain go test hides:\n%s", unwanted, got)
		}
	}
}
