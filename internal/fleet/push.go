package fleet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// ErrConflict means a push was refused: the stored config is not at the
// revision the pusher last saw. The error's text names the revision it
// lost to.
var ErrConflict = errors.New("the stored config changed since your last pull or push")

// A write to etcd right after a member died may be lost on its way: a
// member that still takes the dead one for its leader forwards the
// proposal to it, and then waits for it until etcd's own request timeout
// (5 s and two election timeouts). So a write is tried again, every
// attemptTimeout, until writeTimeout: once the members have elected a
// new leader (one to two election timeouts: 1–2 s with etcd's defaults),
// the next attempt commits.
const (
	attemptTimeout = 2 * time.Second
	writeTimeout   = 15 * time.Second
)

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
// An attempt lost to a leader election is made again (see writeTimeout);
// one that was committed after all is recognised by the stored document
// being doc, and counts as done.
func Push(ctx context.Context, cli *clientv3.Client, o Options, doc []byte, base int64, force bool) (int64, error) {
	var rev int64
	err := retryWrite(ctx, func(ctx context.Context) (err error) {
		rev, err = pushOnce(ctx, cli, o, doc, base, force)
		return err
	})
	return rev, err
}

// pushOnce is one attempt of Push.
func pushOnce(ctx context.Context, cli *clientv3.Client, o Options, doc []byte, base int64, force bool) (int64, error) {
	key := o.ConfigKey()
	if force {
		resp, err := cli.Put(ctx, key, string(doc))
		if err != nil {
			return 0, err
		}
		return resp.Header.Revision, nil
	}
	resp, err := cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", base)).
		Then(clientv3.OpPut(key, string(doc))).
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
		if stored > base && bytes.Equal(kvs[0].Value, doc) {
			return stored, nil // an earlier attempt's, committed after all
		}
	}
	return 0, fmt.Errorf("%w: lost to revision %d (you last saw revision %d); pull it, or push with --force",
		ErrConflict, stored, base)
}

// retryWrite runs write, each attempt bounded by attemptTimeout, until it
// succeeds, fails for a reason other than etcd being between leaders or
// slow, or writeTimeout has passed; then it says so.
func retryWrite(ctx context.Context, write func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	for attempt := 1; ; attempt++ {
		actx, acancel := context.WithTimeout(ctx, attemptTimeout)
		err := write(actx)
		acancel()
		if err == nil || !transient(err) {
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("etcd did not commit the write within %v (%d attempts; is a quorum of members up?): %w",
				writeTimeout, attempt, err)
		}
		sleep(ctx, 100*time.Millisecond)
	}
}

// transient reports whether err says that etcd could not commit a write
// now but may a moment later: no leader, a leader change, a timeout.
func transient(err error) bool {
	for _, t := range []error{context.DeadlineExceeded, rpctypes.ErrNoLeader, rpctypes.ErrNotLeader,
		rpctypes.ErrLeaderChanged, rpctypes.ErrStopped, rpctypes.ErrTimeout, rpctypes.ErrTimeoutDueToLeaderFail,
		rpctypes.ErrTimeoutDueToConnectionLost, rpctypes.ErrUnhealthy} {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}
