package access

import (
	"bytes"
	"errors"
	"log/slog"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"
)

// lines are access lines and what the text and JSON handlers make of them,
// without the time and with the duration as <d>. The field names, their
// order and their values are those TCP and UDP wrote before the writer was
// shared, and those docs/OPERATIONS.md shows.
var lines = []struct {
	name       string
	line       Line
	text, json string
}{
	{
		"tcp",
		Line{Rule: "web", Proto: "tcp", Client: netip.MustParseAddrPort("127.0.0.1:33770"), Backend: "127.0.0.1:17001", Up: 6, Down: 6, End: EOF},
		`level=INFO msg=access rule=web proto=tcp client=127.0.0.1:33770 backend=127.0.0.1:17001 up=6 down=6 duration=<d> end=eof`,
		`{"level":"INFO","msg":"access","rule":"web","proto":"tcp","client":"127.0.0.1:33770","backend":"127.0.0.1:17001","up":6,"down":6,"duration":<d>,"end":"eof"}`,
	},
	{
		"tcp, a rule of a range of ports",
		Line{Rule: "game", Proto: "tcp", Client: netip.MustParseAddrPort("127.0.0.1:33770"), Listen: 20005, Backend: "127.0.0.1:30000-30999", Up: 6, Down: 6, End: EOF},
		`level=INFO msg=access rule=game proto=tcp client=127.0.0.1:33770 listen=20005 backend=127.0.0.1:30000-30999 up=6 down=6 duration=<d> end=eof`,
		`{"level":"INFO","msg":"access","rule":"game","proto":"tcp","client":"127.0.0.1:33770","listen":20005,"backend":"127.0.0.1:30000-30999","up":6,"down":6,"duration":<d>,"end":"eof"}`,
	},
	{
		"tcp refused, unix client, error",
		Line{Rule: "locked", Proto: "tcp", End: Rejected("denied"), Err: errors.New(`bad "header"`)},
		`level=INFO msg=access rule=locked proto=tcp client=unix backend="" up=0 down=0 duration=<d> end=rejected:denied error="bad \"header\""`,
		`{"level":"INFO","msg":"access","rule":"locked","proto":"tcp","client":"unix","backend":"","up":0,"down":0,"duration":<d>,"end":"rejected:denied","error":"bad \"header\""}`,
	},
	{
		"tcp routed, tls terminated",
		Line{Rule: "edge", Proto: "tcp", Client: netip.MustParseAddrPort("127.0.0.1:33770"), Backend: "127.0.0.1:17001",
			Route: "app", SNI: "app.example.com", ALPN: []string{"h2", "http/1.1"}, TLSVersion: "1.3", TLSCipher: "TLS_AES_128_GCM_SHA256",
			Up: 6, Down: 6, End: EOF},
		`level=INFO msg=access rule=edge proto=tcp client=127.0.0.1:33770 backend=127.0.0.1:17001 route=app sni=app.example.com alpn=h2,http/1.1 tls_version=1.3 tls_cipher=TLS_AES_128_GCM_SHA256 up=6 down=6 duration=<d> end=eof`,
		`{"level":"INFO","msg":"access","rule":"edge","proto":"tcp","client":"127.0.0.1:33770","backend":"127.0.0.1:17001","route":"app","sni":"app.example.com","alpn":"h2,http/1.1","tls_version":"1.3","tls_cipher":"TLS_AES_128_GCM_SHA256","up":6,"down":6,"duration":<d>,"end":"eof"}`,
	},
	{
		"tcp routed, no route",
		Line{Rule: "edge", Proto: "tcp", Client: netip.MustParseAddrPort("127.0.0.1:33770"), SNI: "x.example.com", End: Rejected(ReasonNoRoute)},
		`level=INFO msg=access rule=edge proto=tcp client=127.0.0.1:33770 backend="" sni=x.example.com up=0 down=0 duration=<d> end=rejected:no-route`,
		`{"level":"INFO","msg":"access","rule":"edge","proto":"tcp","client":"127.0.0.1:33770","backend":"","sni":"x.example.com","up":0,"down":0,"duration":<d>,"end":"rejected:no-route"}`,
	},
	{
		"udp",
		Line{Rule: "dns", Proto: "udp", Client: netip.MustParseAddrPort("[2001:db8::1]:60655"), Backend: "127.0.0.1:17002", Up: 7, Down: 8,
			Datagrams: &Datagrams{Up: 1, Down: 2}, End: IdleTimeout},
		`level=INFO msg=access rule=dns proto=udp client=[2001:db8::1]:60655 backend=127.0.0.1:17002 up=7 down=8 dgrams_up=1 dgrams_down=2 duration=<d> end=idle-timeout`,
		`{"level":"INFO","msg":"access","rule":"dns","proto":"udp","client":"[2001:db8::1]:60655","backend":"127.0.0.1:17002","up":7,"down":8,"dgrams_up":1,"dgrams_down":2,"duration":<d>,"end":"idle-timeout"}`,
	},
	{
		"udp refused, dropped, error",
		Line{Rule: "dns", Proto: "udp", Client: netip.MustParseAddrPort("127.0.0.1:60655"),
			Datagrams: &Datagrams{Dropped: 3}, End: Rejected("max-sessions"), Err: errors.New("x y")},
		`level=INFO msg=access rule=dns proto=udp client=127.0.0.1:60655 backend="" up=0 down=0 dgrams_up=0 dgrams_down=0 duration=<d> end=rejected:max-sessions dropped=3 error="x y"`,
		`{"level":"INFO","msg":"access","rule":"dns","proto":"udp","client":"127.0.0.1:60655","backend":"","up":0,"down":0,"dgrams_up":0,"dgrams_down":0,"duration":<d>,"end":"rejected:max-sessions","dropped":3,"error":"x y"}`,
	},
}

// withoutTime drops the record's time, which a test cannot know.
func withoutTime(_ []string, a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}

// TestLine: the writer's line, field by field, in the text and the JSON
// handler. The duration runs from Start to the write.
func TestLine(t *testing.T) {
	opts := &slog.HandlerOptions{ReplaceAttr: withoutTime}
	textDuration := regexp.MustCompile(`duration=(2\.\d{6})`)
	jsonDuration := regexp.MustCompile(`"duration":(2\.\d{6})`)
	for _, c := range lines {
		for _, h := range []struct {
			name     string
			handler  func(*bytes.Buffer) slog.Handler
			want     string
			duration *regexp.Regexp
		}{
			{"text", func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, opts) }, c.text, textDuration},
			{"json", func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, opts) }, c.json, jsonDuration},
		} {
			var buf bytes.Buffer
			l := c.line
			l.Start = time.Now().Add(-2 * time.Second)
			l.Log(slog.New(h.handler(&buf)))
			got := strings.TrimSuffix(buf.String(), "\n")
			m := h.duration.FindStringSubmatchIndex(got)
			if m == nil {
				t.Errorf("%s, %s: %s\nhas no duration of 2.xxxxxx seconds", c.name, h.name, got)
				continue
			}
			got = got[:m[2]] + "<d>" + got[m[3]:]
			if got != h.want {
				t.Errorf("%s, %s:\n got %s\nwant %s", c.name, h.name, got, h.want)
			}
		}
	}
}

// TestLineOff: with access lines off (a level above info), Log writes
// nothing and formats nothing: not even the client's address.
func TestLineOff(t *testing.T) {
	var buf bytes.Buffer
	off := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	l := lines[3].line
	l.Start = time.Now()
	if n := testing.AllocsPerRun(100, func() { l.Log(off) }); n != 0 {
		t.Errorf("Log with access lines off allocates %v times", n)
	}
	if buf.Len() != 0 {
		t.Errorf("Log with access lines off wrote %q", buf.String())
	}
}

// TestClientName: a client with no address (a unix-socket client) is
// written "unix"; others ip:port.
func TestClientName(t *testing.T) {
	for ap, want := range map[netip.AddrPort]string{
		{}:                                      "unix",
		netip.MustParseAddrPort("10.0.0.1:80"):  "10.0.0.1:80",
		netip.MustParseAddrPort("[::1]:53"):     "[::1]:53",
		netip.MustParseAddrPort("0.0.0.0:1234"): "0.0.0.0:1234",
	} {
		if got := ClientName(ap); got != want {
			t.Errorf("ClientName(%v) = %q, want %q", ap, got, want)
		}
	}
}

// TestRejected: a refusal's end is "rejected:" and its reason.
func TestRejected(t *testing.T) {
	if got := Rejected("rate-limited"); got != "rejected:rate-limited" {
		t.Errorf("Rejected(rate-limited) = %q", got)
	}
}
