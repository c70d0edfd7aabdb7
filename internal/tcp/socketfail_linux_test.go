package tcp

import (
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"sluice/internal/backend"
	"sluice/internal/conntrack"
	"sluice/internal/relay"
)

// TestBackendSocketNotSupportedKeepsAccepting: a backend whose socket this
// host cannot open must not stop the listener: its address family is not
// supported (EAFNOSUPPORT, an IPv6 backend where the kernel runs without
// IPv6), or a security policy forbids it (EACCES). The engine's loops,
// which accept and open backend sockets, may run on any thread: the test
// runs in a child process (this test binary again) whose every thread has
// a seccomp filter that fails each socket(AF_INET6, ...) with the errno,
// as such a kernel or policy does. The IPv6 backend is the first pick:
// each failed socket counts against it (it is marked down after 3) and the
// next backend, on IPv4, serves the client; the loops go on accepting and
// Serve does not return.
func TestBackendSocketNotSupportedKeepsAccepting(t *testing.T) {
	if name := os.Getenv(socketFailEnv); name != "" {
		errno := unix.EAFNOSUPPORT
		if name == unix.ErrnoName(unix.EACCES) {
			errno = unix.EACCES
		}
		if err := denyIPv6Sockets(errno); err != nil {
			t.Fatalf("seccomp: %v", err)
		}
		if fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_STREAM, 0); err != errno {
			unix.Close(fd)
			t.Fatalf("an IPv6 socket under the filter: %v, want %v", err, errno)
		}
		testSocketRefused(t, errno)
		return
	}
	for _, errno := range []unix.Errno{unix.EAFNOSUPPORT, unix.EACCES} {
		t.Run(unix.ErrnoName(errno), func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestBackendSocketNotSupportedKeepsAccepting$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), socketFailEnv+"="+unix.ErrnoName(errno))
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), "--- PASS") {
				t.Fatalf("the child under the filter: %v\n%s", err, out)
			}
		})
	}
}

// socketFailEnv names the errno that a child of
// TestBackendSocketNotSupportedKeepsAccepting fails IPv6 sockets with.
const socketFailEnv = "SLUICE_TEST_IPV6_SOCKET_ERRNO"

// testSocketRefused runs TestBackendSocketNotSupportedKeepsAccepting with
// IPv6 sockets failing with errno.
func testSocketRefused(t *testing.T, errno unix.Errno) {
	engine, err := relay.NewEngine(1)
	if err != nil {
		t.Fatalf("the direct path needs the engine: %v", err)
	}
	t.Cleanup(engine.Close)
	good := netip.MustParseAddrPort(reporter(t, false))
	logs := &logBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, nil))
	rc := backend.Settings{Name: "t", Balance: backend.First, Retries: 1, ConnectTimeout: 2 * time.Second, Backends: []backend.Target{
		{Address: backend.Address{Network: "tcp", Host: "::1", Port: 9}, Weight: 1},
		{Address: backend.Address{Network: "tcp", Host: good.Addr().String(), Port: good.Port()}, Weight: 1},
	}}
	pool := backend.NewPool(rc, nil, logger)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	svc := NewService(&Rule{Name: "t", Pool: pool},
		Deps{Logger: logger, Pools: relay.NewPools(0), Engine: engine, IDs: &conntrack.IDs{}, Table: conntrack.NewTable()})
	served := make(chan error, 1)
	go func() { served <- svc.Serve(ln) }()
	t.Cleanup(func() {
		svc.CloseListeners()
		select {
		case <-served:
		case <-time.After(10 * time.Second):
			t.Error("Serve still running 10 s after CloseListeners")
		}
		svc.Drain(time.Second)
	})
	for i := range 5 {
		line, c, err := dialFrom(t, "", ln.Addr().String())
		if line != "none" {
			select {
			case serr := <-served:
				served <- serr // for the cleanup
				t.Fatalf("client %d: read %q, %v; Serve returned %v", i, line, err, serr)
			default:
				t.Fatalf("client %d: read %q, %v", i, line, err)
			}
		}
		c.Close()
	}
	bad := pool.Backends()[0]
	if bad.ConnectErrors() == 0 || bad.Up() {
		t.Errorf("the IPv6 backend: %d connect errors, up %v; want counted and down", bad.ConnectErrors(), bad.Up())
	}
	for _, l := range logs.waitAccess(t, 5) {
		if l["end"] != "eof" || !strings.Contains(l["backend"].(string), strconv.Itoa(int(good.Port()))) {
			t.Errorf("access line %v", l)
		}
	}
	select {
	case err := <-served:
		t.Fatalf("Serve returned %v while its listener was open", err)
	default:
	}
}

// denyIPv6Sockets installs, on every thread of the process (TSYNC; new
// threads inherit it), a seccomp filter under which socket(AF_INET6, ...)
// fails with errno. (The system call's first argument is read as the low
// word of a little-endian 64-bit slot.)
func denyIPv6Sockets(errno unix.Errno) error {
	const argsOffset = 16 // offsetof(struct seccomp_data, args)
	prog := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 0}, // the system call's number
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 0, Jf: 3, K: unix.SYS_SOCKET},
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: argsOffset}, // its family
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 0, Jf: 1, K: unix.AF_INET6},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ERRNO | uint32(errno)},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW},
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	runtime.LockOSThread() // no_new_privs is the calling thread's
	defer runtime.UnlockOSThread()
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return err
	}
	if _, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&fprog))); e != 0 {
		return e
	}
	return nil
}
