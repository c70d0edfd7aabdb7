package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// waitLimit bounds every wait for sluice to do something it should do soon:
// log a line, exit, close a connection. It is generous because the machine
// is small and shared and sluice may run under the race detector; the tests
// never assert that anything is fast, only that it happens.
const waitLimit = 20 * time.Second

// record is one JSON log line of sluice, decoded with numbers kept exact.
type record map[string]any

// str returns the string value of key, or "" when it is absent.
func (r record) str(key string) string {
	s, _ := r[key].(string)
	return s
}

// num returns the integer value of key, or -1 when it is absent or not an
// integer.
func (r record) num(key string) int64 {
	n, ok := r[key].(json.Number)
	if !ok {
		return -1
	}
	v, err := n.Int64()
	if err != nil {
		return -1
	}
	return v
}

// String formats the record as JSON for failure messages.
func (r record) String() string {
	b, _ := json.Marshal(map[string]any(r))
	return string(b)
}

// proc is one running sluice process. Its stderr is read line by line and
// kept, decoded when it is JSON; its stdout is kept as it is.
type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdout bytes.Buffer  // written by os/exec; read only after exited is closed
	exited chan struct{} // closed once the process has exited and stderr is drained
	err    error         // what cmd.Wait returned; read only after exited is closed

	// errorsAllowed says why this test makes sluice log ERROR lines; empty:
	// none may appear. Set it with allowErrors.
	errorsAllowed string

	mu      sync.Mutex // guards the following fields
	records []record
	lines   []string      // every stderr line, JSON or not
	grew    chan struct{} // closed and replaced whenever a line arrives
}

// startProc starts name with args, with a cleanup that kills it if it is
// still running when the test ends and logs its stderr when the test failed.
func startProc(t *testing.T, configure func(*exec.Cmd), name string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, exited: make(chan struct{}), grew: make(chan struct{})}
	p.cmd = exec.Command(name, args...)
	p.cmd.Stdout = &p.stdout
	p.cmd.Env = childEnv()
	if configure != nil {
		configure(p.cmd)
	}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatalf("stderr pipe for %s: %v", name, err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s %q: %v", name, args, err)
	}
	go p.collect(stderr)
	t.Cleanup(p.stop)
	return p
}

// collect reads stderr until the process closes it, then reaps the process.
func (p *proc) collect(stderr io.Reader) {
	sc := bufio.NewScanner(stderr)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		p.appendLine(sc.Text())
	}
	_, _ = io.Copy(io.Discard, stderr) // a line over 1 MiB: keep draining
	p.err = p.cmd.Wait()
	close(p.exited)
}

// appendLine keeps one stderr line, decoded when it is JSON, and wakes the
// waiters.
func (p *proc) appendLine(line string) {
	var rec record
	dec := json.NewDecoder(strings.NewReader(line))
	dec.UseNumber()
	if dec.Decode(&rec) != nil {
		rec = nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lines = append(p.lines, line)
	if rec != nil {
		p.records = append(p.records, rec)
	}
	close(p.grew)
	p.grew = make(chan struct{})
}

// stop kills the process if it still runs and reports its stderr when the
// test failed. It is every test's last word on a sluice process: it fails
// the test when sluice logged an ERROR line (level=ERROR in text,
// "level":"ERROR" in JSON), since ERROR means something failed for good and
// a clean run logs none, starting and stopping included. A test that
// provokes an ERROR on purpose opts out with allowErrors, saying why.
func (p *proc) stop() {
	select {
	case <-p.exited:
	default:
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	if strings.Contains(p.stderr(), raceWarning) {
		p.t.Errorf("the race detector found a data race in sluice")
	}
	if lines := p.errorLines(); len(lines) > 0 && p.errorsAllowed == "" {
		p.t.Errorf("sluice logged %d ERROR line(s), and a clean run logs none (a test that provokes them calls allowErrors):\n%s",
			len(lines), strings.Join(lines[:min(len(lines), 10)], "\n"))
	}
	if p.t.Failed() {
		p.t.Logf("sluice %q stderr:\n%s", p.cmd.Args[1:], p.stderr())
	}
}

// allowErrors lets sluice log ERROR lines in this test without failing it;
// why says what the test does that makes sluice log them (a reload it
// rejects, a listener it breaks), for the reader.
func (p *proc) allowErrors(why string) {
	if why == "" {
		panic("allowErrors needs a reason")
	}
	p.errorsAllowed = why
}

// errorLines returns the stderr lines logged at level ERROR.
func (p *proc) errorLines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, line := range p.lines {
		if strings.Contains(line, " level=ERROR ") || strings.Contains(line, `"level":"ERROR"`) {
			out = append(out, line)
		}
	}
	return out
}

// raceWarning starts every report of the race detector.
const raceWarning = "WARNING: DATA RACE"

// childEnv returns the environment for sluice: this process's, with the
// race detector's one-second pause at a normal exit turned off (it only
// matters when sluice is race-built; other binaries ignore GORACE), and with
// every goroutine in a crash dump unless the user chose otherwise.
func childEnv() []string {
	env := append(os.Environ(), "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	if os.Getenv("GOTRACEBACK") == "" {
		env = append(env, "GOTRACEBACK=all")
	}
	return env
}

// needRoot skips the test unless it runs as root (which it needs for why)
// and every tool is installed.
func needRoot(t *testing.T, why string, tools ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root " + why)
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
}

// asNobody makes a command run as the unprivileged uid and gid 65534; the
// test must run as root to start it so.
func asNobody(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
}

// stderr returns everything the process wrote to stderr so far.
func (p *proc) stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// pid returns the process id.
func (p *proc) pid() int { return p.cmd.Process.Pid }

// signal sends sig to the process.
func (p *proc) signal(sig os.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %v to sluice: %v", sig, err)
	}
}

// running reports whether the process has not exited yet.
func (p *proc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// waitExit waits for the process to exit and returns its exit code, or -1
// with the wait error when a signal killed it.
func (p *proc) waitExit(limit time.Duration) (int, error) {
	p.t.Helper()
	select {
	case <-p.exited:
	case <-time.After(limit):
		p.t.Fatalf("sluice still running after %v", limit)
	}
	if p.err == nil {
		return 0, nil
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) && ee.Exited() {
		return ee.ExitCode(), p.err
	}
	return -1, p.err
}

// find returns the records that match, in the order they were logged.
func (p *proc) find(match func(record) bool) []record {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []record
	for _, r := range p.records {
		if match(r) {
			out = append(out, r)
		}
	}
	return out
}

// waitN waits until n records match and returns the first n. It fails the
// test when the process exits or waitLimit passes first.
func (p *proc) waitN(n int, what string, match func(record) bool) []record {
	p.t.Helper()
	deadline := time.NewTimer(waitLimit)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		grew := p.grew
		p.mu.Unlock()
		if got := p.find(match); len(got) >= n {
			return got[:n]
		}
		select {
		case <-grew:
		case <-p.exited:
			if got := p.find(match); len(got) >= n {
				return got[:n]
			}
			p.t.Fatalf("sluice exited (%v) before logging %d× %s", p.err, n, what)
		case <-deadline.C:
			p.t.Fatalf("sluice logged %d× %s within %v, want %d", len(p.find(match)), what, waitLimit, n)
		}
	}
}

// wait waits for the first record that matches; see waitN.
func (p *proc) wait(what string, match func(record) bool) record {
	p.t.Helper()
	return p.waitN(1, what, match)[0]
}

// isMsg matches records whose msg is msg.
func isMsg(msg string) func(record) bool {
	return func(r record) bool { return r.str("msg") == msg }
}

// accessOf matches the access line of the connection whose client side is
// local, the address of the test's end of the connection.
func accessOf(local net.Addr) func(record) bool {
	return func(r record) bool {
		return r.str("msg") == "access" && r.str("client") == local.String()
	}
}

// waitAccess waits for the access line of the connection c opened to sluice.
func (p *proc) waitAccess(c net.Conn) record {
	p.t.Helper()
	return p.wait("access for "+c.LocalAddr().String(), accessOf(c.LocalAddr()))
}

// launch starts sluice with the arguments args returns for a free loopback
// listen address and waits until it logs that it listens there. It tries a
// few addresses when another process takes the picked port first.
func launch(t *testing.T, bin string, args func(listen string) []string) (*proc, string) {
	t.Helper()
	for attempt := 0; attempt < 5; attempt++ {
		listen := freeAddr(t)
		p := startProc(t, nil, bin, args(listen)...)
		if p.waitListening(listen) {
			return p, listen
		}
		if !strings.Contains(p.stderr(), "address already in use") {
			t.Fatalf("sluice %q did not start: %v\n%s", p.cmd.Args[1:], p.err, p.stderr())
		}
	}
	t.Fatalf("sluice found no free port in 5 attempts")
	return nil, ""
}

// waitListening waits for the listening line for listen and reports whether
// it came; false means the process exited first.
func (p *proc) waitListening(listen string) bool {
	p.t.Helper()
	match := func(r record) bool { return r.str("msg") == "listening" && r.str("listen") == listen }
	deadline := time.NewTimer(waitLimit)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		grew := p.grew
		p.mu.Unlock()
		if len(p.find(match)) > 0 {
			return true
		}
		select {
		case <-grew:
		case <-p.exited:
			return len(p.find(match)) > 0
		case <-deadline.C:
			p.t.Fatalf("sluice did not log msg=listening listen=%s within %v", listen, waitLimit)
		}
	}
}

// launchQuick runs sluice in quick mode, JSON logs, with the given backends
// and extra flags.
func launchQuick(t *testing.T, bin string, flags []string, backends ...string) (*proc, string) {
	t.Helper()
	return launch(t, bin, func(listen string) []string {
		args := []string{"-l", listen, "--log-format", "json", "--log-level", "debug"}
		for _, b := range backends {
			args = append(args, "-r", b)
		}
		return append(args, flags...)
	})
}

// launchConfig writes the config that toml returns for a listen address to a
// file and runs sluice -c on it. The config should set log_format = "json".
func launchConfig(t *testing.T, toml func(listen string) string) (*proc, string) {
	t.Helper()
	return launch(t, sluiceBin, func(listen string) []string {
		return []string{"-c", writeConfig(t, toml(listen))}
	})
}

// writeConfig writes text to a new file in the test's temporary directory
// and returns its path.
func writeConfig(t *testing.T, text string) string {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "sluice-*.toml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

// result is how a finished command ended: its exit code and its output.
type result struct {
	code           int
	stdout, stderr string
}

// String formats the result for failure messages.
func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// runSluice runs sluice with args to completion (bounded by waitLimit) and
// returns how it ended. configure, if not nil, adjusts the command first.
func runSluice(t *testing.T, configure func(*exec.Cmd), args ...string) result {
	t.Helper()
	cmd := exec.Command(sluiceBin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = childEnv()
	cmd.WaitDelay = time.Second
	if configure != nil {
		configure(cmd)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sluice %q: %v", args, err)
	}
	timer := time.AfterFunc(waitLimit, func() { _ = cmd.Process.Signal(syscall.SIGKILL) })
	err := cmd.Wait()
	if !timer.Stop() {
		t.Fatalf("sluice %q still running after %v", args, waitLimit)
	}
	res := result{stdout: stdout.String(), stderr: stderr.String()}
	if strings.Contains(res.stderr, raceWarning) {
		t.Errorf("the race detector found a data race in sluice %q:\n%s", args, res.stderr)
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.Exited():
		res.code = ee.ExitCode()
	default:
		t.Fatalf("sluice %q: %v\n%s", args, err, res)
	}
	return res
}
