package congestion

import (
	"net/netip"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in, str string
	}{
		{"", "auto"}, {"auto", "auto"}, {"system", "system"}, {"cubic", "cubic"}, {"bbr", "bbr"}, {"dctcp_2", "dctcp_2"},
	} {
		c, err := Parse(tc.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		if c.String() != tc.str {
			t.Errorf("Parse(%q).String() = %q, want %q", tc.in, c.String(), tc.str)
		}
	}
	for _, bad := range []string{"BBR", "bbr v2", "a-b", "averyveryverylongname", "cubic\x00"} {
		if _, err := Parse(bad); err == nil || !strings.Contains(err.Error(), "not an algorithm name") {
			t.Errorf("Parse(%q): got %v, want a not-an-algorithm-name error", bad, err)
		}
	}
}

func TestFor(t *testing.T) {
	v4, v6, mapped := netip.MustParseAddr("127.0.0.2"), netip.IPv6Loopback(), netip.MustParseAddr("::ffff:127.0.0.1")
	remote := netip.MustParseAddr("192.0.2.7")
	must := func(s string) Choice {
		c, err := Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, tc := range []struct {
		c    Choice
		peer netip.Addr
		want string
	}{
		{Choice{}, v4, LoopbackAlgorithm},
		{Choice{}, v6, LoopbackAlgorithm},
		{Choice{}, mapped, LoopbackAlgorithm},
		{Choice{}, remote, ""},
		{Choice{}, netip.Addr{}, ""}, // unix sockets and unknown peers
		{must("system"), v4, ""},
		{must("system"), remote, ""},
		{must("reno"), v4, "reno"},
		{must("reno"), remote, "reno"},
		// A process that may not choose the loopback algorithm.
		{Choice{}.WithoutLoopback(), v4, ""},
		{Choice{}.WithoutLoopback(), remote, ""},
		{must("reno").WithoutLoopback(), v4, "reno"},
		{must("system").WithoutLoopback(), v4, ""},
	} {
		if got := tc.c.For(tc.peer); got != tc.want {
			t.Errorf("%v.For(%v) = %q, want %q", tc.c, tc.peer, got, tc.want)
		}
	}
}

func TestForListener(t *testing.T) {
	loop, any4, any6, remote := netip.MustParseAddr("127.0.0.1"), netip.IPv4Unspecified(), netip.IPv6Unspecified(), netip.MustParseAddr("192.0.2.1")
	named, _ := Parse("bbr")
	system, _ := Parse("system")
	for _, tc := range []struct {
		c       Choice
		addr    netip.Addr
		want    string
		uniform bool
	}{
		{Choice{}, loop, LoopbackAlgorithm, true},
		{Choice{}, netip.IPv6Loopback(), LoopbackAlgorithm, true},
		{Choice{}, any4, "", false}, // loopback and remote clients alike
		{Choice{}, any6, "", false},
		{Choice{}, remote, "", false},
		{named, any4, "bbr", true},
		{named, loop, "bbr", true},
		{system, loop, "", true},
		{system, any6, "", true},
	} {
		name, uniform := tc.c.ForListener(tc.addr)
		if name != tc.want || uniform != tc.uniform {
			t.Errorf("%v.ForListener(%v) = %q, %v; want %q, %v", tc.c, tc.addr, name, uniform, tc.want, tc.uniform)
		}
	}
}
