package server

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/superd/superd/pkg/config"
	"github.com/superd/superd/pkg/listener"
	"github.com/superd/superd/pkg/metrics"
)

// ErrStopped is returned by calls made after the loop has ended.
var ErrStopped = errors.New("server stopped")

// Options are what a Server needs besides its configuration.
type Options struct {
	Logger  *zap.Logger
	Metrics *metrics.Metrics
	// Spawners bounds how many forks run at once; 0 means one per CPU.
	Spawners int
	// Inherited are listening sockets superd was started with (LISTEN_FDS
	// or a live upgrade); a configured socket whose address matches one
	// uses it instead of binding. Unmatched ones are logged and closed.
	Inherited []listener.Inherited
	// Idle, if set, is called on the loop with true once the loop has
	// had no event for IdleAfter, and with false at its next event: the
	// moment to tidy memory and stop the runtime's periodic work, and to
	// resume it. Nothing else times the loop, so an idle superd wakes for
	// nothing.
	Idle      func(idle bool)
	IdleAfter time.Duration
	// Held are the keys (listener.Key) of inherited sockets that a
	// wait-mode child of the previous superd still serves: they are not
	// watched until Release names them.
	Held []string
}

// Server runs one configuration's services. Create it with New, run it with
// Run, stop it with Shutdown.
type Server struct {
	log *zap.Logger
	m   *metrics.Metrics

	// Owned by the loop.
	epfd     int
	evfd     int
	devnull  int
	watched  watchers
	services []*service
	children map[int]*child // by pidfd
	// waitMarks are the queues of a wait-mode child's sockets as it
	// started (waitExitWhy).
	waitMarks map[*child][]queueMark
	// draining are the services reloads removed that still have
	// children, by name (drained).
	draining map[string][]*service
	// suspects are the wait-mode services whose quick exits have left
	// a listening stream socket readable, since when (waitExitWhy).
	suspects map[*service]time.Time
	sessions map[*session]struct{}
	// dgram and reply are the UDP built-ins' buffers, made on first use.
	dgram, reply []byte
	// builtinPorts are the ports superd's own built-ins listen on.
	builtinPorts map[uint16]bool
	spawning     int // spawns handed to the pool, result not yet back
	idle         func(bool)
	idleAfterMs  int
	busy         bool // an event came since the last Idle(true)
	// idleNow mirrors !busy for Touch, on other goroutines.
	idleNow  atomic.Bool
	stopping bool
	events   []unix.EpollEvent
	// held are keys of sockets a previous superd's child still serves.
	held map[string]bool
	// handedOver is set once a live upgrade gave the sockets to a new
	// superd; freed then tells it of each wait-mode socket let go.
	handedOver bool
	freed      func(keys []string)

	// pool forks children; used on the loop only.
	pool *spawnPool
	// queued are spawns of this round of events (see flushSpawns).
	queued []*spawnJob
	// peeked are events a zero-timeout epoll_wait returned, to handle
	// before waiting again.
	peeked int

	// mu guards queue and done; the loop drains queue when evfd fires.
	mu    sync.Mutex
	queue []func()
	done  bool
	// stopped is closed when Run returns.
	stopped chan struct{}
}

// watcher is anything registered in the epoll set.
type watcher interface {
	ready(s *Server, events uint32)
}

// New creates the loop's fds and binds every enabled service's sockets. A
// service whose sockets cannot be bound is logged and marked failed; the
// others run. New fails only when superd itself cannot work (no epoll, no
// eventfd, no /dev/null).
func New(cfg *config.Config, opts Options) (*Server, error) {
	n := opts.Spawners
	if n <= 0 {
		n = runtime.NumCPU()
	}
	s := &Server{
		log:      opts.Logger,
		m:        opts.Metrics,
		children: make(map[int]*child),
		sessions: make(map[*session]struct{}),
		events:   make([]unix.EpollEvent, 128),
		stopped:  make(chan struct{}),
		epfd:     -1,
		evfd:     -1,
		devnull:  -1,
		idle:     opts.Idle,
		busy:     true, // starting up was work
	}
	if s.idle != nil {
		s.idleAfterMs = int(opts.IdleAfter.Milliseconds())
		if s.idleAfterMs <= 0 {
			s.idleAfterMs = 1
		}
	}
	if s.log == nil {
		s.log = zap.NewNop()
	}
	if s.m == nil {
		s.m = metrics.New("unknown")
	}
	var err error
	if s.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	if s.evfd, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		s.closeCore()
		return nil, os.NewSyscallError("eventfd", err)
	}
	if s.devnull, err = unix.Open("/dev/null", unix.O_RDWR|unix.O_CLOEXEC, 0); err != nil {
		s.closeCore()
		return nil, &os.PathError{Op: "open", Path: "/dev/null", Err: err}
	}
	if err := s.watch(s.evfd, unix.EPOLLIN, wakeWatcher{}); err != nil {
		s.closeCore()
		return nil, err
	}
	// Before any socket is bound: the spawners copy the fd table as it is
	// now (see spawner_linux.go).
	if s.pool, err = startPool(n, func(j *spawnJob, r spawnResult) bool {
		return s.post(func() { s.spawnDone(j, r) })
	}); err != nil {
		s.closeCore()
		return nil, err
	}
	s.held = make(map[string]bool, len(opts.Held))
	for _, k := range opts.Held {
		s.held[k] = true
	}
	pool := make(map[string]listener.Inherited, len(opts.Inherited))
	for _, in := range opts.Inherited {
		pool[in.Address.String()] = in
	}
	take := func(sc config.Socket) (int, bool) {
		k := listener.Key(sc.Address, sc.Options)
		in, ok := pool[k]
		if !ok {
			return -1, false
		}
		delete(pool, k)
		if !s.held[k] {
			// Inherited sockets come in whatever mode their sender
			// left; a held one is a child's, and stays blocking until
			// Release.
			unix.SetNonblock(in.FD, true)
		}
		return in.FD, true
	}
	for _, sc := range cfg.Services {
		svc := newService(s, sc)
		s.services = append(s.services, svc)
		svc.startWith(s, take)
	}
	s.noteBuiltinPorts()
	for _, in := range pool {
		s.log.Warn("inherited socket matches no configured listen; closing it",
			zap.String("address", in.Address.String()), zap.String("name", in.Name))
		unix.Close(in.FD)
	}
	return s, nil
}

// finish ends the loop's life: no post is accepted after it, and the
// eventfd is closed under the same lock posts write it under, so a late
// post can never write to a reused fd number.
func (s *Server) finish() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.done = true
	s.closeCore()
}

func (s *Server) closeCore() {
	if s.pool != nil {
		s.pool.stop()
		s.pool = nil
	}
	for _, fd := range []int{s.epfd, s.evfd, s.devnull} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
}

// Run runs the loop until a Shutdown has stopped every child. It returns nil
// after a clean shutdown.
func (s *Server) Run() error {
	defer close(s.stopped)
	defer s.finish()
	s.log.Info("superd running", zap.Int("services", len(s.services)))
	for {
		if s.stopping && len(s.children) == 0 && s.spawning == 0 && len(s.sessions) == 0 {
			s.log.Info("superd stopped")
			return nil
		}
		n := s.peeked
		s.peeked = 0
		if n == 0 {
			timeout := -1
			if s.busy && s.idle != nil {
				timeout = s.idleAfterMs
			}
			var err error
			n, err = unix.EpollWait(s.epfd, s.events, timeout)
			if err != nil {
				if err == unix.EINTR {
					continue
				}
				return os.NewSyscallError("epoll_wait", err)
			}
			if n == 0 && timeout >= 0 {
				s.busy = false
				s.idleNow.Store(true)
				s.idle(true)
				continue
			}
		}
		if !s.busy && s.idle != nil {
			s.busy = true
			s.idleNow.Store(false)
			s.idle(false)
		}
		for i := 0; i < n; i++ {
			ev := s.events[i]
			if w := s.watched.get(int(ev.Fd)); w != nil {
				w.ready(s, ev.Events)
			}
		}
		s.flushSpawns()
	}
}

// peek says whether a client waits on a listening socket, without
// blocking; the events it finds, whatever they are, are handled in the
// loop's next round. A child's exit or a posted closure can wait for a
// fork; a connection on another socket should not.
func (s *Server) peek() bool {
	n, err := unix.EpollWait(s.epfd, s.events, 0)
	if err != nil {
		return true // in doubt, assume a client waits
	}
	s.peeked = n
	for _, ev := range s.events[:n] {
		if _, ok := s.watched.get(int(ev.Fd)).(*socket); ok {
			return true
		}
	}
	return false
}

// Shutdown begins a graceful stop: every listening socket closes, each child
// gets its service's stop signal, and a child still running after its
// stop_timeout is killed. Run returns once every child is gone. Shutdown
// does not wait; Wait does.
func (s *Server) Shutdown() {
	s.post(s.beginShutdown)
}

// Wait blocks until Run has returned.
func (s *Server) Wait() { <-s.stopped }

// post asks the loop to run f. It never blocks; after the loop ended, f is
// dropped.
func (s *Server) post(f func()) bool {
	s.mu.Lock()
	if s.done {
		s.mu.Unlock()
		return false
	}
	s.queue = append(s.queue, f)
	var one = [8]byte{1}
	// EAGAIN means the counter is already non-zero: the loop will wake.
	unix.Write(s.evfd, one[:])
	s.mu.Unlock()
	return true
}

// call runs f on the loop and waits for it, or gives up after timeout.
func (s *Server) call(f func(), timeout time.Duration) error {
	done := make(chan struct{})
	if !s.post(func() { f(); close(done) }) {
		return ErrStopped
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-s.stopped:
		return ErrStopped
	case <-t.C:
		return fmt.Errorf("event loop did not answer within %s", timeout)
	}
}

// Touch wakes the loop as an event would, so that it counts as busy (see
// Options.Idle): for work done outside it, such as serving a scrape.
func (s *Server) Touch() {
	if s.idleNow.Load() {
		s.post(func() {})
	}
}

// Ping round-trips through the loop: it fails if the loop does not answer
// within timeout. /healthz uses it.
func (s *Server) Ping(timeout time.Duration) error {
	return s.call(func() {}, timeout)
}

type wakeWatcher struct{}

func (wakeWatcher) ready(s *Server, _ uint32) {
	var buf [8]byte
	unix.Read(s.evfd, buf[:])
	s.mu.Lock()
	q := s.queue
	s.queue = nil
	s.mu.Unlock()
	for _, f := range q {
		f()
	}
}

// watch adds fd to the epoll set.
func (s *Server) watch(fd int, events uint32, w watcher) error {
	ev := unix.EpollEvent{Events: events, Fd: int32(fd)}
	if err := unix.EpollCtl(s.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return os.NewSyscallError("epoll_ctl add", err)
	}
	s.watched.set(fd, w)
	return nil
}

// watchers are the loop's watchers by fd: a slice, as fds are small and
// dense (10,000 listeners: ~200 KB, where a map took 0.5 MB and a hash per
// event).
type watchers []watcher

// get returns fd's watcher, nil if none.
func (ws watchers) get(fd int) watcher {
	if fd < 0 || fd >= len(ws) {
		return nil
	}
	return ws[fd]
}

// set makes w fd's watcher (nil: none); a negative fd has none.
func (ws *watchers) set(fd int, w watcher) {
	if fd < 0 {
		return
	}
	if fd >= len(*ws) {
		if w == nil {
			return
		}
		grown := make(watchers, max(fd+1, 2*len(*ws)))
		copy(grown, *ws)
		*ws = grown
	}
	(*ws)[fd] = w
}

// closeWatched closes fd, a pidfd or stderr pipe end that only superd
// holds. Closing the last descriptor of a file takes it out of the epoll
// set, so it costs no EPOLL_CTL_DEL: two system calls fewer per
// connection. (A fork from a thread sharing superd's fd table — a spawner
// that could not be isolated, a live upgrade — holds a copy until its
// exec; an event the copy keeps alive meanwhile finds no watcher, or a new
// one for a reused number. Every watcher treats a readiness that turns out
// to be nothing as nothing: accept, read and wait4 find nothing, and a
// wait-mode socket checks before it starts a child.)
func (s *Server) closeWatched(fd int) {
	s.watched.set(fd, nil)
	unix.Close(fd)
}

// unwatch removes fd from the epoll set; it does not close it.
func (s *Server) unwatch(fd int) {
	if s.watched.get(fd) == nil {
		return
	}
	s.watched.set(fd, nil)
	unix.EpollCtl(s.epfd, unix.EPOLL_CTL_DEL, fd, nil)
}

// Release says a previous superd's wait-mode child no longer serves the
// socket with key (listener.Key): it is watched from now on.
func (s *Server) Release(key string) {
	s.post(func() {
		if !s.held[key] {
			return
		}
		delete(s.held, key)
		if s.handedOver {
			// A newer superd took over meanwhile: tell it instead.
			s.freed([]string{key})
			return
		}
		for _, svc := range s.services {
			if svc.holdsKey(key) && !svc.heldByPrevious(s) && svc.waitChild == nil {
				svc.logger().Info("previous superd released the sockets")
				svc.rearmWait(s, 0, "")
			}
		}
	})
}

// Listening lists every listening socket now open, by listener.Key, for a
// live upgrade; busy are those a wait-mode child (of this superd or of the
// one before) holds now. From this call on, wait-mode services start no
// new child — the new superd will — until Handover, or Resume if the
// upgrade fails: otherwise both could hand the same socket to a child.
func (s *Server) Listening() (keys []string, fds []int, busy []string, err error) {
	err = s.call(func() {
		for _, svc := range s.services {
			if svc.cfg.Mode == config.Wait && svc.waitChild == nil && svc.socks != nil && !svc.heldByPrevious(s) {
				svc.disarm(s)
				svc.setState(StatePaused)
				svc.upgradeHold = true
			}
			for _, sk := range svc.socks {
				k := listener.Key(sk.cfg.Address, sk.cfg.Options)
				keys = append(keys, k)
				fds = append(fds, sk.fd)
				if svc.waitChild != nil || s.held[k] {
					busy = append(busy, k)
				}
			}
		}
	}, reloadTimeout)
	return keys, fds, busy, err
}

// Resume undoes Listening's hold on wait-mode services after a failed
// upgrade.
func (s *Server) Resume() {
	s.post(func() {
		for _, svc := range s.services {
			if svc.upgradeHold {
				svc.upgradeHold = false
				if svc.state == StatePaused && svc.socks != nil {
					svc.arm(s)
				}
			}
		}
	})
}

// Handover ends this superd's part after a live upgrade: it stops watching
// and closes its copies of the listening sockets (the new superd holds the
// same sockets; files of UNIX sockets stay), leaves running children to
// finish, and lets Run return once they have. freed is called on the loop
// with the keys of a wait-mode service's sockets when its child exits, so
// the new superd can start watching them.
func (s *Server) Handover(freed func(keys []string)) {
	s.post(func() {
		s.stopping = true
		s.handedOver = true
		s.freed = freed
		var free []string
		for _, svc := range s.services {
			svc.disarm(s)
			var keys []string
			for _, sk := range svc.socks {
				keys = append(keys, listener.Key(sk.cfg.Address, sk.cfg.Options))
				unix.Close(sk.fd)
			}
			switch {
			case svc.waitChild != nil:
				svc.waitChild.heldKeys = keys
			case svc.cfg.Mode == config.Wait:
				// Listening may have called it busy, but its child
				// has exited since: the new superd may watch it now —
				// unless an older superd's child still serves it, whose
				// release Release passes on.
				for _, k := range keys {
					if !s.held[k] {
						free = append(free, k)
					}
				}
			}
			svc.socks = nil
		}
		if len(free) > 0 {
			freed(free)
		}
		s.log.Info("handed the sockets over; waiting for children to finish", zap.Int("children", len(s.children)))
	})
}

func (s *Server) beginShutdown() {
	if s.stopping {
		return
	}
	s.stopping = true
	s.log.Info("shutting down", zap.Int("children", len(s.children)))
	for _, svc := range s.services {
		svc.closeSockets(s)
	}
	for _, c := range s.children {
		c.stop(s)
	}
	for ss := range s.sessions {
		ss.stopped = true
		ss.cancel()
	}
}
