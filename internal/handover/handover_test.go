package handover

import (
	"crypto/sha256"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// childEnv makes the test binary act as the new process of a hand-over:
// its value says how (see child).
const childEnv = "HANDOVER_TEST_CHILD"

func TestMain(m *testing.M) {
	if how, ok := os.LookupEnv(childEnv); ok {
		os.Exit(child(how))
	}
	os.Exit(m.Run())
}

// child is the new process. "serve": for each inherited socket it reports
// its key, descriptor and address on stdout, then says it is ready and
// accepts one connection on each TCP listener, answering with the key.
// "exit": it exits at once. "hang": it never says it is ready.
func child(how string) int {
	switch how {
	case "exit":
		return 3
	case "hang":
		time.Sleep(time.Hour)
	}
	if key, ok := strings.CutPrefix(how, "group:"); ok {
		return childGroup(key)
	}
	if how == "state" {
		return childState()
	}
	keys := strings.Split(os.Getenv(InheritEnv), ";")
	in := FromEnv()
	if os.Getenv(InheritEnv) != "" {
		fmt.Println("inherit list left in the environment")
		return 1
	}
	var lns []net.Listener
	for _, key := range keys {
		f := in.Take(key)
		if f == nil {
			fmt.Println("missing", key)
			return 1
		}
		ln, err := net.FileListener(f)
		if err != nil {
			fmt.Println(key, err)
			return 1
		}
		fmt.Println(key, f.Fd(), ln.Addr())
		f.Close()
		lns = append(lns, ln)
	}
	if unused := in.CloseUnused(); len(unused) != 0 {
		fmt.Println("unused after taking all:", unused)
		return 1
	}
	if err := Ready(); err != nil {
		fmt.Println("ready:", err)
		return 1
	}
	for i, ln := range lns {
		c, err := ln.Accept()
		if err != nil {
			return 1
		}
		fmt.Fprintln(c, keys[i])
		c.Close()
	}
	return 0
}

// childGroup is the new process that takes the group named key: it
// reports the address of each member in order, then whether anything was
// left unused, and says it is ready.
func childGroup(key string) int {
	in := FromEnv()
	for _, f := range in.TakeGroup(key) {
		pc, err := net.FilePacketConn(f)
		if err != nil {
			fmt.Println(err)
			return 1
		}
		fmt.Println(pc.LocalAddr())
		f.Close()
		pc.Close()
	}
	fmt.Println("unused:", in.CloseUnused())
	if err := Ready(); err != nil {
		fmt.Println("ready:", err)
		return 1
	}
	return 0
}

// childState is the new process that reports the state it was handed: its
// length and SHA-256, and whether its variable was cleared.
func childState() int {
	in := FromEnv()
	fmt.Printf("%d %x %q\n", len(in.State()), sha256.Sum256(in.State()), os.Getenv(StateEnv))
	in.CloseUnused()
	if err := Ready(); err != nil {
		fmt.Println("ready:", err)
		return 1
	}
	return 0
}

// startChild hands socks over to the test binary acting as how. The
// returned output reads what the child wrote so far.
func startChild(t *testing.T, how string, socks []Socket, timeout time.Duration) (*exec.Cmd, func() string, error) {
	return startChildState(t, how, socks, nil, timeout)
}

// startChildState is startChild handing state over too.
func startChildState(t *testing.T, how string, socks []Socket, state []byte, timeout time.Duration) (*exec.Cmd, func() string, error) {
	t.Helper()
	out, err := os.Create(t.TempDir() + "/out")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { out.Close() })
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"="+how)
	cmd.Stdout, cmd.Stderr = out, out
	err = Start(cmd, socks, state, timeout)
	if cmd.Process != nil {
		t.Cleanup(func() { cmd.Process.Kill() }) // Start reaps it
	}
	read := func() string {
		b, _ := os.ReadFile(out.Name())
		return string(b)
	}
	return cmd, read, err
}

// waitGone waits until process pid no longer exists (Start reaps its
// process when it exits).
func waitGone(t *testing.T, pid int) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); syscall.Kill(pid, 0) == nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d still there", pid)
		}
	}
}

// listeners opens n loopback TCP listeners and returns them with their
// sockets named for a hand-over.
func listeners(t *testing.T, n int) ([]net.Listener, []Socket) {
	t.Helper()
	var lns []net.Listener
	var socks []Socket
	for i := range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		f, err := ln.(*net.TCPListener).File()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		kind := TCP
		if i == 0 {
			kind = Admin
		}
		lns = append(lns, ln)
		socks = append(socks, Socket{Key: Key(kind, ln.Addr().String()), File: f})
	}
	return lns, socks
}

// TestStartHandsOverInOrder: the sockets reach the new process as
// descriptors 3, 4, 5 in the order given, each under its own name, and
// Start returns once the new process says it is ready, with the sockets
// served by it.
func TestStartHandsOverInOrder(t *testing.T) {
	lns, socks := listeners(t, 3)
	cmd, out, err := startChild(t, "serve", socks, time.Minute)
	if err != nil {
		t.Fatalf("Start: %v\n%s", err, out())
	}
	// The child wrote its report before it said ready.
	var want []string
	for i, ln := range lns {
		want = append(want, fmt.Sprintf("%s %d %s", socks[i].Key, 3+i, ln.Addr()))
	}
	if got := strings.Split(strings.TrimSpace(out()), "\n"); !slices.Equal(got, want) {
		t.Fatalf("the new process found\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for i, ln := range lns {
		ln.Close() // only the new process accepts now
		c, err := net.DialTimeout("tcp", ln.Addr().String(), 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(30 * time.Second))
		buf := make([]byte, 100)
		n, _ := c.Read(buf)
		c.Close()
		if got := strings.TrimSpace(string(buf[:n])); got != socks[i].Key {
			t.Errorf("connection to %s answered by %q, want %q", ln.Addr(), got, socks[i].Key)
		}
	}
	waitGone(t, cmd.Process.Pid)
}

// TestStartHandsOverState: the state reaches the new process whole, even
// when larger than a pipe's buffer and than one environment string may be
// (128 KiB on Linux), and its variable is cleared.
func TestStartHandsOverState(t *testing.T) {
	_, socks := listeners(t, 2)
	state := make([]byte, 300<<10)
	for i := range state {
		state[i] = byte('a' + i%26)
	}
	cmd, out, err := startChildState(t, "state", socks, state, time.Minute)
	if err != nil {
		t.Fatalf("Start: %v\n%s", err, out())
	}
	want := fmt.Sprintf("%d %x %q", len(state), sha256.Sum256(state), "")
	if got := strings.TrimSpace(out()); got != want {
		t.Fatalf("the new process got state %s, want %s", got, want)
	}
	waitGone(t, cmd.Process.Pid)
}

// TestStartFailures: a new process that exits, or never says it is
// ready, fails Start; one that hangs is killed.
func TestStartFailures(t *testing.T) {
	_, socks := listeners(t, 1)
	if _, _, err := startChild(t, "exit", socks, time.Minute); err == nil || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("Start with a process that exits: %v, want it to say it exited with status 3", err)
	}
	cmd, _, err := startChild(t, "hang", socks, 200*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "not ready in time") {
		t.Errorf("Start with a process that never says ready: %v", err)
	}
	waitGone(t, cmd.Process.Pid) // killed, not left to sleep for an hour
	bad := exec.Command("/nonexistent/sluice")
	if err := Start(bad, socks, nil, time.Minute); err == nil || !strings.Contains(err.Error(), "starting /nonexistent/sluice") {
		t.Errorf("Start of a missing binary: %v", err)
	}
}

// TestInheritList: the list names descriptors from 3 on, in order, and
// an empty list names none.
func TestInheritList(t *testing.T) {
	keys := []string{"admin@127.0.0.1:9000", "tcp@:8080", "udp@:5353", "unix@/run/x.sock", "tcp@[::1]:80"}
	list := encode(keys)
	if list != "admin@127.0.0.1:9000;tcp@:8080;udp@:5353;unix@/run/x.sock;tcp@[::1]:80" {
		t.Fatalf("encode: %q", list)
	}
	fds := decode(list)
	if len(fds) != len(keys) {
		t.Fatalf("decode(%q) = %v", list, fds)
	}
	for i, k := range keys {
		if fds[k] != 3+i {
			t.Errorf("%s: descriptor %d, want %d", k, fds[k], 3+i)
		}
	}
	if fds := decode(""); fds != nil {
		t.Errorf("decode of an empty list: %v", fds)
	}
}

// TestKey names sockets as the inherit list carries them.
func TestKey(t *testing.T) {
	for _, tc := range []struct {
		kind Kind
		addr string
		want string
	}{
		{TCP, ":8080", "tcp@:8080"},
		{UDP, "[::1]:53", "udp@[::1]:53"},
		{Unix, "/run/x.sock", "unix@/run/x.sock"},
		{Admin, "127.0.0.1:9000", "admin@127.0.0.1:9000"},
	} {
		if got := Key(tc.kind, tc.addr); got != tc.want {
			t.Errorf("Key(%s, %q) = %q, want %q", tc.kind, tc.addr, got, tc.want)
		}
	}
}

// TestNotHandedOver: a process not started by a hand-over inherits
// nothing and Ready does nothing.
func TestNotHandedOver(t *testing.T) {
	t.Setenv(InheritEnv, "")
	t.Setenv(ReadyEnv, "")
	in := FromEnv()
	if in != nil {
		t.Fatalf("FromEnv with no list: %+v", in)
	}
	if f := in.Take("tcp@:80"); f != nil {
		t.Error("a nil Inherited gave a socket")
	}
	if keys := in.CloseUnused(); keys != nil {
		t.Errorf("a nil Inherited closed %v", keys)
	}
	if err := Ready(); err != nil {
		t.Errorf("Ready with no pipe: %v", err)
	}
}

// TestGroupHandedOver: the sockets of a group reach the new process under
// the group's key and their member numbers, and TakeGroup returns all of
// them, in order; a socket of another name is not part of it.
func TestGroupHandedOver(t *testing.T) {
	key := Key(UDP, "127.0.0.1:5353")
	var socks []Socket
	var want []string
	for i := range 3 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close() })
		f, err := pc.(*net.UDPConn).File()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		socks = append(socks, Socket{Key: MemberKey(key, i), File: f})
		want = append(want, pc.LocalAddr().String())
	}
	_, other := listeners(t, 1)
	socks = append(socks, other...)
	want = append(want, fmt.Sprintf("unused: [%s]", other[0].Key))
	_, out, err := startChild(t, "group:"+key, socks, time.Minute)
	if err != nil {
		t.Fatalf("Start: %v\n%s", err, out())
	}
	if got := strings.Split(strings.TrimSpace(out()), "\n"); !slices.Equal(got, want) {
		t.Fatalf("the new process found\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestMemberKey: the first member of a group goes by the group's key, so
// that a process knowing no groups takes it; the others are numbered.
// TakeGroup stops at the first number missing.
func TestMemberKey(t *testing.T) {
	key := Key(UDP, ":53")
	for i, want := range []string{"udp@:53", "udp@:53#1", "udp@:53#2"} {
		if got := MemberKey(key, i); got != want {
			t.Errorf("MemberKey(%q, %d) = %q, want %q", key, i, got, want)
		}
	}
	f := func(name string) *os.File {
		f, err := os.Open(os.DevNull)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	in := &Inherited{files: map[string]*os.File{"udp@:53": f("0"), "udp@:53#1": f("1"), "udp@:53#3": f("3")}}
	if got := in.TakeGroup(key); len(got) != 2 {
		t.Errorf("TakeGroup took %d sockets, want 2 (members 0 and 1)", len(got))
	}
	if left := in.CloseUnused(); !slices.Equal(left, []string{"udp@:53#3"}) {
		t.Errorf("left %v, want member 3 only", left)
	}
	if got := (*Inherited)(nil).TakeGroup(key); got != nil {
		t.Errorf("a nil Inherited gave %v", got)
	}
}

// TestStartKeepsSocketsNonBlocking: handing a socket over leaves it
// non-blocking in this process. A descriptor and its duplicates share one
// open file, whose O_NONBLOCK an exec.Cmd's ExtraFiles clears (os.File.Fd
// puts a file in blocking mode); an event loop accepting from the
// listener would then block in accept4 on an empty queue, with every relay
// of its loop.
func TestStartKeepsSocketsNonBlocking(t *testing.T) {
	lns, socks := listeners(t, 2)
	// A new process that takes no socket: the net package, taking one,
	// would make the open file non-blocking again.
	cmd, out, err := startChildState(t, "state", socks, nil, time.Minute)
	if err != nil {
		t.Fatalf("Start: %v\n%s", err, out())
	}
	for _, ln := range lns {
		rc, err := ln.(*net.TCPListener).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var flags int
		var ferr error
		rc.Control(func(fd uintptr) { flags, ferr = unix.FcntlInt(fd, unix.F_GETFL, 0) })
		if ferr != nil || flags&unix.O_NONBLOCK == 0 {
			t.Errorf("listener %s after the hand-over: flags %#x (%v), want O_NONBLOCK", ln.Addr(), flags, ferr)
		}
	}
	waitGone(t, cmd.Process.Pid)
}
