package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"sluice/internal/backoff"
)

// probeInterval is how often a Source asks etcd whether it is there.
const probeInterval = time.Second

// Applier applies a config document read at revision rev, as a reload
// does; an error means the document was rejected and nothing changed.
type Applier func(doc []byte, rev int64) error

// Status is what a Source reports of itself, for the admin API and the
// instance's key.
type Status struct {
	Source    string   `json:"source"` // "etcd"
	Endpoints []string `json:"endpoints"`
	Key       string   `json:"key"`
	Connected bool     `json:"connected"`
	Revision  int64    `json:"revision"`             // of the config running
	Seen      int64    `json:"seen_revision"`        // newest offered, applied or not
	FromCache bool     `json:"from_cache,omitempty"` // running what the cache held at start
	LastError string   `json:"last_error,omitempty"` // of the newest document, if rejected
}

// Hooks are what a Source calls: Apply for each newer document, Health
// for the instance's report; Logger receives its lines.
type Hooks struct {
	Apply  Applier
	Health func() (bool, string)
	Logger *slog.Logger
}

// Source reads the config document from etcd, follows its changes and
// hands each one to an Applier; it keeps the cache file and reports the
// instance under instances/.
type Source struct {
	o      Options
	cli    *clientv3.Client
	cache  string // file; "" for none
	logger *slog.Logger
	inst   Instance

	applying sync.Mutex // serializes offers, from the watch and the probe
	apply    Applier
	health   func() (bool, string)

	mu     sync.Mutex // guards st
	st     Status
	nudge  chan struct{} // the instance's key is due for a rewrite
	cancel context.CancelFunc
	done   sync.WaitGroup
}

// NewSource makes a Source for the instance inst, which reads through cli
// and keeps its cache in the file cache ("" for none).
func NewSource(o Options, cli *clientv3.Client, cache string, inst Instance) *Source {
	return &Source{o: o, cli: cli, cache: cache, logger: slog.New(slog.DiscardHandler), inst: inst,
		st:    Status{Source: "etcd", Endpoints: o.Endpoints, Key: o.ConfigKey()},
		nudge: make(chan struct{}, 1)}
}

// Initial reads the config document at start: from etcd, or when etcd
// does not answer, from the cache file (Status().FromCache says so). With
// neither it fails, saying why of both.
func (s *Source) Initial(ctx context.Context) ([]byte, int64, error) {
	doc, rev, err := s.get(ctx)
	if err == nil {
		s.setConnected(true)
		return doc, rev, nil
	}
	if s.cache == "" {
		return nil, 0, fmt.Errorf("etcd: %w; no --etcd-cache to fall back on", err)
	}
	doc, rev, cerr := ReadCache(s.cache)
	if cerr != nil {
		return nil, 0, fmt.Errorf("etcd: %w; cache: %w", err, cerr)
	}
	s.mu.Lock()
	s.st.FromCache = true
	s.mu.Unlock()
	return doc, rev, nil
}

// errNoConfig means etcd answered but holds no config document.
var errNoConfig = errors.New("no config stored: write one with 'sluice cluster push'")

// get reads the config document and its mod revision.
func (s *Source) get(ctx context.Context) ([]byte, int64, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := s.cli.Get(ctx, s.o.ConfigKey())
	if err != nil {
		return nil, 0, fmt.Errorf("read %s: %w", s.o.ConfigKey(), err)
	}
	if len(resp.Kvs) == 0 {
		return nil, 0, fmt.Errorf("%s: %w", s.o.ConfigKey(), errNoConfig)
	}
	return resp.Kvs[0].Value, resp.Kvs[0].ModRevision, nil
}

// Started records that the document at rev runs (what Initial returned,
// applied by the caller), writes the cache, and starts following etcd:
// each newer document goes to h.Apply. Stop ends it.
func (s *Source) Started(doc []byte, rev int64, h Hooks) {
	s.mu.Lock()
	s.st.Revision, s.st.Seen = rev, rev
	fromCache := s.st.FromCache
	s.mu.Unlock()
	if !fromCache {
		s.writeCache(doc, rev)
	}
	s.apply, s.health = h.Apply, h.Health
	if h.Logger != nil {
		s.logger = h.Logger
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.done.Add(3)
	go func() { defer s.done.Done(); s.watch(ctx) }()
	go func() { defer s.done.Done(); s.probe(ctx) }()
	go func() { defer s.done.Done(); s.report(ctx) }()
}

// Stop ends following etcd and removes the instance's key.
func (s *Source) Stop() {
	if s.cancel != nil {
		s.cancel()
		s.done.Wait()
	}
}

// Status reports the source as it is now.
func (s *Source) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.st
	st.Endpoints = append([]string(nil), st.Endpoints...)
	return st
}

// Current reads the stored document now, for a reload asked for by
// SIGHUP or the admin API.
func (s *Source) Current(ctx context.Context) ([]byte, error) {
	doc, _, err := s.get(ctx)
	return doc, err
}

// offer applies doc, the document at rev, unless a document at rev or a
// newer one was offered already.
func (s *Source) offer(doc []byte, rev int64) {
	s.applying.Lock()
	defer s.applying.Unlock()
	s.mu.Lock()
	if rev <= s.st.Seen {
		s.mu.Unlock()
		return
	}
	s.st.Seen = rev
	s.mu.Unlock()
	err := s.apply(doc, rev)
	s.mu.Lock()
	if err != nil {
		s.st.LastError = err.Error()
	} else {
		s.st.Revision, s.st.LastError, s.st.FromCache = rev, "", false
	}
	s.mu.Unlock()
	if err == nil {
		s.writeCache(doc, rev)
	}
	s.poke()
}

// writeCache keeps doc in the cache file, if there is one.
func (s *Source) writeCache(doc []byte, rev int64) {
	if s.cache == "" {
		return
	}
	if err := WriteCache(s.cache, doc, rev); err != nil {
		s.logger.Error("etcd: cannot write the config cache", "cache", s.cache, "error", err.Error())
	}
}

// poke asks for the instance's key to be written again.
func (s *Source) poke() {
	select {
	case s.nudge <- struct{}{}:
	default:
	}
}

// setConnected records whether etcd answers, logging a change.
func (s *Source) setConnected(up bool) (changed bool) {
	s.mu.Lock()
	changed = s.st.Connected != up
	s.st.Connected = up
	s.mu.Unlock()
	return changed
}

// watch follows the config key from the revision after the running one.
// A broken watch is set up again after a back-off; one whose revision was
// compacted away first reads the key afresh (catchUp).
func (s *Source) watch(ctx context.Context) {
	var delay backoff.Delay
	for ctx.Err() == nil {
		next := s.Status().Seen + 1
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		for resp := range s.cli.Watch(wctx, s.o.ConfigKey(), clientv3.WithRev(next)) {
			if resp.CompactRevision != 0 || resp.Err() != nil {
				break
			}
			delay.Reset()
			for _, ev := range resp.Events {
				if ev.Type == clientv3.EventTypeDelete {
					s.logger.Warn("etcd: the config key was deleted; the running config stays", "key", s.o.ConfigKey())
					continue
				}
				s.offer(ev.Kv.Value, ev.Kv.ModRevision)
			}
		}
		cancel()
		if ctx.Err() != nil {
			return
		}
		wait, _ := delay.Next()
		sleep(ctx, max(wait, 100*time.Millisecond))
		s.catchUp(ctx)
	}
}

// catchUp reads the key and offers what it holds.
func (s *Source) catchUp(ctx context.Context) {
	doc, rev, err := s.get(ctx)
	if err == nil {
		s.offer(doc, rev)
	}
}

// probe asks etcd every probeInterval whether it answers (a linearizable
// read, so a member cut off from its quorum does not count), logs the
// changes, and catches up when it is back.
func (s *Source) probe(ctx context.Context) {
	t := time.NewTicker(probeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, probeInterval)
		_, err := s.cli.Get(pctx, s.o.ConfigKey(), clientv3.WithCountOnly())
		cancel()
		if ctx.Err() != nil {
			return
		}
		if !s.setConnected(err == nil) {
			continue
		}
		if err != nil {
			s.logger.Warn("etcd: lost; serving the running config and retrying", "error", err.Error())
			continue
		}
		s.logger.Info("etcd: connected again; catching up")
		s.catchUp(ctx)
		s.poke()
	}
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
