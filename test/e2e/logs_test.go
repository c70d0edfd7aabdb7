package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// fileRecords returns the JSON log lines of the file at path (none when
// it does not exist), failing the test on a line that is not JSON: a line
// cut in two by a reopen would be one.
func fileRecords(t *testing.T, path string) []record {
	t.Helper()
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []record
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.UseNumber()
		var rec record
		if err := dec.Decode(&rec); err != nil {
			t.Fatalf("%s: a line that is not JSON: %q", path, sc.Text())
		}
		out = append(out, rec)
	}
	return out
}

// countIn returns how many records of the files at paths match.
func countIn(t *testing.T, match func(record) bool, paths ...string) int {
	t.Helper()
	n := 0
	for _, p := range paths {
		for _, r := range fileRecords(t, p) {
			if match(r) {
				n++
			}
		}
	}
	return n
}

// waitInFile waits until a record of the file at path matches.
func waitInFile(t *testing.T, path, what string, match func(record) bool) {
	t.Helper()
	for deadline := time.Now().Add(waitLimit); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if countIn(t, match, path) > 0 {
			return
		}
	}
	t.Fatalf("%s never logged %s", path, what)
}

// isAccessLine matches access lines.
func isAccessLine(r record) bool { return r.str("msg") == "access" }

// echoConnections runs n connections through addr, from parallel clients,
// each one round trip; after half of them it calls mid once, while the
// others go on. It returns the first failure.
func echoConnections(addr string, n, parallel int, mid func()) error {
	var next, done atomic.Int64
	var midOnce sync.Once
	errs := make(chan error, parallel)
	var wg sync.WaitGroup
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				if err := serveOne(addr, "hello\n"); err != nil {
					errs <- err
					return
				}
				if done.Add(1) == int64(n/2) && mid != nil {
					midOnce.Do(mid)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// TestAccessLogReopenLosesNoLine rotates the access log as logrotate does
// (rename, then SIGUSR1) while 2,000 connections go through: every
// connection has its line in the old file or the new one, and sluice keeps
// serving (before SIGUSR1 was caught, its default action killed sluice).
func TestAccessLogReopenLosesNoLine(t *testing.T) {
	const n = 2000
	be := startBackend(t, echo)
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	p, addrs, _ := launchOps(t, 1, func(addrs []string) string {
		return fmt.Sprintf("log_format = \"json\"\naccess_log = %q\n[[rule]]\nname = \"web\"\nlisten = %q\nbackends = [%q]\n", path, addrs[0], be.addr)
	}, nil)
	rotated := path + ".1"
	err := echoConnections(addrs[0], n, 16, func() {
		if err := os.Rename(path, rotated); err != nil {
			t.Error(err)
		}
		p.signal(syscall.SIGUSR1)
	})
	if err != nil {
		t.Fatal(err)
	}
	p.wait("log files reopened", isMsg("log files reopened"))
	p.signal(syscall.SIGTERM)
	if code, err := p.waitExit(waitLimit); code != 0 {
		t.Fatalf("sluice exit code %d (%v), want 0", code, err)
	}
	old, now := countIn(t, isAccessLine, rotated), countIn(t, isAccessLine, path)
	if old+now != n {
		t.Errorf("access lines: %d in the rotated file + %d in the new one = %d, want %d", old, now, old+now, n)
	}
	if old == 0 || now == 0 {
		t.Errorf("access lines: %d in the rotated file, %d in the new one: the reopen did not split them", old, now)
	}
	if got := p.count(isAccessLine); got != 0 {
		t.Errorf("%d access lines on stderr with access_log set", got)
	}
}

// TestBlockedAccessLogNeverStallsRelay points the access log at a FIFO
// whose reader never reads: once the pipe and the queue are full, access
// lines are dropped and counted, connections are relayed as before, and a
// graceful stop still ends.
func TestBlockedAccessLogNeverStallsRelay(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "access.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	reader, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close() // open, never read
	be := startBackend(t, echo)
	p, addrs, _ := launchOps(t, 3, func(addrs []string) string {
		return fmt.Sprintf(`log_format = "json"
access_log = %q
admin = %q

[[rule]]
name = "web"
listen = %q
backends = [%q]

[[rule]]
name = "locked"
listen = %q
backends = [%q]
allow = ["192.0.2.1"]
`, fifo, addrs[0], addrs[1], be.addr, addrs[2], be.addr)
	}, nil)
	api := newAdmin(t, addrs[0], "")
	dropped := func() float64 {
		return mustMetric(t, scrape(t, api), "sluice_log_lines_dropped_total", map[string]string{})
	}
	// Refused clients are the cheapest access lines: 6,000 of them fill
	// the pipe (64 KiB, some 300 lines) and the queue (4096 lines).
	forEach(6000, func(int) {
		if c, err := net.DialTimeout("tcp", addrs[2], waitLimit); err == nil {
			c.Close()
		}
	})
	if err := echoConnections(addrs[1], 200, 8, nil); err != nil {
		t.Fatalf("relaying with the access log blocked: %v", err)
	}
	waitMetricAbove(t, api, 1)
	before := dropped()
	if err := echoConnections(addrs[1], 100, 8, nil); err != nil {
		t.Fatal(err)
	}
	waitMetricAbove(t, api, before+99)
	p.wait("the WARN about dropped lines", isMsg("access log: lines dropped: it cannot keep up"))
	// Nor does it hold up a stop: the queued lines get 5 seconds.
	p.signal(syscall.SIGTERM)
	if code, err := p.waitExit(waitLimit); code != 0 {
		t.Fatalf("sluice exit code %d (%v) after SIGTERM with the access log blocked, want 0", code, err)
	}
	p.wait("the WARN about lines left unwritten", isMsg("access log: lines left unwritten at exit"))
}

// waitMetricAbove waits until sluice_log_lines_dropped_total reaches min:
// the access lines of connections just closed come a moment after.
func waitMetricAbove(t *testing.T, api *adminClient, min float64) {
	t.Helper()
	var got float64
	for deadline := time.Now().Add(waitLimit); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if got = mustMetric(t, scrape(t, api), "sluice_log_lines_dropped_total", map[string]string{}); got >= min {
			return
		}
	}
	t.Fatalf("sluice_log_lines_dropped_total = %v, want at least %v", got, min)
}

// TestLogFileTakesOtherLines sends the main log to log_file and the access
// lines to access_log, both relative to the config file: nothing goes to
// stderr, SIGUSR1 reopens log_file, and a reload moves the access log.
func TestLogFileTakesOtherLines(t *testing.T) {
	be := startBackend(t, echo)
	dir := t.TempDir()
	mainLog, accessLog := filepath.Join(dir, "sluice.log"), filepath.Join(dir, "access.log")
	cfgPath := filepath.Join(dir, "sluice.toml")
	listen := freeAddr(t)
	cfg := func(access string) string {
		return fmt.Sprintf("log_format = \"json\"\nlog_file = \"sluice.log\"\naccess_log = %q\n[[rule]]\nname = \"web\"\nlisten = %q\nbackends = [%q]\n", access, listen, be.addr)
	}
	rewriteFile(t, cfgPath, cfg("access.log"))
	p := startProc(t, nil, sluiceBin, "-c", cfgPath)
	waitInFile(t, mainLog, "started", isMsg("started"))
	if err := serveOne(listen, "one\n"); err != nil {
		t.Fatal(err)
	}
	waitInFile(t, accessLog, "the access line", isAccessLine)

	if err := os.Rename(mainLog, mainLog+".1"); err != nil {
		t.Fatal(err)
	}
	p.signal(syscall.SIGUSR1)
	waitInFile(t, mainLog, "log files reopened", isMsg("log files reopened"))

	rewriteFile(t, cfgPath, cfg("access2.log"))
	p.signal(syscall.SIGHUP)
	waitInFile(t, mainLog, "reload: access_log changed", isMsg("reload: access_log changed"))
	if err := serveOne(listen, "two\n"); err != nil {
		t.Fatal(err)
	}
	p.signal(syscall.SIGTERM)
	if code, err := p.waitExit(waitLimit); code != 0 {
		t.Fatalf("sluice exit code %d (%v), want 0", code, err)
	}
	if got := countIn(t, isAccessLine, accessLog, filepath.Join(dir, "access2.log")); got != 2 {
		t.Errorf("%d access lines in access.log and access2.log, want 2", got)
	}
	if got := countIn(t, isAccessLine, filepath.Join(dir, "access2.log")); got != 1 {
		t.Errorf("%d access lines in access2.log after the reload, want 1", got)
	}
	if got := countIn(t, isAccessLine, mainLog, mainLog+".1"); got != 0 {
		t.Errorf("%d access lines in log_file", got)
	}
	if got := countIn(t, func(r record) bool { return r.str("level") == "ERROR" }, mainLog, mainLog+".1"); got != 0 {
		t.Errorf("%d ERROR lines in log_file", got)
	}
	if countIn(t, isMsg("stopped"), mainLog) != 1 || countIn(t, isMsg("listening"), mainLog+".1") == 0 {
		t.Errorf("log_file lacks its lines: stopped in the new file, listening in the rotated one")
	}
	if out := p.stderr(); out != "" {
		t.Errorf("sluice wrote to stderr with log_file and access_log set:\n%s", out)
	}
}

// TestReopenInQuickMode: SIGUSR1 with the logs on stderr reopens nothing
// and stops nothing; --access-log sends the access lines to a file.
func TestReopenInQuickMode(t *testing.T) {
	be := startBackend(t, echo)
	accessLog := filepath.Join(t.TempDir(), "access.log")
	listen := freeAddr(t)
	p := startProc(t, nil, sluiceBin, "-l", listen, "-r", be.addr, "--log-format", "json", "--access-log", accessLog)
	p.wait("started", isMsg("started"))
	p.signal(syscall.SIGUSR1)
	p.wait("log files reopened", isMsg("log files reopened"))
	if err := serveOne(listen, "hello\n"); err != nil {
		t.Fatalf("after SIGUSR1: %v", err)
	}
	waitInFile(t, accessLog, "the access line", isAccessLine)
}
