package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"sluice/internal/admin"
	"sluice/internal/config"
	"sluice/internal/discovery"
	"sluice/internal/fleet"
)

// fleetLink is a daemon's tie to etcd: where its config comes from, and
// the backend states it shares with the other instances.
type fleetLink struct {
	o    fleet.Options
	cli  *clientv3.Client
	src  *fleet.Source
	doc  []byte // the document at start
	rev  int64
	name string // this instance's, under instances/

	mu     sync.Mutex                    // guards states
	states map[string]fleet.BackendState // by key, for a reload to apply again
}

// serveFleet runs the config stored in etcd (or, etcd unreachable, the
// cache file), following its changes until a stop signal.
func serveFleet(opts *options, signals <-chan os.Signal, stderr io.Writer) int {
	fo, err := opts.etcd.options()
	if err != nil {
		fmt.Fprintf(stderr, "sluice: %v\n", err)
		return exitUsage
	}
	cli, err := fleet.Connect(fo)
	if err != nil {
		fmt.Fprintf(stderr, "sluice: etcd: %v\n", err)
		return exitConfig
	}
	defer cli.Close()
	name := opts.etcd.instance
	if name == "" {
		name = fleet.DefaultName()
	}
	inst := fleet.Instance{Name: name, Version: versionString(), PID: os.Getpid(), Started: time.Now().UTC()}
	fl := &fleetLink{o: fo, cli: cli, src: fleet.NewSource(fo, cli, opts.etcd.cache, inst), name: name,
		states: map[string]fleet.BackendState{}}
	fl.doc, fl.rev, err = fl.src.Initial(context.Background())
	if err != nil {
		fmt.Fprintf(stderr, "sluice: cannot start: %v\n", err)
		return exitConfig
	}
	cfg, err := opts.configData(fl.docName(fl.rev), fl.doc)
	if err != nil {
		fmt.Fprintf(stderr, "sluice: %v\n", err)
		return exitConfig
	}
	return serveWith(opts, cfg, signals, stderr, fl)
}

// docName names the document at rev in messages, as a file would be.
func (fl *fleetLink) docName(rev int64) string {
	return fmt.Sprintf("etcd:%s@%d", fl.o.ConfigKey(), rev)
}

// start follows etcd once the daemon serves the document read at start.
func (fl *fleetLink) start(d *daemon) {
	st := fl.src.Status()
	if st.FromCache {
		d.logger.Warn("config: etcd unreachable; serving the cached config until it answers",
			"cache", d.opts.etcd.cache, "revision", fl.rev)
	} else {
		d.logger.Info("config: from etcd", "key", fl.o.ConfigKey(), "revision", fl.rev, "endpoints", fl.o.Endpoints)
	}
	fl.src.Started(fl.doc, fl.rev, fleet.Hooks{
		Logger: d.logger,
		Health: d.srv.Healthy,
		Apply: func(doc []byte, rev int64) error {
			_, err := d.reloadWith(func() (*config.Config, error) { return d.opts.configData(fl.docName(rev), doc) })
			if err == nil {
				// The time of this line is when the push took effect here:
				// the bench's fleet figures read it.
				d.logger.Info("config: applied from etcd", "revision", rev)
			}
			return err
		},
	})
	fl.src.FollowBackends(func(st fleet.BackendState) { fl.applyBackend(d, st) })
}

// applyBackend sets a backend's state as another instance (or "sluice
// backend --etcd") stored it. A backend this instance does not have is
// skipped: its config may not have it yet.
func (fl *fleetLink) applyBackend(d *daemon, st fleet.BackendState) {
	fl.mu.Lock()
	fl.states[fl.o.BackendKey(st.Rule, st.Route, st.Address)] = st
	fl.mu.Unlock()
	if _, err := d.srv.SetBackend(st.Rule, st.Route, st.Address, change(st)); err != nil {
		d.logger.Debug("fleet: backend state not applied here", "rule", st.Rule, "route", st.Route,
			"backend", st.Address, "error", err.Error())
		return
	}
	d.logger.Info("fleet: backend state applied", "rule", st.Rule, "route", st.Route,
		"backend", st.Address, "state", st.State, "weight", st.Weight)
}

// reapply sets the shared backend states again after a reload, which may
// have added the backends they name.
func (fl *fleetLink) reapply(d *daemon) {
	fl.mu.Lock()
	states := make([]fleet.BackendState, 0, len(fl.states))
	for _, st := range fl.states {
		states = append(states, st)
	}
	fl.mu.Unlock()
	for _, st := range states {
		d.srv.SetBackend(st.Rule, st.Route, st.Address, change(st))
	}
}

// stored returns the shared state of a backend, for one that discovery
// adds (server.Options.Stored): a drained backend that left and comes
// back is drained still. nil when sluice runs without etcd.
func (fl *fleetLink) stored() func(rule, route, address string) (admin.BackendChange, bool) {
	if fl == nil {
		return nil
	}
	return func(rule, route, address string) (admin.BackendChange, bool) {
		fl.mu.Lock()
		st, ok := fl.states[fl.o.BackendKey(rule, route, address)]
		fl.mu.Unlock()
		return change(st), ok
	}
}

// change is the admin change that sets st.
func change(st fleet.BackendState) admin.BackendChange {
	ch := admin.BackendChange{State: &st.State}
	if st.Weight > 0 {
		ch.Weight = &st.Weight
	}
	return ch
}

// shareBackend stores a backend's change made through this instance's
// API, now applied here, for every other instance to apply. A change that
// does not name a weight leaves each instance's weight as it is.
func (fl *fleetLink) shareBackend(rule, route, address string, ch admin.BackendChange, now admin.BackendStatus) error {
	st := fleet.BackendState{Rule: rule, Route: route, Address: address, State: now.State}
	if ch.Weight != nil {
		st.Weight = *ch.Weight
	}
	return fleet.PutBackend(context.Background(), fl.cli, fl.o, st)
}

// follower follows etcd keys for backends_from "etcd:...", through the
// fleet's client; nil when sluice runs without etcd.
func (fl *fleetLink) follower() discovery.Follower {
	if fl == nil {
		return nil
	}
	return func(ctx context.Context, prefix string, set func([]discovery.Entry)) {
		fleet.FollowPrefix(ctx, fl.cli, prefix, func(kvs []fleet.KeyValue) {
			es := make([]discovery.Entry, len(kvs))
			for i, kv := range kvs {
				es[i] = discovery.Entry(kv)
			}
			set(es)
		})
	}
}

// view lists the fleet's live instances, as their instances/ keys say,
// for GET /api/v1/fleet and the dashboard's fleet panel.
func (fl *fleetLink) view(ctx context.Context) (admin.Fleet, error) {
	ins, err := fleet.Instances(ctx, fl.cli, fl.o)
	if err != nil {
		return admin.Fleet{}, fmt.Errorf("etcd: read %s: %w", fl.o.InstancesPrefix(), err)
	}
	out := admin.Fleet{Self: fl.name, Instances: make([]admin.FleetInstance, 0, len(ins))}
	for _, in := range ins {
		out.Instances = append(out.Instances, admin.FleetInstance{Name: in.Name, Version: in.Version, PID: in.PID,
			Started: in.Started, Revision: in.Revision, Healthy: in.Healthy, LastError: in.LastError})
	}
	return out, nil
}

// status is what GET /api/v1/status reports of the config's source.
func (d *daemon) status() any {
	src := any(map[string]string{"source": "file", "path": d.opts.configFile})
	if d.opts.configFile == "" {
		src = map[string]string{"source": "flags"}
	}
	if d.fleet != nil {
		src = d.fleet.src.Status()
	}
	return map[string]any{"version": versionString(), "pid": os.Getpid(), "config_source": src}
}
