package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// This file reads what the bench needs to know about forwarder processes
// from Linux's /proc: memory, descriptors, children and listening sockets.

// usage is the resources a set of processes holds.
type usage struct {
	rssKiB int64 // resident set size, summed
	fds    int64 // open file descriptors, summed
}

// measureUsage sums VmRSS and open descriptors over pids.
func measureUsage(pids []int) (usage, error) {
	var u usage
	for _, pid := range pids {
		rss, err := rssKiB(pid)
		if err != nil {
			return usage{}, err
		}
		fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		if err != nil {
			return usage{}, fmt.Errorf("count descriptors of pid %d: %w", pid, err)
		}
		u.rssKiB += rss
		u.fds += int64(len(fds))
	}
	return u, nil
}

// clockTick is the unit of the CPU times in /proc/PID/stat (USER_HZ, 100
// on every Linux architecture Go supports).
const clockTick = 10 * time.Millisecond

// cpuTime returns the CPU time, user and system, that pids have used,
// with that of their children that have exited (socat forks one per
// client).
func cpuTime(pids []int) (time.Duration, error) {
	var total time.Duration
	for _, pid := range pids {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return 0, fmt.Errorf("read CPU time: %w", err)
		}
		end := bytes.LastIndexByte(data, ')')
		if end < 0 {
			return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
		}
		// After the name: state, ppid, ..., utime (12th), stime, cutime, cstime.
		fields := strings.Fields(string(data[end+1:]))
		if len(fields) < 15 {
			return 0, fmt.Errorf("/proc/%d/stat: %d fields after the name", pid, len(fields))
		}
		for _, f := range fields[11:15] {
			ticks, err := strconv.ParseInt(f, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/%d/stat: bad CPU time %q", pid, f)
			}
			total += time.Duration(ticks) * clockTick
		}
	}
	return total, nil
}

// procCPU returns the CPU time the forwarder's process tree has used.
func procCPU(p *proc) (time.Duration, error) {
	pids, err := p.pids()
	if err != nil {
		return 0, err
	}
	return cpuTime(pids)
}

// rssKiB returns the VmRSS of pid in KiB.
func rssKiB(pid int) (int64, error) {
	path := fmt.Sprintf("/proc/%d/status", pid)
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read RSS: %w", err)
	}
	for line := range strings.Lines(string(data)) {
		rest, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		kib, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: bad VmRSS line %q", path, line)
		}
		return kib, nil
	}
	return 0, fmt.Errorf("%s: no VmRSS line", path)
}

// processTree returns pid followed by its descendants (nginx's workers, for
// instance), found by scanning /proc.
func processTree(pid int) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	children := make(map[int][]int)
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // the process has exited meanwhile
		}
		if ppid, ok := parentPID(data); ok {
			children[ppid] = append(children[ppid], child)
		}
	}
	tree := []int{pid}
	for i := 0; i < len(tree); i++ { // breadth first; grows as it goes
		tree = append(tree, children[tree[i]]...)
	}
	return tree, nil
}

// parentPID extracts the parent's pid from the contents of /proc/PID/stat,
// whose second field (the command name) may hold spaces and parentheses.
func parentPID(stat []byte) (int, bool) {
	end := bytes.LastIndexByte(stat, ')')
	if end < 0 {
		return 0, false
	}
	fields := strings.Fields(string(stat[end+1:]))
	if len(fields) < 2 {
		return 0, false
	}
	ppid, err := strconv.Atoi(fields[1])
	return ppid, err == nil
}

// tcpListening reports whether some socket in this network namespace
// listens on TCP port, over IPv4 or IPv6. Checking /proc instead of
// connecting keeps readiness probes out of the forwarder and its backend.
func tcpListening(port int) (bool, error) {
	suffix := fmt.Sprintf(":%04X", port)
	for _, path := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(path)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("read listening sockets: %w", err)
		}
		found, err := scanListening(f, suffix)
		f.Close()
		if err != nil || found {
			return found, err
		}
	}
	return false, nil
}

// scanListening looks for a socket in state LISTEN (0A) whose local address
// ends in suffix, in the format of /proc/net/tcp.
func scanListening(f *os.File, suffix string) (bool, error) {
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 3 && strings.HasSuffix(fields[1], suffix) && fields[3] == "0A" {
			return true, nil
		}
	}
	if err := sc.Err(); err != nil {
		return false, fmt.Errorf("read %s: %w", f.Name(), err)
	}
	return false, nil
}
