package fleet

import (
	"context"
	"errors"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// ErrConflict means a push was refused: the stored config is not at the
// revision the pusher last saw. The error's text names the revision it
// lost to.
var ErrConflict = errors.New("the stored config changed since your last pull or push")

// Pull reads the stored config document and its mod revision.
func Pull(ctx context.Context, cli *clientv3.Client, o Options) ([]byte, int64, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := cli.Get(ctx, o.ConfigKey())
	if err != nil {
		return nil, 0, err
	}
	if len(resp.Kvs) == 0 {
		return nil, 0, fmt.Errorf("%s: %w", o.ConfigKey(), errNoConfig)
	}
	return resp.Kvs[0].Value, resp.Kvs[0].ModRevision, nil
}

// Push writes doc as the config document, in one transaction that
// succeeds only if the stored document's mod revision is still base (0:
// only if there is none), unless force. It returns the new revision; a
// refusal is an error wrapping ErrConflict that names the stored revision.
func Push(ctx context.Context, cli *clientv3.Client, o Options, doc []byte, base int64, force bool) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	key := o.ConfigKey()
	put := clientv3.OpPut(key, string(doc))
	if force {
		resp, err := cli.Put(ctx, key, string(doc))
		if err != nil {
			return 0, err
		}
		return resp.Header.Revision, nil
	}
	resp, err := cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", base)).
		Then(put).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return 0, err
	}
	if resp.Succeeded {
		return resp.Header.Revision, nil
	}
	stored := int64(0)
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		stored = kvs[0].ModRevision
	}
	return 0, fmt.Errorf("%w: lost to revision %d (you last saw revision %d); pull it, or push with --force",
		ErrConflict, stored, base)
}
