package admit

import (
	"net/netip"
	"testing"

	"sluice/internal/access"
)

func TestACL(t *testing.T) {
	tests := []struct {
		name        string
		allow, deny []string
		client      string
		want        access.Reason
	}{
		{"no lists v4", nil, nil, "192.0.2.1", ""},
		{"no lists v6", nil, nil, "2001:db8::1", ""},
		{"allow v4 inside", []string{"10.0.0.0/8"}, nil, "10.1.2.3", ""},
		{"allow v4 outside", []string{"10.0.0.0/8"}, nil, "11.0.0.1", ReasonDenied},
		{"allow v4 mapped client inside", []string{"10.0.0.0/8"}, nil, "::ffff:10.1.2.3", ""},
		{"allow v4 mapped client outside", []string{"10.0.0.0/8"}, nil, "::ffff:11.0.0.1", ReasonDenied},
		{"allow v4 refuses v6", []string{"10.0.0.0/8"}, nil, "2001:db8::1", ReasonDenied},
		{"allow mapped prefix v4 client", []string{"::ffff:10.0.0.0/104"}, nil, "10.1.2.3", ""},
		{"allow mapped prefix mapped client", []string{"::ffff:10.0.0.0/104"}, nil, "::ffff:10.1.2.3", ""},
		{"allow mapped prefix outside", []string{"::ffff:10.0.0.0/104"}, nil, "11.0.0.1", ReasonDenied},
		{"allow mapped /96 is all v4", []string{"::ffff:0.0.0.0/96"}, nil, "203.0.113.9", ""},
		{"allow v6 inside", []string{"2001:db8::/32"}, nil, "2001:db8:ffff::1", ""},
		{"allow v6 outside", []string{"2001:db8::/32"}, nil, "2001:db9::1", ReasonDenied},
		{"allow v6 refuses v4", []string{"2001:db8::/32"}, nil, "10.0.0.1", ReasonDenied},
		{"allow ::/0 is v6 only", []string{"::/0"}, nil, "10.0.0.1", ReasonDenied},
		{"allow ::/0 admits v6", []string{"::/0"}, nil, "2001:db8::1", ""},
		{"allow v4 host /32", []string{"192.0.2.7/32"}, nil, "192.0.2.7", ""},
		{"allow v4 host /32 neighbour", []string{"192.0.2.7/32"}, nil, "192.0.2.8", ReasonDenied},
		{"allow v6 host /128", []string{"2001:db8::7/128"}, nil, "2001:db8::7", ""},
		{"allow v6 host /128 neighbour", []string{"2001:db8::7/128"}, nil, "2001:db8::8", ReasonDenied},
		{"allow host bits ignored", []string{"10.1.2.3/8"}, nil, "10.200.0.1", ""},
		{"allow second of several", []string{"192.0.2.0/24", "198.51.100.0/24"}, nil, "198.51.100.5", ""},
		{"allow zoned client", []string{"fe80::/10"}, nil, "fe80::1%eth0", ""},
		{"deny v4", nil, []string{"192.0.2.0/24"}, "192.0.2.7", ReasonDenied},
		{"deny v4 others pass", nil, []string{"192.0.2.0/24"}, "198.51.100.1", ""},
		{"deny v4 mapped client", nil, []string{"192.0.2.0/24"}, "::ffff:192.0.2.7", ReasonDenied},
		{"deny mapped prefix v4 client", nil, []string{"::ffff:192.0.2.0/120"}, "192.0.2.7", ReasonDenied},
		{"deny v6", nil, []string{"2001:db8::/48"}, "2001:db8:0:1::1", ReasonDenied},
		{"deny v6 others pass", nil, []string{"2001:db8::/48"}, "2001:db8:1::1", ""},
		{"deny zoned client", nil, []string{"fe80::/10"}, "fe80::1%eth0", ReasonDenied},
		{"deny wins v4", []string{"10.0.0.0/8"}, []string{"10.9.0.0/16"}, "10.9.1.1", ReasonDenied},
		{"deny wins rest allowed", []string{"10.0.0.0/8"}, []string{"10.9.0.0/16"}, "10.8.1.1", ""},
		{"deny wins same prefix", []string{"10.0.0.0/8"}, []string{"10.0.0.0/8"}, "10.0.0.1", ReasonDenied},
		{"deny wins v6", []string{"2001:db8::/32"}, []string{"2001:db8:bad::/48"}, "2001:db8:bad::1", ReasonDenied},
		{"deny wins mapped", []string{"::ffff:10.0.0.0/104"}, []string{"10.9.0.0/16"}, "::ffff:10.9.0.1", ReasonDenied},
		{"unix client skips allow", []string{"10.0.0.0/8"}, nil, "", ""},
		{"unix client skips deny", nil, []string{"0.0.0.0/0", "::/0"}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, _ := newTestGate(Policy{Allow: prefixes(t, tt.allow...), Deny: prefixes(t, tt.deny...)})
			if tt.want == "" {
				tk := admit(t, g, tt.client)
				tk.Release()
			} else {
				refuse(t, g, tt.client, tt.want)
			}
			if g.Live() != 0 {
				t.Fatalf("Live = %d after the only ticket was released", g.Live())
			}
		})
	}
}

// TestACLInvalidPrefixFailsClosed: an allow list that holds only an invalid
// prefix admits no one, rather than collapsing into "no list".
func TestACLInvalidPrefixFailsClosed(t *testing.T) {
	g, _ := newTestGate(Policy{Allow: []netip.Prefix{{}}})
	refuse(t, g, "10.0.0.1", ReasonDenied)
	refuse(t, g, "2001:db8::1", ReasonDenied)
}

// TestPolicySlicesCopied: changing the caller's slices after NewGate or
// Update does not change the policy in force.
func TestPolicySlicesCopied(t *testing.T) {
	allow := prefixes(t, "10.0.0.0/8")
	deny := prefixes(t, "10.9.0.0/16")
	g, _ := newTestGate(Policy{Allow: allow, Deny: deny})
	allow[0] = netip.MustParsePrefix("0.0.0.0/0")
	deny[0] = netip.MustParsePrefix("10.1.0.0/16")
	refuse(t, g, "11.0.0.1", ReasonDenied)
	refuse(t, g, "10.9.0.1", ReasonDenied)
	tk := admit(t, g, "10.1.0.1")
	tk.Release()
}
