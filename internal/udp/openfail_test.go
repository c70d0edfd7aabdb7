package udp

import (
	"os"
	"syscall"
	"testing"
)

// TestOpenFailureJudged: a session whose socket cannot be set up pauses the
// rule only for a shortage of this host's (descriptors, memory, local
// ports); a backend this host cannot reach ends that session alone, and
// one this host can never open a socket towards (an IPv6 backend where the
// kernel has no IPv6, a security policy) counts against that backend, as
// on TCP, instead of pausing every new session of the rule.
func TestOpenFailureJudged(t *testing.T) {
	for _, tc := range []struct {
		call         string
		errno        syscall.Errno
		pause, blame bool
	}{
		{"socket", syscall.EMFILE, true, false},
		{"socket", syscall.ENFILE, true, false},
		{"socket", syscall.ENOBUFS, true, false},
		{"socket", syscall.ENOMEM, true, false},
		{"connect", syscall.EADDRNOTAVAIL, true, false},
		{"connect", syscall.ENETUNREACH, false, false},
		{"connect", syscall.ECONNREFUSED, false, false},
		{"socket", syscall.EAFNOSUPPORT, false, true},
		{"socket", syscall.EACCES, false, true},
		{"socket", syscall.EPERM, false, true},
	} {
		pause, blame := judgeOpenFailure(os.NewSyscallError(tc.call, tc.errno))
		if pause != tc.pause || blame != tc.blame {
			t.Errorf("%s: %v: pause %v, blame %v; want %v, %v", tc.call, tc.errno, pause, blame, tc.pause, tc.blame)
		}
	}
}
