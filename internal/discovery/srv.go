package discovery

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// lookupTimeout bounds one reading of the SRV records and their targets.
const lookupTimeout = 10 * time.Second

// SRV makes backends of the SRV records of a DNS name, as RFC 2782 reads
// them: the records of the lowest priority are the primaries, all others
// backups; a record's weight is its backends' weight (0 counts as 1).
// Each target is resolved through the same server, and each of its
// addresses is a backend with the record's port, weight and priority; a
// target "." (the service is not there), or one that does not exist,
// gives none.
type SRV struct {
	Name string
	// Server is the DNS server asked, over UDP (TCP for long answers);
	// invalid: the system's resolver.
	Server netip.AddrPort
	// Every is how often the records are read again (Go's resolver does
	// not tell their TTL); at least a second.
	Every  time.Duration
	Logger *slog.Logger // with the rule (and route) named; nil: discards
}

// Follow reads the records at once and then every Every until ctx ends,
// calling set each time the backends they make change. A name that does
// not exist (or has no SRV records) makes none; a failed reading keeps
// the backends of the last good one, and is logged.
func (s SRV) Follow(ctx context.Context, set func([]Backend)) {
	logger := s.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	from := "srv:" + s.Name
	var last []Backend
	first, failing := true, false
	t := time.NewTicker(max(s.Every, time.Second))
	defer t.Stop()
	for {
		bs, err := s.Read(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil && !failing:
			logger.Warn("discovery failed: keeping the backends found before", "from", from, "backends", len(last), "error", err.Error())
		case err == nil && (first || !slices.Equal(bs, last)):
			first, last = false, bs
			set(bs) // before the line: once it is logged, the pool has them
			logger.Info("backends discovered", "from", from, "backends", len(bs))
		}
		failing = err != nil
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Read reads the records once and returns the backends they make.
func (s SRV) Read(ctx context.Context) ([]Backend, error) {
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	r := s.resolver()
	_, recs, err := r.LookupSRV(ctx, "", "", s.Name)
	if notFound(err) {
		return nil, nil
	}
	if err != nil && len(recs) == 0 {
		return nil, err
	}
	var out []Backend
	for _, rec := range recs {
		addrs, err := lookupTarget(ctx, r, rec.Target)
		if err != nil && !notFound(err) {
			return nil, err
		}
		for _, a := range addrs {
			b := Backend{Addr: netip.AddrPortFrom(a.Unmap(), rec.Port), Weight: max(int(rec.Weight), 1), Backup: rec.Priority != recs[0].Priority}
			if !slices.ContainsFunc(out, func(o Backend) bool { return o.Addr == b.Addr }) {
				out = append(out, b)
			}
		}
	}
	slices.SortFunc(out, func(a, b Backend) int { return a.Addr.Compare(b.Addr) })
	return out, nil
}

// notFound reports whether err says a name does not exist (or has no
// records of the kind asked for).
func notFound(err error) bool {
	dnsErr := (*net.DNSError)(nil)
	return errors.As(err, &dnsErr) && dnsErr.IsNotFound
}

// lookupTarget returns the addresses of a record's target: none for ".",
// the address itself for an IP literal, else what r resolves it to.
func lookupTarget(ctx context.Context, r *net.Resolver, target string) ([]netip.Addr, error) {
	host := strings.TrimSuffix(target, ".")
	if host == "" {
		return nil, nil
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a}, nil
	}
	return r.LookupNetIP(ctx, "ip", host)
}

// resolver returns the resolver that asks Server, or the system's.
func (s SRV) resolver() *net.Resolver {
	if !s.Server.IsValid() {
		return net.DefaultResolver
	}
	server := s.Server.String()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, server)
	}}
}
