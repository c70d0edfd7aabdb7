package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

const (
	// startTimeout bounds how long a forwarder may take to listen.
	startTimeout = 10 * time.Second
	// stopTimeout bounds how long a forwarder may take to exit after
	// SIGTERM before the bench kills its process group.
	stopTimeout = 10 * time.Second
)

// proc is one running forwarder process.
type proc struct {
	name   string
	cmd    *exec.Cmd
	dir    string        // its working directory, holding output.log (stdout and stderr) and maybe error.log
	exited chan struct{} // closed once the process has exited and waitErr is set
	// waitErr is what cmd.Wait returned; read it only after exited is closed.
	waitErr error
}

// startProc runs argv in dir with its output in dir/output.log and waits
// until listening(port) says something listens on port (tcpListening, or
// udpBound for UDP). The process gets its own process group so
// that stop can reach all of it (nginx's workers too).
func startProc(ctx context.Context, name, dir string, argv []string, port int, listening func(int) (bool, error)) (*proc, error) {
	logf := filepath.Join(dir, "output.log")
	out, err := os.Create(logf)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	defer out.Close() // the child has its own copy
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: start %s: %w", name, argv[0], err)
	}
	p := &proc{name: name, cmd: cmd, dir: dir, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	if err := p.waitListening(ctx, port, listening); err != nil {
		p.kill()
		return nil, err
	}
	return p, nil
}

// waitListening polls /proc until listening(port) holds, the process
// exits, or startTimeout passes.
func (p *proc) waitListening(ctx context.Context, port int, listening func(int) (bool, error)) error {
	deadline := time.NewTimer(startTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, err := listening(port)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited before listening on port %d: %v%s", p.name, port, p.waitErr, p.outputTail())
		case <-deadline.C:
			return fmt.Errorf("%s not listening on port %d after %v%s", p.name, port, startTimeout, p.outputTail())
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// alive returns an error if the process has exited.
func (p *proc) alive() error {
	select {
	case <-p.exited:
		return fmt.Errorf("%s exited unexpectedly: %v%s", p.name, p.waitErr, p.outputTail())
	default:
		return nil
	}
}

// pids returns the process and its descendants.
func (p *proc) pids() ([]int, error) {
	if err := p.alive(); err != nil {
		return nil, err
	}
	return processTree(p.cmd.Process.Pid)
}

// stop sends SIGTERM and waits for the process to exit; after stopTimeout
// it kills the whole process group. It returns an error when the process
// had to be killed or exited with a failure status other than SIGTERM's.
func (p *proc) stop() error {
	if err := p.alive(); err != nil {
		return err
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM) // an error means it has just exited
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	select {
	case <-p.exited:
	case <-timer.C:
		p.kill()
		return fmt.Errorf("%s still running %v after SIGTERM; killed%s", p.name, stopTimeout, p.outputTail())
	}
	var exit *exec.ExitError
	if errors.As(p.waitErr, &exit) {
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM {
			return nil
		}
	}
	if p.waitErr != nil {
		return fmt.Errorf("%s stopped with %v after SIGTERM%s", p.name, p.waitErr, p.outputTail())
	}
	return nil
}

// kill ends the process group at once and waits for the leader to exit.
func (p *proc) kill() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL) // may be gone already
	<-p.exited
}

// outputTail returns the last lines of the process's output and error log,
// formatted to follow an error message, or "" when it wrote nothing.
func (p *proc) outputTail() string {
	var b strings.Builder
	for _, name := range []string{"output.log", "error.log"} {
		data, err := os.ReadFile(filepath.Join(p.dir, name))
		text := strings.TrimSpace(string(data))
		if err != nil || text == "" {
			continue
		}
		lines := strings.Split(text, "\n")
		lines = lines[max(0, len(lines)-10):]
		fmt.Fprintf(&b, "\n\t%s %s (last lines):\n\t%s", p.name, name, strings.Join(lines, "\n\t"))
	}
	return b.String()
}

// freePort returns a loopback TCP port that was free a moment ago. Another
// process may take it before the forwarder binds it; the forwarder then
// fails to start and says so.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
