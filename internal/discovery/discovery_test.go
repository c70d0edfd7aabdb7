package discovery

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	"sluice/internal/testkit/dnsmasq"
	"sluice/internal/testkit/logrec"
)

// TestParseValue reads the two forms of a key's value and refuses the rest.
func TestParseValue(t *testing.T) {
	good := map[string]Backend{
		"10.0.0.5:8080": {Addr: netip.MustParseAddrPort("10.0.0.5:8080"), Weight: 1},
		" [::1]:80\n":   {Addr: netip.MustParseAddrPort("[::1]:80"), Weight: 1},
		`{"address": "10.0.0.6:81", "weight": 3}`: {Addr: netip.MustParseAddrPort("10.0.0.6:81"), Weight: 3},
		`{"address": "[::ffff:10.0.0.7]:82"}`:     {Addr: netip.MustParseAddrPort("10.0.0.7:82"), Weight: 1},
	}
	for in, want := range good {
		got, err := ParseValue([]byte(in))
		if err != nil || got != want {
			t.Errorf("ParseValue(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "web.example.org:80", "10.0.0.5", "10.0.0.5:0", "0.0.0.0:80", `{"weight": 2}`,
		`{"address": "10.0.0.5:80", "weight": 0}`, `{"address": "10.0.0.5:80", "wieght": 2}`, `{"address": 5}`, "{"} {
		if b, err := ParseValue([]byte(in)); err == nil {
			t.Errorf("ParseValue(%q) = %+v, want an error", in, b)
		}
	}
}

// TestKeysWarnOncePerRevision: a bad value is skipped and logged once per
// revision of its key; good ones become backends in key order, an address
// given twice once.
func TestKeysWarnOncePerRevision(t *testing.T) {
	rec := logrec.New()
	k := &Keys{Prefix: "/svc/", Logger: rec.Logger()}
	es := []Entry{
		{Key: "/svc/b", Value: []byte("10.0.0.2:80"), Revision: 4},
		{Key: "/svc/a", Value: []byte(`{"address": "10.0.0.1:80", "weight": 5}`), Revision: 3},
		{Key: "/svc/bad", Value: []byte("nope"), Revision: 5},
		{Key: "/svc/c", Value: []byte("10.0.0.2:80"), Revision: 6},
	}
	want := []Backend{{Addr: netip.MustParseAddrPort("10.0.0.1:80"), Weight: 5}, {Addr: netip.MustParseAddrPort("10.0.0.2:80"), Weight: 1}}
	for range 3 {
		if got := k.Backends(es); !slices.Equal(got, want) {
			t.Fatalf("Backends = %+v, want %+v", got, want)
		}
	}
	warned := func() int {
		return len(rec.Find(func(r logrec.Record) bool { return r.Msg == "discovered backend skipped" }))
	}
	if n := warned(); n != 1 {
		t.Errorf("%d warnings for one bad revision, want 1", n)
	}
	es[2].Revision = 7
	k.Backends(es)
	if n := warned(); n != 2 {
		t.Errorf("%d warnings after the bad key's new revision, want 2", n)
	}
}

// TestSRVFromDNSMasq reads SRV records from a real DNS server: the lowest
// priority's targets are primaries, the others backups, weight 0 counts
// as 1, a target name resolves through the same server (every address a
// backend), and a name without records has no backends.
func TestSRVFromDNSMasq(t *testing.T) {
	dns := dnsmasq.Start(t,
		"--srv-host=_web._tcp.example.test,a.example.test,8081,1,10",
		"--srv-host=_web._tcp.example.test,b.example.test,8082,1,0",
		"--srv-host=_web._tcp.example.test,c.example.test,8083,2,7",
		"--host-record=a.example.test,127.0.0.2,::1",
		"--host-record=b.example.test,127.0.0.3",
		"--host-record=c.example.test,127.0.0.4")
	s := SRV{Name: "_web._tcp.example.test", Server: dns.Addr}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	got, err := s.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []Backend{
		{Addr: netip.MustParseAddrPort("127.0.0.2:8081"), Weight: 10},
		{Addr: netip.MustParseAddrPort("127.0.0.3:8082"), Weight: 1},
		{Addr: netip.MustParseAddrPort("127.0.0.4:8083"), Weight: 7, Backup: true},
		{Addr: netip.MustParseAddrPort("[::1]:8081"), Weight: 10},
	}
	if !slices.Equal(got, want) {
		t.Errorf("Read = %+v\nwant %+v", got, want)
	}
	none, err := SRV{Name: "_none._tcp.example.test", Server: dns.Addr}.Read(ctx)
	if err != nil || len(none) != 0 {
		t.Errorf("a name without records: %+v, %v; want none, no error", none, err)
	}
}

// TestSRVFollowKeepsLastOnFailure: Follow hands over the first reading,
// and when the server stops answering it keeps what it had (set is not
// called with nothing) and says so.
func TestSRVFollowKeepsLastOnFailure(t *testing.T) {
	dns := dnsmasq.Start(t, "--srv-host=_web._tcp.example.test,b.example.test,8082,1,1", "--host-record=b.example.test,127.0.0.3")
	rec := logrec.New()
	sets := make(chan []Backend, 10)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		SRV{Name: "_web._tcp.example.test", Server: dns.Addr, Every: time.Second, Logger: rec.Logger()}.Follow(ctx, func(bs []Backend) { sets <- bs })
	}()
	select {
	case bs := <-sets:
		if len(bs) != 1 || bs[0].Addr != netip.MustParseAddrPort("127.0.0.3:8082") {
			t.Fatalf("first set %+v", bs)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no set within 10s")
	}
	dns.Stop()
	rec.WaitN(t, 1, 30*time.Second, "a failed reading logged", func(r logrec.Record) bool { return r.Msg == "discovery failed: keeping the backends found before" })
	cancel()
	<-done
	if len(sets) != 0 {
		t.Errorf("set called after the server went away: %+v", <-sets)
	}
}
