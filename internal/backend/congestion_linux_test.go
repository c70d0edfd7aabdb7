package backend

import (
	"context"
	"net"
	"net/netip"
	"testing"

	"sluice/internal/congestion"
)

// TestDialSetsCongestionControl dials a loopback backend under each kind of
// congestion_control and reads back the algorithm of the socket Dial made.
func TestDialSetsCongestionControl(t *testing.T) {
	system := congestion.SystemDefault()
	if system == "" {
		t.Skip("the system's congestion control cannot be read")
	}
	srv := startNameServer(t, "srv", "127.0.0.1:0")
	for _, tc := range []struct{ setting, want string }{
		{"auto", congestion.LoopbackAlgorithm},
		{"system", system},
		{"reno", "reno"},
	} {
		choice, err := congestion.Parse(tc.setting)
		if err != nil {
			t.Fatal(err)
		}
		rule := Settings{Name: "web", Backends: backends([]Address{srv.addr}, nil), CongestionControl: choice}
		p := NewPool(rule, nil, nil)
		c, be, err := p.Dial(context.Background(), netip.Addr{})
		if err != nil {
			t.Fatalf("%s: %v", tc.setting, err)
		}
		rc, err := c.(*net.TCPConn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		got, gerr := congestion.Get(rc)
		c.Close()
		be.Release()
		if gerr != nil || got != tc.want {
			t.Errorf("congestion_control = %q: socket uses %q (err %v), want %q", tc.setting, got, gerr, tc.want)
		}
	}
}
