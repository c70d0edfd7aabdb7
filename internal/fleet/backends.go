package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// BackendState is the runtime state of one backend, as the key
// state/backends/{rule}/{route or -}/{address} holds it.
type BackendState struct {
	Rule    string `json:"-"`
	Route   string `json:"-"`                // "" for the rule's own backends
	Address string `json:"-"`                // as configured
	State   string `json:"state"`            // ready, drain or maint
	Weight  int    `json:"weight,omitempty"` // 0: the config's
}

// backendsPrefix is the prefix of the backend state keys.
func (o Options) backendsPrefix() string { return o.Prefix + "state/backends/" }

// BackendKey is the key of a backend's state. Each part is escaped, so a
// unix path's slashes stay inside its part.
func (o Options) BackendKey(rule, route, address string) string {
	if route == "" {
		route = "-"
	}
	return o.backendsPrefix() + url.PathEscape(rule) + "/" + url.PathEscape(route) + "/" + url.PathEscape(address)
}

// parseBackendKey reads a key BackendKey made.
func (o Options) parseBackendKey(key string) (BackendState, bool) {
	parts := strings.Split(strings.TrimPrefix(key, o.backendsPrefix()), "/")
	if len(parts) != 3 {
		return BackendState{}, false
	}
	var st BackendState
	var err [3]error
	st.Rule, err[0] = url.PathUnescape(parts[0])
	st.Route, err[1] = url.PathUnescape(parts[1])
	st.Address, err[2] = url.PathUnescape(parts[2])
	if st.Route == "-" {
		st.Route = ""
	}
	return st, err[0] == nil && err[1] == nil && err[2] == nil
}

// PutBackend writes a backend's state for every instance to apply,
// trying again across a leader election as Push does.
func PutBackend(ctx context.Context, cli *clientv3.Client, o Options, st BackendState) error {
	data, _ := json.Marshal(st) // plain struct: cannot fail
	err := retryWrite(ctx, func(ctx context.Context) error {
		_, err := cli.Put(ctx, o.BackendKey(st.Rule, st.Route, st.Address), string(data))
		return err
	})
	if err != nil {
		return fmt.Errorf("etcd: write backend state: %w", err)
	}
	return nil
}

// decodeBackend reads one key's state; a deleted key is "ready" again.
func (o Options) decodeBackend(key string, value []byte, deleted bool) (BackendState, bool) {
	st, ok := o.parseBackendKey(key)
	if !ok {
		return st, false
	}
	if deleted {
		st.State = "ready"
		return st, true
	}
	var v BackendState
	if json.Unmarshal(value, &v) != nil {
		return st, false
	}
	st.State, st.Weight = v.State, v.Weight
	return st, true
}

// FollowBackends calls set with every stored backend state, then with
// each change, until the Source stops. A broken watch starts over from a
// fresh read, so nothing missed while etcd was away is lost.
func (s *Source) FollowBackends(set func(BackendState)) {
	ctx, cancel := context.WithCancel(context.Background())
	stop := s.cancel
	s.cancel = func() { cancel(); stop() }
	s.done.Add(1)
	go func() {
		defer s.done.Done()
		for ctx.Err() == nil {
			s.followBackends(ctx, set)
			sleep(ctx, 500*time.Millisecond)
		}
	}()
}

// followBackends reads the states and watches them until the watch breaks.
func (s *Source) followBackends(ctx context.Context, set func(BackendState)) {
	gctx, gcancel := context.WithTimeout(ctx, requestTimeout)
	resp, err := s.cli.Get(gctx, s.o.backendsPrefix(), clientv3.WithPrefix())
	gcancel()
	if err != nil {
		return
	}
	for _, kv := range resp.Kvs {
		if st, ok := s.o.decodeBackend(string(kv.Key), kv.Value, false); ok {
			set(st)
		}
	}
	wctx, wcancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer wcancel()
	opts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision + 1)}
	for wr := range s.cli.Watch(wctx, s.o.backendsPrefix(), opts...) {
		if wr.CompactRevision != 0 || wr.Err() != nil {
			return
		}
		for _, ev := range wr.Events {
			if st, ok := s.o.decodeBackend(string(ev.Kv.Key), ev.Kv.Value, ev.Type == clientv3.EventTypeDelete); ok {
				set(st)
			}
		}
	}
}
