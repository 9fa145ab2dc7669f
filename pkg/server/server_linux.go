package server

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/superd/superd/pkg/config"
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
	watched  map[int]watcher
	services []*service
	children map[int]*child // by pidfd
	spawning int            // spawns handed to the pool, result not yet back
	stopping bool
	events   []unix.EpollEvent

	// spawnSem bounds concurrent forks.
	spawnSem chan struct{}

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
		watched:  make(map[int]watcher),
		children: make(map[int]*child),
		events:   make([]unix.EpollEvent, 128),
		spawnSem: make(chan struct{}, n),
		stopped:  make(chan struct{}),
		epfd:     -1,
		evfd:     -1,
		devnull:  -1,
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
	for _, sc := range cfg.Services {
		svc := newService(s, sc)
		s.services = append(s.services, svc)
		svc.startWith(s, noSocket)
	}
	return s, nil
}

// noSocket offers no open fd: every socket is opened anew.
func noSocket(config.Socket) (int, bool) { return -1, false }

func (s *Server) closeCore() {
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
	defer s.closeCore()
	s.log.Info("superd running", zap.Int("services", len(s.services)))
	for {
		if s.stopping && len(s.children) == 0 && s.spawning == 0 {
			s.mu.Lock()
			s.done = true
			s.mu.Unlock()
			s.log.Info("superd stopped")
			return nil
		}
		n, err := unix.EpollWait(s.epfd, s.events, -1)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			return os.NewSyscallError("epoll_wait", err)
		}
		for i := 0; i < n; i++ {
			ev := s.events[i]
			if w, ok := s.watched[int(ev.Fd)]; ok {
				w.ready(s, ev.Events)
			}
		}
	}
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
	s.mu.Unlock()
	var one = [8]byte{1}
	// EAGAIN means the counter is already non-zero: the loop will wake.
	unix.Write(s.evfd, one[:])
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
	s.watched[fd] = w
	return nil
}

// unwatch removes fd from the epoll set; it does not close it.
func (s *Server) unwatch(fd int) {
	if _, ok := s.watched[fd]; !ok {
		return
	}
	delete(s.watched, fd)
	unix.EpollCtl(s.epfd, unix.EPOLL_CTL_DEL, fd, nil)
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
}
