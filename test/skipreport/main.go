// Command skipreport reads the output of `go test -json` on its standard
// input and writes what a plain `go test` would show (each package's result
// line, the output of every failed test, build errors), followed by one line
// per skipped test with its reason, so that a test which skipped for want of
// a tool (Chromium, HAProxy, root, …) is seen instead of hiding behind "ok".
// It exits 1 when a test or a package failed.
//
// make test runs it as
//
//	go test -json ./... | go run ./test/skipreport
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
)

func main() {
	failed, err := report(os.Stdin, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "skipreport:", err)
		os.Exit(1)
	}
	if failed {
		os.Exit(1)
	}
}

// event is the part of a test2json event that the report needs.
type event struct {
	Action     string
	Package    string
	Test       string
	ImportPath string // of build-output events
	Output     string
}

// skip is one skipped test and why.
type skip struct {
	pkg, test, reason string
}

// reader turns events into the report. The output of a running test is
// kept until it ends: printed if it failed, its last log entry kept as the
// reason if it skipped, dropped if it passed.
type reader struct {
	w       io.Writer
	running map[[2]string][]string // a test's output lines, by package and test
	skips   []skip
	failed  bool
}

// report copies the test2json stream from r to w as described in the
// package comment and reports whether anything failed.
func report(r io.Reader, w io.Writer) (failed bool, err error) {
	rd := &reader{w: w, running: map[[2]string][]string{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for sc.Scan() {
		var ev event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			// Not an event (e.g. a line go test wrote itself): pass it on.
			fmt.Fprintln(w, sc.Text())
			continue
		}
		rd.handle(ev)
	}
	if err := sc.Err(); err != nil {
		return true, err
	}
	rd.summary()
	return rd.failed, nil
}

// handle takes one event.
func (rd *reader) handle(ev event) {
	key := [2]string{ev.Package, ev.Test}
	switch {
	case ev.Action == "build-output":
		fmt.Fprint(rd.w, ev.Output)
	case ev.Action == "build-fail":
		rd.failed = true
	case ev.Test == "":
		rd.handlePackage(ev)
	case ev.Action == "output":
		if !strings.HasPrefix(ev.Output, "=== ") { // RUN, PAUSE, CONT, NAME: -v's own
			rd.running[key] = append(rd.running[key], ev.Output)
		}
	case ev.Action == "fail":
		rd.failed = true
		fmt.Fprint(rd.w, strings.Join(rd.running[key], ""))
		delete(rd.running, key)
	case ev.Action == "skip":
		rd.skips = append(rd.skips, skip{ev.Package, ev.Test, reason(rd.running[key])})
		delete(rd.running, key)
	case ev.Action == "pass":
		delete(rd.running, key)
	}
}

// handlePackage takes an event of a whole package: its result lines are
// printed, and when it failed (a panic, a timeout), the output of its tests
// that never ended is printed too.
func (rd *reader) handlePackage(ev event) {
	switch ev.Action {
	case "output":
		if ev.Output != "PASS\n" {
			fmt.Fprint(rd.w, ev.Output)
		}
	case "fail":
		rd.failed = true
		for key, lines := range rd.running {
			if key[0] == ev.Package {
				fmt.Fprint(rd.w, strings.Join(lines, ""))
				delete(rd.running, key)
			}
		}
	}
}

// logEntry matches the first line of a test's log entry,
// "    file_test.go:43: message".
var logEntry = regexp.MustCompile(`^\s+\S+\.go:\d+: `)

// reason returns a skipped test's last log entry (the message t.Skip was
// given), on one line.
func reason(lines []string) string {
	start := -1
	for i, l := range lines {
		if logEntry.MatchString(l) {
			start = i
		}
	}
	if start < 0 {
		return "no reason given"
	}
	var parts []string
	for _, l := range lines[start:] {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "--- SKIP") {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, " ")
}

// summary writes one line per skipped test.
func (rd *reader) summary() {
	if len(rd.skips) == 0 {
		return
	}
	fmt.Fprintf(rd.w, "skipped tests (%d), and why:\n", len(rd.skips))
	for _, s := range rd.skips {
		fmt.Fprintf(rd.w, "SKIP %s %s: %s\n", s.pkg, s.test, s.reason)
	}
}
