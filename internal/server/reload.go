package server

import (
	"errors"
	"reflect"
	"slices"

	"sluice/internal/config"
)

// Report says what a reload changed, by rule name.
type Report struct {
	Added     []string `json:"added"`
	Removed   []string `json:"removed"`
	Changed   []string `json:"changed"`
	Unchanged []string `json:"unchanged"`
}

// ErrStopping is Reload's error once Shutdown has begun: the rules are
// draining and stay as they are.
var ErrStopping = errors.New("sluice is shutting down: nothing reloaded")

// change is one rule's part in a reload.
type change struct {
	old, new *rule // old nil: added; new holds sockets bound for the change
	rc       config.Rule
	// tcp and udp are the addresses (of one port each, or a unix path)
	// bound anew for the TCP and UDP sides: every port of the listen
	// address but those the running rule keeps (see ports.go).
	tcp, udp []config.Address
	renamed  string // the old name, when old is a removed rule taken over
}

// listenKey says where and how a rule listens.
func listenKey(rc config.Rule) string {
	return string(rc.Protocol) + " " + rc.Listen.String()
}

// Reload applies cfg by diff: unchanged rules are left alone with their
// listeners and connections; changed rules take the new settings for new
// connections (re-binding only a listener whose address or protocol
// changed); removed rules stop accepting and drain; new rules start. Every
// new socket is bound before anything changes, so a reload that fails
// changes nothing, and the error lists every problem.
//
// It goes in four steps: plan (read every TLS file, see what changes, no
// sockets), bind (every new socket, or nothing), commit (the new rules become the running ones, under
// the server's mu) and start/retire (new rules serve, removed ones drain).
func (s *Server) Reload(cfg *config.Config) (Report, error) {
	s.reloading.Lock()
	defer s.reloading.Unlock()
	old, err := s.runningRules()
	if err != nil {
		return Report{}, err
	}
	files, err := loadTLS(cfg) // every rule's, unchanged ones too: renewed certificates
	if err != nil {
		return Report{}, err
	}
	changes, unchanged := s.plan(old, cfg, files)
	if err := bindChanges(changes); err != nil {
		return Report{}, err
	}
	s.handOverUnixPaths(changes)
	rep, started := s.commit(cfg, old, changes, files) // old keeps the removed rules
	rep.Unchanged = unchanged
	s.startAndRetire(started, old, changes)
	slices.Sort(rep.Removed)
	s.logger.Info("reloaded", "added", rep.Added, "removed", rep.Removed, "changed", rep.Changed, "unchanged", len(rep.Unchanged))
	return rep, nil
}

// runningRules returns the running rules by name, or ErrStopping once
// Shutdown has begun.
func (s *Server) runningRules() (map[string]*rule, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return nil, ErrStopping
	}
	old := make(map[string]*rule, len(s.rules))
	for _, r := range s.rules {
		old[r.cfg.Name] = r
	}
	return old, nil
}

// plan compares cfg with the running rules (old, by name). It returns a
// change for every rule of cfg that is new or differs, in config order,
// with the new rule prepared but no socket bound, and the names of the
// rules that stay as they are. A rule whose config is the same but whose
// [backend_tls] files now hold something else (a renewed CA or client
// certificate) changes too: its pools are built anew, as for new settings.
func (s *Server) plan(old map[string]*rule, cfg *config.Config, files map[string]tlsFiles) ([]*change, []string) {
	gone := goneByListen(old, cfg)
	unchanged := []string{}
	var changes []*change
	for _, rc := range cfg.Rules {
		o := old[rc.Name]
		if o != nil && reflect.DeepEqual(o.cfg, rc) && !o.backendTLSChanged(files[rc.Name]) {
			unchanged = append(unchanged, rc.Name)
			continue
		}
		renamed := ""
		if o == nil {
			if o = gone[listenKey(rc)]; o != nil {
				delete(gone, listenKey(rc))
				renamed = o.cfg.Name
			}
		}
		changes = append(changes, s.planChange(o, rc, renamed))
	}
	return changes, unchanged
}

// goneByListen returns the running rules whose names cfg no longer has, by
// listen address and protocol. A new rule with the same address and
// protocol as one of them renames it rather than replacing it: it takes
// over its sockets and live connections (binding anew would find them in
// use).
func goneByListen(old map[string]*rule, cfg *config.Config) map[string]*rule {
	names := make(map[string]bool, len(cfg.Rules))
	for _, rc := range cfg.Rules {
		names[rc.Name] = true
	}
	gone := map[string]*rule{}
	for name, r := range old {
		if !names[name] {
			gone[listenKey(r.cfg)] = r
		}
	}
	return gone
}

// planChange prepares the change of the running rule o (nil: none) to rc:
// which ports of its sides need a new socket.
func (s *Server) planChange(o *rule, rc config.Rule, renamed string) *change {
	ch := &change{old: o, rc: rc, new: s.newRule(rc), renamed: renamed}
	var old config.Address
	var hadTCP, hadUDP bool
	if o != nil {
		old, hadTCP, hadUDP = o.cfg.Listen, o.cfg.Protocol.HasTCP(), o.cfg.Protocol.HasUDP()
	}
	if rc.Protocol.HasTCP() {
		ch.tcp = portsToBind(old, rc.Listen, hadTCP)
	}
	if rc.Protocol.HasUDP() {
		ch.udp = portsToBind(old, rc.Listen, hadUDP)
	}
	return ch
}

// bindChanges binds every socket the changes need. If any cannot be bound,
// it closes them all and returns every problem.
func bindChanges(changes []*change) error {
	var errs []error
	for _, ch := range changes {
		if err := ch.new.bindSides(ch.tcp, ch.udp); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	for _, ch := range changes {
		ch.new.closeListeners()
	}
	return errors.Join(errs...)
}

// commit makes cfg's rules the running ones, under the server's mu:
// running rules that stay are kept, changed ones take their change, new
// ones are listed to start, and removed ones are marked retired; it
// deletes from old every rule that stays, leaving the removed ones. Every
// rule takes its TLS files as read (see setTLS). It returns the report but
// for Unchanged, and the rules to start.
func (s *Server) commit(cfg *config.Config, old map[string]*rule, changes []*change, files map[string]tlsFiles) (Report, []*rule) {
	rep := Report{Added: []string{}, Removed: []string{}, Changed: []string{}}
	s.mu.Lock()
	defer s.mu.Unlock()
	var rules, started []*rule
	for _, rc := range cfg.Rules {
		if r := old[rc.Name]; r != nil {
			r.setTLS(files[rc.Name]) // a changed rule's TCP side is rebuilt by apply
			rules = append(rules, r)
			delete(old, rc.Name)
		}
	}
	for _, ch := range changes {
		if ch.old == nil {
			ch.new.setTLS(files[ch.rc.Name])
			rules = append(rules, ch.new)
			started = append(started, ch.new)
			rep.Added = append(rep.Added, ch.rc.Name)
			continue
		}
		if ch.renamed != "" {
			rules = append(rules, ch.old)
			delete(old, ch.renamed)
			rep.Removed = append(rep.Removed, ch.renamed)
		}
		ch.old.setTLS(files[ch.rc.Name]) // a rule taken over by a new name
		ch.old.apply(ch)
		rep.Changed = append(rep.Changed, ch.rc.Name)
	}
	for name, r := range old {
		s.retired[r] = true
		rep.Removed = append(rep.Removed, name)
	}
	s.rules, s.cfg = orderLike(rules, cfg.Rules), cfg
	return rep, started
}

// startAndRetire starts the new rules, drains the removed ones in the
// background, and forgets the old names of renamed rules.
func (s *Server) startAndRetire(started []*rule, removed map[string]*rule, changes []*change) {
	for _, r := range started {
		r.run()
	}
	for _, r := range removed {
		s.retire(r)
	}
	for _, ch := range changes {
		if ch.renamed != "" {
			s.metrics.Forget(ch.renamed)
			s.logger.Info("rule renamed: the new name took over its sockets and connections", "from", ch.renamed, "to", ch.rc.Name)
		}
	}
}

// apply makes a running rule take the settings of ch. Called with the
// server's mu held.
func (r *rule) apply(ch *change) {
	if r.cfg.Name != ch.rc.Name {
		r.metrics = ch.new.metrics
	}
	old := r.cfg.Listen
	r.cfg = ch.rc
	r.metrics.SetUDP(ch.rc.Protocol.HasUDP())
	r.logger = ch.new.logger
	if st := r.s.poolSettings(ch.rc, r.backendTLS[""]); !st.Equal(r.pool.Settings()) {
		oldPool := r.pool
		r.pool = r.s.startPool(st, ch.rc.BackendsFrom, oldPool, ch.rc.Name, "")
		oldPool.Stop()
	}
	r.updateRoutes()
	r.gate.Update(policy(ch.rc))
	r.tcp.Update(r.tcpRule())
	r.applyTCP(ch, old)
	r.applyUDP(ch, old)
}

// applyTCP closes the rule's listeners on the ports that the change from
// the listen address old leaves out (their connections carry on until
// they end) and serves the new ones. Called with the server's mu held.
func (r *rule) applyTCP(ch *change, old config.Address) {
	tcp := ch.rc.Protocol.HasTCP()
	kept := r.lns[:0]
	for _, ln := range r.lns {
		if tcp && keeps(old, ch.rc.Listen, portOf(ln.Addr())) {
			kept = append(kept, ln)
			continue
		}
		r.tcp.CloseListener(ln)
		delete(r.failed, ln)
	}
	clear(r.lns[len(kept):])
	r.lns = append(kept, ch.new.lns...)
	for _, ln := range ch.new.lns {
		r.serve(ln)
	}
	if len(ch.new.lns) > 0 {
		r.logger.Info("listening", "listen", ch.rc.Listen.String(), "proto", "tcp", "new_sockets", len(ch.new.lns), "backends", len(ch.rc.Backends))
	}
}

// applyUDP stops reading the rule's UDP sockets on the ports that the
// change from the listen address old leaves out (their sessions drain in
// the background), updates the kept ones and serves the new ones. Called
// with the server's mu held.
func (r *rule) applyUDP(ch *change, old config.Address) {
	udp := ch.rc.Protocol.HasUDP()
	kept := r.udp[:0]
	for _, u := range r.udp {
		if udp && keeps(old, ch.rc.Listen, u.addr.Port) {
			u.update(r)
			kept = append(kept, u)
			continue
		}
		u.closeListener()
		go u.drain()
	}
	clear(r.udp[len(kept):])
	r.udp = append(kept, ch.new.udp...)
	for _, u := range ch.new.udp {
		u.start(r.s, r, r.logger)
	}
	if len(ch.new.udp) > 0 {
		r.logger.Info("listening", "listen", ch.rc.Listen.String(), "proto", "udp", "new_sockets", len(ch.new.udp), "backends", len(ch.rc.Backends))
	}
}

// retire stops a removed rule accepting and drains it in the background.
func (s *Server) retire(r *rule) {
	r.closeListeners()
	s.drains.Add(1)
	go func() {
		defer s.drains.Done()
		r.stop()
		s.mu.Lock()
		delete(s.retired, r)
		reused := slices.ContainsFunc(s.rules, func(o *rule) bool { return o.cfg.Name == r.cfg.Name })
		s.mu.Unlock()
		if !reused {
			s.metrics.Forget(r.cfg.Name)
		}
	}()
}

// orderLike sorts rules into the order of the config.
func orderLike(rules []*rule, order []config.Rule) []*rule {
	pos := make(map[string]int, len(order))
	for i, rc := range order {
		pos[rc.Name] = i
	}
	slices.SortFunc(rules, func(a, b *rule) int { return pos[a.cfg.Name] - pos[b.cfg.Name] })
	return rules
}
