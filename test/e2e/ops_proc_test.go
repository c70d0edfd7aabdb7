package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// This file holds the process and admin-API helpers of the operations tests
// (ops_*_test.go): sluice run from a config file that the test rewrites for
// reloads, a process group that survives a hitless upgrade, and a small
// client for the admin API.

// freeAddrs returns n distinct loopback addresses nothing listens on right
// now. All n ports are held at once while picking, so none repeats.
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	addrs := make([]string, n)
	var held []net.Listener
	defer func() {
		for _, ln := range held {
			_ = ln.Close()
		}
	}()
	for i := range addrs {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("pick a free port: %v", err)
		}
		held = append(held, ln)
		addrs[i] = ln.Addr().String()
	}
	return addrs
}

// rewriteFile replaces the file at path with text in one rename, so that a
// reload never reads half a file.
func rewriteFile(t *testing.T, path, text string) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		t.Fatalf("write config: %v", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatalf("replace config: %v", err)
	}
}

// launchOps picks n free loopback addresses, writes the config that cfg
// returns for them to a file, starts sluice -c on it with start (startPlain
// when nil) and waits for its started line. It tries other addresses when
// another process takes a picked port first. It returns the process, the
// addresses and the config file's path, which the test may rewrite.
func launchOps(t *testing.T, n int, cfg func(addrs []string) string, start func(path string) *proc) (*proc, []string, string) {
	t.Helper()
	if start == nil {
		start = func(path string) *proc { return startProc(t, nil, sluiceBin, "-c", path) }
	}
	path := filepath.Join(t.TempDir(), "sluice.toml")
	for attempt := 0; attempt < 5; attempt++ {
		addrs := freeAddrs(t, n)
		rewriteFile(t, path, cfg(addrs))
		p := start(path)
		if p.waitOrExit(isMsg("started")) {
			return p, addrs, path
		}
		if !strings.Contains(p.stderr(), "address already in use") {
			t.Fatalf("sluice -c %s did not start: %v\n%s", path, p.err, p.stderr())
		}
	}
	t.Fatalf("sluice found no free ports in 5 attempts")
	return nil, nil, ""
}

// waitOrExit waits for a record that matches and reports whether it came;
// false means that the process exited first.
func (p *proc) waitOrExit(match func(record) bool) bool {
	p.t.Helper()
	_, ok := p.scanFrom(0, match, true)
	return ok
}

// waitFrom waits for the first record at index from or later that matches
// and returns it with the index after it, so that a caller can go on
// waiting from there. Unlike waitN it looks at every record only once,
// which matters when sluice logs thousands of access lines meanwhile.
func (p *proc) waitFrom(from int, what string, match func(record) bool) (record, int) {
	p.t.Helper()
	i, ok := p.scanFrom(from, match, false)
	if !ok {
		p.t.Fatalf("sluice exited (%v) before logging %s", p.err, what)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.records[i], i + 1
}

// scanFrom returns the index of the first record at from or later that
// matches, waiting up to waitLimit for it. It returns false when the
// process exits first; when waitLimit passes it fails the test, or, with
// quiet set, only reports false.
func (p *proc) scanFrom(from int, match func(record) bool, quiet bool) (int, bool) {
	p.t.Helper()
	deadline := time.NewTimer(waitLimit)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		grew, recs := p.grew, p.records
		p.mu.Unlock()
		for ; from < len(recs); from++ {
			if match(recs[from]) {
				return from, true
			}
		}
		select {
		case <-grew:
		case <-p.exited:
			p.mu.Lock()
			recs = p.records
			p.mu.Unlock()
			for ; from < len(recs); from++ {
				if match(recs[from]) {
					return from, true
				}
			}
			return 0, false
		case <-deadline.C:
			if !quiet {
				p.t.Fatalf("sluice logged no matching line within %v", waitLimit)
			}
			return 0, false
		}
	}
}

// count returns how many records match so far.
func (p *proc) count(match func(record) bool) int { return len(p.find(match)) }

// group is a sluice process together with the processes it starts for a
// hitless upgrade. They share one stderr pipe, whose lines all land in the
// embedded proc; its exited channel closes only when every process of the
// group has closed the pipe. leaderDone closes when the first process exits,
// and leaderErr is then what waiting for it returned.
type group struct {
	*proc
	leaderDone chan struct{}
	leaderErr  error
}

// startGroup starts sluice with args in a process group of its own, so that
// the processes a hitless upgrade starts from it can be found and killed by
// their process group, whatever happens. Orphans of this test process are
// reparented to it (it becomes a child subreaper), so that it can also wait
// for the upgraded process once the first one has exited.
func startGroup(t *testing.T, args ...string) *group {
	t.Helper()
	if err := setChildSubreaper(); err != nil {
		t.Fatalf("become a child subreaper: %v", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	g := &group{
		proc:       &proc{t: t, exited: make(chan struct{}), grew: make(chan struct{})},
		leaderDone: make(chan struct{}),
	}
	cmd := exec.Command(sluiceBin, args...)
	// Stdout stays /dev/null: a pipe there would make Wait wait for every
	// process holding its write end, the upgraded one included.
	cmd.Stderr = w
	cmd.Env = childEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	g.cmd = cmd
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sluice %q: %v", args, err)
	}
	_ = w.Close() // the processes hold the write end now
	go g.readShared(r)
	go func() {
		g.leaderErr = cmd.Wait()
		g.err = g.leaderErr
		close(g.leaderDone)
	}()
	t.Cleanup(g.stop)     // runs second: waits for the pipe to close, reports
	t.Cleanup(g.killRest) // runs first: no process of the group survives
	return g
}

// setChildSubreaper makes this process the parent of orphaned descendants.
func setChildSubreaper() error {
	const prSetChildSubreaper = 36 // PR_SET_CHILD_SUBREAPER, <linux/prctl.h>
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
		return errno
	}
	return nil
}

// readShared reads the group's stderr until every process has closed it.
func (g *group) readShared(r *os.File) {
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		g.appendLine(sc.Text())
	}
	_, _ = io.Copy(io.Discard, r)
	<-g.leaderDone
	close(g.exited)
}

// members returns the pids of the live processes in the group's process
// group, the leader included while it has not been reaped.
func (g *group) members() []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid pgrp ...; comm may hold spaces and parens.
		rest := stat[bytes.LastIndexByte(stat, ')')+1:]
		fields := strings.Fields(string(rest))
		if len(fields) > 2 && fields[2] == strconv.Itoa(g.cmd.Process.Pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// killRest kills every process left in the group and reaps the ones that
// became this process's children.
func (g *group) killRest() {
	leader := g.cmd.Process.Pid
	var others []int
	for _, pid := range g.members() {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		if pid != leader {
			others = append(others, pid)
		}
	}
	<-g.leaderDone // killed above if it still ran
	// The leader may have started another process between the scan and
	// its death; it can start none now.
	for _, pid := range g.members() {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		others = append(others, pid)
	}
	for _, pid := range others {
		if p, err := os.FindProcess(pid); err == nil {
			_, _ = p.Wait() // fails harmlessly if another process reaps it
		}
	}
}

// waitLeader waits for the first process of the group to exit and returns
// its exit code, or -1 when a signal ended it.
func (g *group) waitLeader() int {
	g.t.Helper()
	select {
	case <-g.leaderDone:
	case <-time.After(waitLimit):
		g.t.Fatalf("the first sluice (pid %d) still runs after %v", g.cmd.Process.Pid, waitLimit)
	}
	if g.leaderErr == nil {
		return 0
	}
	if ee, ok := g.leaderErr.(*exec.ExitError); ok && ee.Exited() {
		return ee.ExitCode()
	}
	return -1
}

// leaderRunning reports whether the first process of the group still runs.
func (g *group) leaderRunning() bool {
	select {
	case <-g.leaderDone:
		return false
	default:
		return true
	}
}

// adminClient calls sluice's admin API over loopback HTTP.
type adminClient struct {
	t     *testing.T
	base  string // "http://127.0.0.1:PORT"
	token string // sent as a bearer token when not empty
	hc    *http.Client
}

// newAdmin returns a client for the admin API at addr.
func newAdmin(t *testing.T, addr, token string) *adminClient {
	hc := &http.Client{Timeout: waitLimit, Transport: &http.Transport{}}
	t.Cleanup(hc.CloseIdleConnections)
	return &adminClient{t: t, base: "http://" + addr, token: token, hc: hc}
}

// do sends one request and returns the status and body; a transport error
// fails the test.
func (a *adminClient) do(method, path string) (int, []byte) {
	a.t.Helper()
	req, err := http.NewRequest(method, a.base+path, nil)
	if err != nil {
		a.t.Fatal(err)
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp.StatusCode, body
}

// call sends one request, checks the status and decodes a JSON body into
// v (when v is not nil).
func (a *adminClient) call(method, path string, want int, v any) {
	a.t.Helper()
	code, body := a.do(method, path)
	if code != want {
		a.t.Fatalf("%s %s: status %d, want %d; body: %s", method, path, code, want, body)
	}
	if v != nil {
		if err := json.Unmarshal(body, v); err != nil {
			a.t.Fatalf("%s %s: decode %s: %v", method, path, body, err)
		}
	}
}

// apiRule is one rule as GET /api/v1/rules reports it (the fields the tests
// read).
type apiRule struct {
	Name     string `json:"name"`
	Listen   string `json:"listen"`
	Balance  string `json:"balance"`
	Backends []struct {
		Address string `json:"address"`
		Up      bool   `json:"up"`
	} `json:"backends"`
	Counters struct {
		ConnectionsTotal uint64 `json:"connections_total"`
		Active           int64  `json:"active"`
		BytesUp          int64  `json:"bytes_up"`
		BytesDown        int64  `json:"bytes_down"`
		Rejected         uint64 `json:"rejected"`
	} `json:"counters"`
}

// rules returns GET /api/v1/rules by name.
func (a *adminClient) rules() map[string]apiRule {
	a.t.Helper()
	var body struct {
		Rules []apiRule `json:"rules"`
	}
	a.call(http.MethodGet, "/api/v1/rules", http.StatusOK, &body)
	out := make(map[string]apiRule, len(body.Rules))
	for _, r := range body.Rules {
		out[r.Name] = r
	}
	return out
}

// apiConn is one live connection as GET /api/v1/connections reports it.
type apiConn struct {
	ID      uint64 `json:"id"`
	Rule    string `json:"rule"`
	Proto   string `json:"proto"`
	Client  string `json:"client"`
	Backend string `json:"backend"`
	Up      int64  `json:"bytes_up"`
	Down    int64  `json:"bytes_down"`
}

// connections returns GET /api/v1/connections.
func (a *adminClient) connections() []apiConn {
	a.t.Helper()
	var body struct {
		Total       int       `json:"total"`
		Connections []apiConn `json:"connections"`
	}
	a.call(http.MethodGet, "/api/v1/connections", http.StatusOK, &body)
	if body.Total != len(body.Connections) {
		a.t.Fatalf("GET /api/v1/connections: total %d but %d listed", body.Total, len(body.Connections))
	}
	return body.Connections
}

// reloadReport is the body of a successful POST /api/v1/reload.
type reloadReport struct {
	Added     []string `json:"added"`
	Removed   []string `json:"removed"`
	Changed   []string `json:"changed"`
	Unchanged []string `json:"unchanged"`
}

// String formats the report for failure messages.
func (r reloadReport) String() string {
	return fmt.Sprintf("added %q removed %q changed %q unchanged %q", r.Added, r.Removed, r.Changed, r.Unchanged)
}
