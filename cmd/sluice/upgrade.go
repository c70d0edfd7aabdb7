package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"sluice/internal/handover"
)

// upgradeTimeout bounds how long the new process may take to start serving.
const upgradeTimeout = 30 * time.Second

// errPIDOne refuses an upgrade in a container: when the first process of a
// PID namespace exits, the kernel kills every other process in it, the new
// sluice included, so handing over would take the service down.
var errPIDOne = errors.New("sluice is process 1 (a container's first process): the new process would be killed when this one exits after handing over; replace the container instead")

// upgrade starts the binary on disk with the same arguments, hands it every
// listening socket and what was set on backends at runtime, and waits until it says it is serving. The kernel keeps
// queueing connections on the shared sockets throughout, so none is refused.
// On success the caller stops accepting and drains; on failure it goes on
// serving as before.
func (d *daemon) upgrade() error {
	if os.Getpid() == 1 {
		return errPIDOne
	}
	srv, logger := d.srv, d.logger
	exe, err := selfPath()
	if err != nil {
		return err
	}
	d.mu.Lock()
	adminAddr, adminLn := d.cfg.Admin, d.adminLn
	d.mu.Unlock()
	socks, err := srv.ListenerFiles(adminAddr, adminLn)
	if err != nil {
		return fmt.Errorf("collecting listening sockets: %w", err)
	}
	defer closeFiles(socks)
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	logger.Info("upgrade: starting new process", "binary", exe, "sockets", len(socks))
	if err := handover.Start(cmd, socks, srv.BackendStates(), upgradeTimeout); err != nil {
		return err
	}
	logger.Info("upgrade: new process is serving; draining this one", "pid", cmd.Process.Pid)
	srv.KeepUnixSockets()
	return nil
}

// selfPath is the binary to run for an upgrade: the path this process was
// started from, so that a binary replaced on disk is the one that runs.
func selfPath() (string, error) {
	p := os.Args[0]
	if filepath.Base(p) == p {
		lp, err := exec.LookPath(p)
		if err != nil {
			return "", err
		}
		p = lp
	}
	return filepath.Abs(p)
}

// closeFiles closes this process's copies of handed-over sockets.
func closeFiles(socks []handover.Socket) {
	for _, s := range socks {
		s.File.Close()
	}
}
