// Package handover is how a sluice process hands its listening sockets to
// the binary that replaces it (hitless upgrade), both sides of it.
//
// The old process starts the new one (Start) with every socket as an
// inherited descriptor: the sockets are descriptors 3, 4, 5 and so on, in
// order, and $SLUICE_INHERIT names them in that order, separated by ";"
// ("admin@127.0.0.1:9000;tcp@:8080;udp@:5353;unix@/run/x.sock"; see Key).
// The descriptor after the last socket is the write end of a pipe, named
// by $SLUICE_READY_FD, on which the new process writes "ready\n" once it
// serves (Ready). Only then does the old process stop accepting and drain.
// The descriptor after that, named by $SLUICE_STATE_FD, is the read end of
// a pipe on which the old process writes the state it hands over (what was
// set on backends at runtime, opaque to this package) and closes: a pipe,
// not a variable, so that its size is not bounded by the environment's.
// The new process takes the sockets by name (FromEnv, Inherited.Take) and
// binds anew what it was not given.
//
// Sockets that share one address (a UDP rule's group, bound with
// SO_REUSEPORT, one per event loop) are named by the group's key and a
// member number after it (MemberKey: "udp@:5353", "udp@:5353#1",
// "udp@:5353#2"), and taken together (Inherited.TakeGroup), so that the new
// process serves every socket of the group: the kernel hashes each client
// to one of them, and a socket left unread would lose its clients'
// datagrams. A process that knows no groups takes the first, under the
// plain key, and closes the others as unused.
package handover

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The environment variables of the hand-over.
const (
	InheritEnv = "SLUICE_INHERIT"
	ReadyEnv   = "SLUICE_READY_FD"
	StateEnv   = "SLUICE_STATE_FD"
)

// maxState bounds the state a new process reads from its predecessor.
const maxState = 64 << 20

// firstFD is the descriptor the first socket has in the new process: the
// one after standard input, output and error, where exec.Cmd.ExtraFiles
// begins.
const firstFD = 3

// readyWord is what the new process writes on the ready pipe.
const readyWord = "ready\n"

// Kind is what a handed-over socket serves.
type Kind string

// The kinds of sockets handed over.
const (
	TCP   Kind = "tcp"   // a rule's TCP listener
	UDP   Kind = "udp"   // a rule's UDP socket
	Unix  Kind = "unix"  // a rule's unix listener; its address is the path
	Admin Kind = "admin" // the admin API's listener
)

// Key names a socket in the inherit list by kind and address as configured:
// "tcp@:8080", "unix@/run/x.sock".
func Key(kind Kind, addr string) string { return string(kind) + "@" + addr }

// MemberKey names the i-th socket (from 0) of the group named key: the
// first is key itself, the others key#1, key#2 and so on.
func MemberKey(key string, i int) string {
	if i == 0 {
		return key
	}
	return key + "#" + strconv.Itoa(i)
}

// Socket is one socket to hand over: its name (see Key) and a file holding
// it.
type Socket struct {
	Key  string
	File *os.File
}

// fd returns the descriptor the i-th handed-over socket has in the new
// process.
func fd(i int) int { return firstFD + i }

// encode returns the value of InheritEnv that names keys in order.
func encode(keys []string) string { return strings.Join(keys, ";") }

// decode returns the descriptors that the value of InheritEnv names, by
// key. An empty list names none.
func decode(list string) map[string]int {
	if list == "" {
		return nil
	}
	fds := make(map[string]int)
	for i, key := range strings.Split(list, ";") {
		fds[key] = fd(i)
	}
	return fds
}

// Start starts cmd with sockets and state handed over, and returns once it
// says it is serving. It fails when the new process exits first, or has not said so
// within timeout (the process is then killed). cmd's environment, if not
// set, is this process's. The caller closes the sockets' files afterwards;
// on success it stops accepting and drains, on failure it serves on.
func Start(cmd *exec.Cmd, sockets []Socket, state []byte, timeout time.Duration) error {
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer readyR.Close()
	stateR, stateW, err := os.Pipe()
	if err != nil {
		readyW.Close()
		return err
	}
	keys := make([]string, len(sockets))
	for i, s := range sockets {
		keys[i] = s.Key
		f, err := inheritable(s.File)
		if err != nil {
			readyW.Close()
			stateR.Close()
			stateW.Close()
			return fmt.Errorf("handing over %s: %w", s.Key, err)
		}
		defer f.Close()
		cmd.ExtraFiles = append(cmd.ExtraFiles, f)
	}
	cmd.ExtraFiles = append(cmd.ExtraFiles, readyW, stateR)
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, InheritEnv+"="+encode(keys), ReadyEnv+"="+strconv.Itoa(fd(len(sockets))),
		StateEnv+"="+strconv.Itoa(fd(len(sockets)+1)))
	err = cmd.Start()
	readyW.Close()
	stateR.Close()
	if err != nil {
		stateW.Close()
		return fmt.Errorf("starting %s: %w", cmd.Path, err)
	}
	go writeState(stateW, state)
	return awaitReady(cmd, readyR, timeout)
}

// inheritable returns a duplicate of the socket behind f for a new
// process's ExtraFiles that leaves the socket as it is. A descriptor and
// its duplicates share one open file, and its O_NONBLOCK: os/exec takes
// each ExtraFile's descriptor with os.File.Fd, which puts a file that the
// net package made (net.Listener.File) into blocking mode, and with it
// the listener this process still accepts from, so that an event loop
// would block in accept4 on an empty queue, with every relay on it. A
// file from os.NewFile keeps the mode it has.
func inheritable(f *os.File) (*os.File, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	dup := -1
	var dupErr error
	if err := rc.Control(func(fd uintptr) {
		dup, dupErr = dupCloseOnExec(int(fd))
	}); err != nil {
		return nil, err
	}
	if dupErr != nil {
		return nil, dupErr
	}
	return os.NewFile(uintptr(dup), f.Name()), nil
}

// dupCloseOnExec duplicates fd with close-on-exec set, so that no other
// process started meanwhile inherits it.
func dupCloseOnExec(fd int) (int, error) {
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	nfd, err := syscall.Dup(fd)
	if err != nil {
		return -1, os.NewSyscallError("dup", err)
	}
	syscall.CloseOnExec(nfd)
	return nfd, nil
}

// writeState writes state on w and closes it. It returns once the new
// process has read it all, or has exited.
func writeState(w *os.File, state []byte) {
	defer w.Close()
	w.Write(state)
}

// awaitReady waits for the started cmd to write on the ready pipe.
func awaitReady(cmd *exec.Cmd, readyR *os.File, timeout time.Duration) error {
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	ready := make(chan error, 1)
	go func() {
		_, err := io.ReadFull(readyR, make([]byte, len(readyWord)))
		ready <- err
	}()
	select {
	case err := <-ready:
		if err != nil {
			return fmt.Errorf("new process (pid %d) did not report ready: %w", cmd.Process.Pid, <-exited)
		}
		return nil
	case err := <-exited:
		return fmt.Errorf("new process exited before it was ready: %v", err)
	case <-time.After(timeout):
		cmd.Process.Kill()
		return errors.New("new process not ready in time; killed it")
	}
}

// Inherited are the sockets handed over by the process this one replaces,
// by key. A nil *Inherited holds none.
type Inherited struct {
	files map[string]*os.File
	state []byte
}

// FromEnv takes the sockets and the state a previous process handed over,
// or returns nil when there are none. It clears InheritEnv and StateEnv,
// so that a process this one starts does not take them too.
func FromEnv() *Inherited {
	fds := decode(os.Getenv(InheritEnv))
	os.Unsetenv(InheritEnv)
	state := readState()
	if fds == nil && state == nil {
		return nil
	}
	in := &Inherited{files: make(map[string]*os.File, len(fds)), state: state}
	for key, fd := range fds {
		in.files[key] = os.NewFile(uintptr(fd), key)
	}
	return in
}

// readState reads the state on the pipe StateEnv names, to its end, and
// clears StateEnv; nil when there is none.
func readState() []byte {
	v := os.Getenv(StateEnv)
	os.Unsetenv(StateEnv)
	fd, err := strconv.Atoi(v)
	if err != nil || fd < firstFD {
		return nil
	}
	f := os.NewFile(uintptr(fd), "state")
	defer f.Close()
	state, err := io.ReadAll(io.LimitReader(f, maxState))
	if err != nil || len(state) == 0 {
		return nil
	}
	return state
}

// State returns the state the previous process handed over (see Start):
// bytes this package does not read; nil when there is none.
func (in *Inherited) State() []byte {
	if in == nil {
		return nil
	}
	return in.state
}

// Take removes and returns the socket named key, or nil. The file is the
// caller's to close.
func (in *Inherited) Take(key string) *os.File {
	if in == nil {
		return nil
	}
	f := in.files[key]
	delete(in.files, key)
	return f
}

// TakeGroup removes and returns the sockets of the group named key, in
// member order (see MemberKey), up to the first member missing; nil when
// there is none. The files are the caller's to close.
func (in *Inherited) TakeGroup(key string) []*os.File {
	var files []*os.File
	for i := 0; ; i++ {
		f := in.Take(MemberKey(key, i))
		if f == nil {
			return files
		}
		files = append(files, f)
	}
}

// CloseUnused closes the sockets nobody took (of rules the new config no
// longer has, say) and returns their keys.
func (in *Inherited) CloseUnused() []string {
	if in == nil {
		return nil
	}
	var keys []string
	for key, f := range in.files {
		f.Close()
		delete(in.files, key)
		keys = append(keys, key)
	}
	return keys
}

// Ready tells the process this one replaces that it is serving. It does
// nothing when this process was not started by a hand-over, and clears
// ReadyEnv either way.
func Ready() error {
	v := os.Getenv(ReadyEnv)
	os.Unsetenv(ReadyEnv)
	fd, err := strconv.Atoi(v)
	if err != nil || fd < firstFD {
		return nil
	}
	f := os.NewFile(uintptr(fd), "ready")
	defer f.Close()
	_, err = f.Write([]byte(readyWord))
	return err
}
