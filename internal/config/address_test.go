package config

import (
	"strings"
	"testing"
)

// TestParseAddress checks address forms and their normalised String.
func TestParseAddress(t *testing.T) {
	tests := []struct {
		in   string
		role addrRole
		want string // String() of the result, or the error
	}{
		{"10.0.0.5:80", roleBackend, "10.0.0.5:80"},
		{":80", roleListen, ":80"},
		{"[0:0:0:0:0:0:0:1]:443", roleListen, "[::1]:443"},
		{"[::]:53", roleListen, "[::]:53"},
		{"[fe80::1%eth0]:80", roleListen, "[fe80::1%eth0]:80"},
		{"db.internal.:5432", roleBackend, "db.internal.:5432"},
		{"_svc.example:1", roleBackend, "_svc.example:1"},
		{"unix:/run/a.sock", roleListen, "unix:/run/a.sock"},
		{"unix:@abstract", roleBackend, "unix:@abstract"},
		{"127.0.0.1:0", roleListen, "127.0.0.1:0"},
		{"127.0.0.1:0", roleAdmin, "127.0.0.1:0"},
		{"localhost:9900", roleAdmin, "localhost:9900"},
		{"127.0.0.1:0", roleBackend, "port 0 is not allowed for a backend"},
		{"10.0.0.5", roleBackend, "missing port"},
		{"[::1]", roleBackend, "missing port"},
		{"[::1]:", roleBackend, "missing port"},
		{"::1", roleBackend, `IPv6 address needs brackets (want "[v6]:port")`},
		{"[::1:80", roleBackend, `bad brackets (want "[v6]:port")`},
		{"::1]:80", roleBackend, `bad brackets (want "[v6]:port")`},
		{"[::1]]:80", roleBackend, `bad brackets (want "[v6]:port")`},
		{"[::1]80", roleBackend, `bad brackets (want "[v6]:port")`},
		{"[10.0.0.1]:80", roleBackend, "brackets are only for IPv6 addresses"},
		{"[host]:80", roleBackend, `invalid IPv6 address "host"`},
		{"[fe80::1%a/b]:80", roleBackend, `invalid IPv6 zone "a/b"`},
		{"a:65536", roleBackend, "port 65536 out of range (max 65535)"},
		{"a:-1", roleBackend, `invalid port "-1" (want a number)`},
		{"a b:1", roleBackend, `invalid host name "a b"`},
		{"a-.b:1", roleBackend, `invalid host name "a-.b"`},
		{"1.2.3:1", roleBackend, `invalid IP address "1.2.3"`},
		{"example.com:80", roleListen, "host must be an IP address (listen addresses are not resolved)"},
		{"unix:/a", roleAdmin, "want host:port, not a unix socket"},
		{"unix:", roleBackend, "empty unix socket path"},
		{"unix:/a\x00b", roleBackend, "invalid unix socket path"},
		{"", roleBackend, `empty address (want "host:port")`},
	}
	for _, tt := range tests {
		a, err := parseAddress(tt.in, tt.role)
		got := a.String()
		if err != nil {
			got = err.Error()
		}
		if got != tt.want {
			t.Errorf("parseAddress(%q, %d) = %q, want %q", tt.in, tt.role, got, tt.want)
		}
	}
}

// TestListenOverlap checks which listen addresses take the same socket.
func TestListenOverlap(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{":80", "127.0.0.1:80", true},
		{":80", "[::1]:80", true},
		{"[::]:80", "10.0.0.1:80", true},
		{"0.0.0.0:80", "127.0.0.1:80", true},
		{"0.0.0.0:80", "[::ffff:127.0.0.1]:80", true},
		{"0.0.0.0:80", "0.0.0.0:80", true},
		{"127.0.0.1:80", "[::ffff:127.0.0.1]:80", true},
		{"0.0.0.0:80", "[::1]:80", false},
		{"127.0.0.1:80", "127.0.0.2:80", false},
		{"127.0.0.1:80", "127.0.0.1:81", false},
		{":0", ":0", false},
		{"unix:/run/s", "unix:/run/./s", true},
		{"unix:/run/s", "unix:/run/t", false},
		{"unix:/run/s", ":80", false},
	}
	for _, tt := range tests {
		a, errA := parseAddress(tt.a, roleListen)
		b, errB := parseAddress(tt.b, roleListen)
		if errA != nil || errB != nil {
			t.Fatalf("bad test addresses: %v %v", errA, errB)
		}
		for _, p := range [][2]Address{{a, b}, {b, a}} {
			lt := newListenTable()
			lt.add(p[0], TCP, 0)
			if got := lt.first(p[1], TCP) == 0; got != tt.want {
				t.Errorf("listen %q after %q: clash %v, want %v", p[1].String(), p[0].String(), got, tt.want)
			}
		}
	}
}

// TestParseBandwidth checks units and rounding.
func TestParseBandwidth(t *testing.T) {
	good := map[string]int64{
		"10MiB/s": 10 << 20, "500KB/s": 500_000, "500kB/s": 500_000, "1Gbit/s": 125_000_000,
		"1.5 GiB/s": 3 << 29, "8bit/s": 1, "12bit/s": 2, " 100B/s ": 100, "1TB/s": 1e12, "2Tbit/s": 25e10,
		"100kbit/s": 12_500, "1Mbit/s": 125_000, "3TiB/s": 3 << 40, "7GB/s": 7e9, "2KiB/s": 2048,
	}
	for in, want := range good {
		got, err := parseBandwidth(in)
		if err != nil || got != want {
			t.Errorf("parseBandwidth(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	bad := map[string]string{
		"10MiB":          "invalid rate",
		"MiB/s":          "invalid rate",
		"10/s":           "missing unit",
		"1.2.3MB/s":      "invalid rate",
		".5MB/s":         "invalid rate",
		"5.MB/s":         "invalid rate",
		"10mb/s":         `unknown unit "mb"`,
		"1bit/s":         "less than 1 byte per second",
		"0B/s":           "less than 1 byte per second",
		"9999999TiB/s":   "too large",
		"-1MB/s":         "invalid rate",
		"1e3MB/s":        `unknown unit "e3MB"`,
		"10 MiB per sec": "invalid rate",
	}
	for in, want := range bad {
		_, err := parseBandwidth(in)
		if err == nil || len(err.Error()) < len(want) || err.Error()[:len(want)] != want {
			t.Errorf("parseBandwidth(%q) error = %v, want prefix %q", in, err, want)
		}
	}
}

// TestParsePrefix checks CIDR normalisation.
func TestParsePrefix(t *testing.T) {
	good := map[string]string{
		"10.0.0.0/8": "10.0.0.0/8", "10.0.0.7": "10.0.0.7/32", "2001:db8::1": "2001:db8::1/128",
		"::ffff:10.0.0.7": "10.0.0.7/32", "::ffff:10.0.0.0/104": "10.0.0.0/8", "::/0": "::/0", "0.0.0.0/0": "0.0.0.0/0",
		"::ffff:0:0/96": "0.0.0.0/0", "::ffc0:0:0/90": "::ffc0:0:0/90",
	}
	for in, want := range good {
		p, err := parsePrefix(in)
		if err != nil || p.String() != want {
			t.Errorf("parsePrefix(%q) = %v, %v; want %s", in, p, err, want)
		}
	}
	for _, in := range []string{"10.0.0.1/8", "fe80::1%eth0", "10.0.0.0/33", "", "10.0.0.0/", "host"} {
		if p, err := parsePrefix(in); err == nil {
			t.Errorf("parsePrefix(%q) = %v, want an error", in, p)
		}
	}
}

// TestUnixPathLimit: a unix socket path may be as long as sun_path less its
// terminating NUL; an abstract name ("@name") has no NUL and may fill it.
func TestUnixPathLimit(t *testing.T) {
	for _, tt := range []struct {
		path string
		ok   bool
	}{
		{"/" + strings.Repeat("a", 106), true},
		{"/" + strings.Repeat("a", 107), false},
		{"@" + strings.Repeat("a", 107), true},
		{"@" + strings.Repeat("a", 108), false},
	} {
		for _, role := range []addrRole{roleListen, roleBackend} {
			_, err := parseAddress("unix:"+tt.path, role)
			if (err == nil) != tt.ok {
				t.Errorf("unix path of %d bytes (%.1s...): got error %v, want ok %v", len(tt.path), tt.path, err, tt.ok)
			}
		}
	}
}
