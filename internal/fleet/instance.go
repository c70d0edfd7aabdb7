package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"sluice/internal/backoff"
)

// InstanceTTL is the lease of an instance's key, in seconds: a sluice
// that stops renewing it leaves instances/ within this long.
const InstanceTTL = 10

// checkInterval is how often the instance's report is looked at for a
// change that comes without a nudge (its listeners' health). Looking
// costs etcd nothing: the key is written only when the report changed;
// the lease, not a rewrite, keeps it alive.
const checkInterval = time.Second

// Instance is one sluice as instances/{name} reports it.
type Instance struct {
	Name      string                `json:"name"`
	Version   string                `json:"version"`
	PID       int                   `json:"pid"`
	Started   time.Time             `json:"started"`
	Revision  int64                 `json:"revision"` // of the config it runs
	Healthy   bool                  `json:"healthy"`
	LastError string                `json:"last_error,omitempty"`
	Health    func() (bool, string) `json:"-"` // the server's listeners
}

// DefaultName is an instance's name unless --instance gives one: the
// host name and the process id.
func DefaultName() string {
	host, err := os.Hostname()
	if err != nil {
		host = "sluice"
	}
	return fmt.Sprintf("%s-%d", host, os.Getpid())
}

// snapshot is the instance's report as it is now.
func (s *Source) snapshot() Instance {
	in := s.inst
	st := s.Status()
	in.Revision, in.LastError, in.Healthy = st.Revision, st.LastError, st.LastError == ""
	if s.health != nil {
		ok, why := s.health()
		if !ok {
			in.Healthy = false
			if in.LastError == "" {
				in.LastError = why
			}
		}
	}
	return in
}

// report keeps the instance's key under a lease: granted, written,
// renewed, and written again only when the report changed. A lost
// lease (etcd away longer than its TTL) is granted anew once etcd
// answers. When ctx ends the lease is revoked, so the key goes at once.
func (s *Source) report(ctx context.Context) {
	var delay backoff.Delay
	for ctx.Err() == nil {
		err := s.reportLease(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			s.logger.Debug("etcd: instance key", "error", err.Error())
		}
		wait, _ := delay.Next()
		sleep(ctx, max(wait, 200*time.Millisecond))
	}
}

// reportLease holds one lease until it is lost or ctx ends.
func (s *Source) reportLease(ctx context.Context) error {
	gctx, cancel := context.WithTimeout(ctx, requestTimeout)
	lease, err := s.cli.Grant(gctx, InstanceTTL)
	cancel()
	if err != nil {
		return err
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.Background(), time.Second)
		s.cli.Revoke(rctx, lease.ID)
		cancel()
	}()
	kctx, stopKeep := context.WithCancel(ctx)
	defer stopKeep()
	alive, err := s.cli.KeepAlive(kctx, lease.ID)
	if err != nil {
		return err
	}
	t := time.NewTicker(checkInterval)
	defer t.Stop()
	var written []byte // the report as the key holds it
	for {
		if data, _ := json.Marshal(s.snapshot()); !bytes.Equal(data, written) { // plain struct: cannot fail
			if err := s.putInstance(ctx, lease.ID, data); err != nil {
				return err
			}
			written = data
		}
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-alive:
			if !ok {
				return fmt.Errorf("lease %x lost", lease.ID)
			}
		case <-s.nudge:
		case <-t.C:
		}
	}
}

// putInstance writes the instance's report, data, under lease.
func (s *Source) putInstance(ctx context.Context, lease clientv3.LeaseID, data []byte) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	_, err := s.cli.Put(ctx, s.o.InstancesPrefix()+s.inst.Name, string(data), clientv3.WithLease(lease))
	return err
}

// Instances reads every live instance's report, by name.
func Instances(ctx context.Context, cli *clientv3.Client, o Options) ([]Instance, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := cli.Get(ctx, o.InstancesPrefix(), clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	var out []Instance
	for _, kv := range resp.Kvs {
		var in Instance
		if json.Unmarshal(kv.Value, &in) == nil {
			out = append(out, in)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
