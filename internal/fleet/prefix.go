package fleet

import (
	"context"
	"maps"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// KeyValue is one key under a followed prefix, with its value and the
// revision it was last written at.
type KeyValue struct {
	Key      string
	Value    []byte
	Revision int64
}

// FollowPrefix calls set with every key under prefix, then with all of
// them again after each change (a key whose lease expired is gone), until
// ctx ends. A broken watch starts over from a fresh read, so nothing
// missed while etcd was away is lost; meanwhile the last set stands.
func FollowPrefix(ctx context.Context, cli *clientv3.Client, prefix string, set func([]KeyValue)) {
	for ctx.Err() == nil {
		followPrefix(ctx, cli, prefix, set)
		sleep(ctx, 500*time.Millisecond)
	}
}

// followPrefix reads the keys and watches them until the watch breaks.
func followPrefix(ctx context.Context, cli *clientv3.Client, prefix string, set func([]KeyValue)) {
	gctx, gcancel := context.WithTimeout(ctx, requestTimeout)
	resp, err := cli.Get(gctx, prefix, clientv3.WithPrefix())
	gcancel()
	if err != nil {
		return
	}
	keys := make(map[string]KeyValue, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		keys[string(kv.Key)] = KeyValue{Key: string(kv.Key), Value: kv.Value, Revision: kv.ModRevision}
	}
	set(sortedValues(keys))
	wctx, wcancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer wcancel()
	opts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision + 1)}
	for wr := range cli.Watch(wctx, prefix, opts...) {
		if wr.CompactRevision != 0 || wr.Err() != nil {
			return
		}
		for _, ev := range wr.Events {
			k := string(ev.Kv.Key)
			if ev.Type == clientv3.EventTypeDelete {
				delete(keys, k)
			} else {
				keys[k] = KeyValue{Key: k, Value: ev.Kv.Value, Revision: ev.Kv.ModRevision}
			}
		}
		set(sortedValues(keys))
	}
}

// sortedValues returns the values of keys in key order.
func sortedValues(keys map[string]KeyValue) []KeyValue {
	return slices.SortedFunc(maps.Values(keys), func(a, b KeyValue) int { return strings.Compare(a.Key, b.Key) })
}
