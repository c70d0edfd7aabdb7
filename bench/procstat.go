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
		path := fmt.Sprintf("/proc/%d/stat", pid)
		data, err := os.ReadFile(path)
		if err != nil {
			return 0, fmt.Errorf("read CPU time: %w", err)
		}
		// utime, stime, cutime, cstime
		t, err := statCPU(path, data, 4)
		if err != nil {
			return 0, err
		}
		total += t
	}
	return total, nil
}

// statCPU sums the first n of the CPU time fields (utime, stime, cutime,
// cstime) of data, the contents of path, a /proc/PID/stat or
// /proc/PID/task/TID/stat.
func statCPU(path string, data []byte, n int) (time.Duration, error) {
	end := bytes.LastIndexByte(data, ')')
	if end < 0 {
		return 0, fmt.Errorf("%s: no command name", path)
	}
	// After the name: state, ppid, ..., utime (12th), stime, cutime, cstime.
	fields := strings.Fields(string(data[end+1:]))
	if len(fields) < 15 {
		return 0, fmt.Errorf("%s: %d fields after the name", path, len(fields))
	}
	var total time.Duration
	for _, f := range fields[11 : 11+n] {
		ticks, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: bad CPU time %q", path, f)
		}
		total += time.Duration(ticks) * clockTick
	}
	return total, nil
}

// threadCPU returns the CPU time, user and system, of every thread of
// pids, by thread id. A thread that exits meanwhile is left out.
func threadCPU(pids []int) (map[int]time.Duration, error) {
	times := make(map[int]time.Duration)
	for _, pid := range pids {
		tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		if err != nil {
			return nil, fmt.Errorf("list threads: %w", err)
		}
		for _, task := range tasks {
			tid, err := strconv.Atoi(task.Name())
			if err != nil {
				continue
			}
			path := fmt.Sprintf("/proc/%d/task/%d/stat", pid, tid)
			data, err := os.ReadFile(path)
			if err != nil {
				continue // the thread has exited
			}
			if times[tid], err = statCPU(path, data, 2); err != nil {
				return nil, err
			}
		}
	}
	return times, nil
}

// busiestThread compares two threadCPU readings and returns the thread
// that used the most CPU time in between and its share of what all the
// threads used, from 0 to 1 (0 when none used any). A thread that started
// in between counts from zero.
func busiestThread(before, after map[int]time.Duration) (tid int, share float64) {
	var total, most time.Duration
	for id, t := range after {
		used := t - before[id]
		total += used
		if used > most || used == most && (tid == 0 || id < tid) {
			tid, most = id, used
		}
	}
	if total <= 0 {
		return tid, 0
	}
	return tid, float64(most) / float64(total)
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
