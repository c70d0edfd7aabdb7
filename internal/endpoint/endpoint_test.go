package endpoint

import "testing"

func TestAddressForms(t *testing.T) {
	for _, tc := range []struct {
		a         Address
		str, dial string
	}{
		{Address{Network: "tcp", Host: "10.0.0.5", Port: 80}, "10.0.0.5:80", "10.0.0.5:80"},
		{Address{Network: "tcp", Host: "::1", Port: 443}, "[::1]:443", "[::1]:443"},
		{Address{Network: "tcp", Host: "fe80::1%eth0", Port: 53}, "[fe80::1%eth0]:53", "[fe80::1%eth0]:53"},
		{Address{Network: "tcp", Port: 8080}, ":8080", ":8080"},
		{Address{Network: "tcp", Host: "db.internal", Port: 5432}, "db.internal:5432", "db.internal:5432"},
		{Address{Network: "unix", Path: "/run/app.sock"}, "unix:/run/app.sock", "/run/app.sock"},
		{Address{Network: "unix", Path: "@abstract"}, "unix:@abstract", "@abstract"},
	} {
		if got := tc.a.String(); got != tc.str {
			t.Errorf("%#v.String() = %q, want %q", tc.a, got, tc.str)
		}
		if got := tc.a.DialAddress(); got != tc.dial {
			t.Errorf("%#v.DialAddress() = %q, want %q", tc.a, got, tc.dial)
		}
	}
}
