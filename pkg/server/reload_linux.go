package server

import (
	"slices"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/superd/superd/pkg/config"
	"github.com/superd/superd/pkg/listener"
)

// sockKey identifies a listening socket across reloads: a socket is kept
// only if its address and every option are unchanged. (fd_name is not part
// of it: it changes what a child is told, not the socket.)
type sockKey struct {
	addr string
	opts listener.Options
}

func keyOf(sc config.Socket) sockKey {
	return sockKey{addr: sc.Address.String(), opts: sc.Options}
}

// reloadTimeout bounds how long Reload waits for the loop; binding many new
// sockets is the slow part.
const reloadTimeout = 30 * time.Second

// Reload replaces the running configuration with cfg, which must be valid
// (config.Load checked it whole). Unchanged sockets move to the new services
// without being closed, so connections waiting in their backlog are served;
// removed sockets close; new ones bind (a service whose socket cannot be
// bound is marked failed, as at startup). Running children are never
// stopped: they finish under the service they started with, and count
// against the limits of the service of the same name, if it still exists.
func (s *Server) Reload(cfg *config.Config) error {
	return s.call(func() { s.apply(cfg) }, reloadTimeout)
}

// apply is Reload on the loop.
func (s *Server) apply(cfg *config.Config) {
	if s.stopping {
		return
	}
	old := s.services
	oldByName := make(map[string]*service, len(old))
	oldSocks := make(map[sockKey]*socket)
	for _, svc := range old {
		oldByName[svc.cfg.Name] = svc
		svc.disarm(s)
		delete(s.suspects, svc) // its successor starts afresh
		for _, sk := range svc.socks {
			oldSocks[keyOf(*sk.cfg)] = sk
		}
	}

	// Which old sockets live on: those a new, runnable service names.
	next := make([]*service, 0, len(cfg.Services))
	wanted := make(map[sockKey]bool)
	for _, sc := range cfg.Services {
		svc := newService(s, sc)
		next = append(next, svc)
		if svc.runnable() {
			for _, so := range sc.Sockets {
				wanted[keyOf(so)] = true
			}
		}
	}
	// Close the others first: a socket whose options changed must free
	// its address before the new one binds it.
	closed := 0
	for k, sk := range oldSocks {
		if !wanted[k] {
			unix.Close(sk.fd)
			listener.Unlink(sk.cfg.Address)
			delete(oldSocks, k)
			closed++
		}
	}
	for _, svc := range old {
		svc.socks = nil // what is left of them moves below
	}

	kept := 0
	for _, svc := range next {
		prev := oldByName[svc.cfg.Name]
		if prev != nil {
			svc.adopt(prev)
			delete(oldByName, svc.cfg.Name)
		}
		kept += svc.startWith(s, func(sc config.Socket) (int, bool) {
			sk, ok := oldSocks[keyOf(sc)]
			if !ok {
				return -1, false
			}
			delete(oldSocks, keyOf(sc))
			return sk.fd, true
		})
		if d := time.Until(svc.rate.PausedUntil()); d > 0 && svc.state == StateListening {
			svc.pauseFor(s, d, "rate limit pause goes on after the reload", nil)
		}
	}
	// Sockets a new service wanted but could not use (it failed on
	// another socket) are closed too.
	for _, sk := range oldSocks {
		unix.Close(sk.fd)
		listener.Unlink(sk.cfg.Address)
		closed++
	}
	// Removed services: their metrics go now, or with the last child of
	// every removed service of that name (oldByName holds no name that
	// next configures).
	for name, svc := range oldByName {
		svc.setState(StateDisabled)
		if svc.active > 0 {
			svc.removed = true
			if s.draining == nil {
				s.draining = make(map[string][]*service)
			}
			s.draining[name] = append(s.draining[name], svc)
		}
		if len(s.draining[name]) == 0 {
			s.m.Forget(name)
		}
	}
	for _, c := range s.children {
		c.follow()
	}
	for ss := range s.sessions {
		ss.follow()
	}
	s.services = next
	s.noteBuiltinPorts()
	s.log.Info("configuration reloaded",
		zap.Int("services", len(next)), zap.Int("sockets_kept", kept), zap.Int("sockets_closed", closed))
}

// drained notes that svc, a service a reload removed, has no child left,
// and forgets the metrics of its name unless a service of that name is
// configured again (it shares them) or another removed one still has
// children: until then the series say disabled, with children counted.
// (It scans the services, but only when a removed service drains.)
func (s *Server) drained(svc *service) {
	if !svc.removed || svc.active > 0 {
		return
	}
	svc.removed = false
	name := svc.cfg.Name
	left := slices.DeleteFunc(s.draining[name], func(d *service) bool { return d == svc })
	if len(left) > 0 {
		s.draining[name] = left
		return
	}
	delete(s.draining, name)
	for _, cur := range s.services {
		if cur.cfg.Name == name {
			return
		}
	}
	s.m.Forget(name)
}

// runnable says whether the service will listen at all.
func (svc *service) runnable() bool {
	return !svc.cfg.Disabled
}

// adopt takes over what the running service of the same name had: its
// children count against the new limits, and a wait-mode child still
// holding the sockets keeps them until it exits.
func (svc *service) adopt(prev *service) {
	prev.replacedBy = svc
	svc.active = prev.active
	svc.activations = prev.activations
	// Whatever the new mode, the child holds the sockets in blocking mode
	// until it exits: they are watched again only then.
	svc.waitChild = prev.waitChild
	prev.waitChild = nil
	// An unchanged rate limit keeps its window, and its pause: reloading
	// must not lift a limit the configuration still sets. (Other pauses
	// — a back-off, a shortage of fds — end: the reload may be the fix.)
	if prev.rate != nil && svc.rate != nil && *prev.cfg.RateLimit == *svc.cfg.RateLimit {
		svc.rate = prev.rate
	}
}

// current follows reloads to the service that replaced this one, if any.
func (svc *service) current() *service {
	for svc.replacedBy != nil {
		svc = svc.replacedBy
	}
	return svc
}
