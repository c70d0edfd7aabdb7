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

func TestAddressRange(t *testing.T) {
	a := Address{Network: "tcp", Host: "10.0.0.5", Port: 20000, LastPort: 20999}
	if got := a.String(); got != "10.0.0.5:20000-20999" {
		t.Errorf("String() = %q", got)
	}
	if !a.Ranged() || a.Ports() != 1000 {
		t.Errorf("Ranged() = %t, Ports() = %d; want true, 1000", a.Ranged(), a.Ports())
	}
	if got := a.At(999); got != (Address{Network: "tcp", Host: "10.0.0.5", Port: 20999}) || got.String() != "10.0.0.5:20999" {
		t.Errorf("At(999) = %#v", got)
	}
	if !a.Contains(20000) || !a.Contains(20999) || a.Contains(19999) || a.Contains(21000) {
		t.Error("Contains is wrong at the range's edges")
	}
	one := Address{Network: "tcp", Host: "::1", Port: 30000}
	if one.Ranged() || one.Ports() != 1 || one.At(5) != one || !one.Contains(30000) || one.Contains(30001) {
		t.Errorf("a single port: Ranged %t, Ports %d, At(5) %v", one.Ranged(), one.Ports(), one.At(5))
	}
	if got := (Address{Network: "tcp", Host: "::1", Port: 7, LastPort: 7}).String(); got != "[::1]:7-7" {
		t.Errorf("a range of one port prints as %q", got)
	}
}
