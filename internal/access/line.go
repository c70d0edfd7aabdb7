package access

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"time"
)

// DefaultRoute is the name of a routed rule's own backends, its default
// route, in access lines, metrics and the API; no route of the config may
// be called so.
const DefaultRoute = "default"

// Line is the access line of one finished TCP connection or UDP session,
// or of one refused client. Its fields are written in this order, at level
// info with msg "access" (docs/OPERATIONS.md describes each).
type Line struct {
	Rule   string
	Proto  string         // "tcp" or "udp"
	Client netip.AddrPort // the zero AddrPort: a unix-socket client (see ClientName)
	// Listen is the port the client came in on, on a rule that listens on
	// a range of ports; 0, and not written, on a rule of one port.
	Listen  uint16
	Backend string // the backend as configured; empty when none was reached
	// Route is the route a routed rule's client took (the default
	// route's name for the rule's own backends); empty, and not written,
	// on a rule without routes or when no route was chosen.
	Route string
	// SNI and ALPN are the server name and protocols of the client's TLS
	// ClientHello, when sluice read one; not written when empty.
	SNI  string
	ALPN []string
	// TLSVersion and TLSCipher describe the TLS session sluice terminated
	// for the client ("1.3", "TLS_AES_128_GCM_SHA256"); not written when
	// empty.
	TLSVersion, TLSCipher string
	Up                    int64 // bytes client → backend
	Down                  int64 // bytes backend → client
	// Datagrams are a UDP line's datagram counts; nil on a TCP line.
	Datagrams *Datagrams
	Start     time.Time // the accept or first datagram; the duration runs from it to Log
	End       End
	Err       error // the error behind the end; nil: none, and no error field
}

// Datagrams are the datagram counts of a UDP access line.
type Datagrams struct {
	Up, Down int64 // passed on each way: dgrams_up, dgrams_down
	Dropped  int64 // not passed on: dropped, written only when not zero
}

// ClientName returns a client as access lines and the connection table name
// it: ip:port, or "unix" for a client without an address.
func ClientName(client netip.AddrPort) string {
	if !client.IsValid() {
		return "unix"
	}
	return client.String()
}

// Log writes l to logger. Nothing is formatted when logger leaves out level
// info, which turns access lines off.
func (l *Line) Log(logger *slog.Logger) {
	if logger.Enabled(context.Background(), slog.LevelInfo) {
		l.write(logger)
	}
}

// write formats and writes the line. It is apart from Log so that its large
// frame costs nothing when access lines are off.
func (l *Line) write(logger *slog.Logger) {
	attrs := make([]slog.Attr, 0, 18)
	attrs = append(attrs,
		slog.String("rule", l.Rule),
		slog.String("proto", l.Proto),
		slog.String("client", ClientName(l.Client)),
	)
	if l.Listen != 0 {
		attrs = append(attrs, slog.Int("listen", int(l.Listen)))
	}
	attrs = append(attrs, slog.String("backend", l.Backend))
	attrs = l.appendRouted(attrs)
	attrs = append(attrs,
		slog.Int64("up", l.Up),
		slog.Int64("down", l.Down),
	)
	if d := l.Datagrams; d != nil {
		attrs = append(attrs, slog.Int64("dgrams_up", d.Up), slog.Int64("dgrams_down", d.Down))
	}
	attrs = append(attrs,
		Seconds("duration", time.Since(l.Start)),
		slog.String("end", string(l.End)),
	)
	if d := l.Datagrams; d != nil && d.Dropped > 0 {
		attrs = append(attrs, slog.Int64("dropped", d.Dropped))
	}
	if l.Err != nil {
		attrs = append(attrs, slog.String("error", l.Err.Error()))
	}
	logger.LogAttrs(context.Background(), slog.LevelInfo, "access", attrs...)
}

// appendRouted appends the fields of a routed or TLS connection that are
// set: route, sni, alpn (comma-separated), tls_version, tls_cipher.
func (l *Line) appendRouted(attrs []slog.Attr) []slog.Attr {
	for _, f := range [...]struct{ key, value string }{
		{"route", l.Route}, {"sni", l.SNI}, {"alpn", strings.Join(l.ALPN, ",")},
		{"tls_version", l.TLSVersion}, {"tls_cipher", l.TLSCipher},
	} {
		if f.value != "" {
			attrs = append(attrs, slog.String(f.key, f.value))
		}
	}
	return attrs
}
