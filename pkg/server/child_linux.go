package server

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/superd/superd/pkg/config"
	"github.com/superd/superd/pkg/metrics"
)

// child is one started (or starting) child process; owned by the loop once
// its spawn result is back.
type child struct {
	svc     *service
	remote  string
	readyAt time.Time
	started time.Time
	pid     int
	pidfd   int
	// owned are fds closed once the child has its copies: the accepted
	// connection (accept mode) and duplicates of the listening sockets
	// (wait mode: the loop may close its own before the fork runs, and
	// the number could be reused).
	owned []int
	// errR is the stderr pipe's read end (stderr: log), watched by the
	// loop once the child runs. superd holds the write end errW until the
	// child has exited: the child's exit then makes no end-of-file event
	// of its own (one loop wake-up fewer per connection, measured +4 to
	// +10 % connections/s), and the pipe is drained at the exit instead.
	errR, errW int
	stderr     *stderrLog
	stopping   bool
	killTimer  *time.Timer
	// ip and src are the client and its per-source slot (accept mode).
	ip  netip.Addr
	src source
	// limit stops the child at max_duration.
	limit *time.Timer
	// heldKeys are the socket keys a wait-mode child holds after a live
	// upgrade handed them over; the new superd is told when it exits.
	heldKeys []string
}

// newChild is a child about to be spawned for svc; owned are the fds the
// spawner is to close after the fork (see child.owned).
func newChild(svc *service, owned []int, remote string, readyAt time.Time) *child {
	return &child{svc: svc, owned: owned, remote: remote, readyAt: readyAt, pidfd: -1, errR: -1, errW: -1}
}

// childFiles lays out a child's fds 0, 1, 2, 3...: socks are the connection
// (accept mode) or the listening sockets (wait mode).
func (s *Server) childFiles(svc *service, c *child, socks []int) ([]int, error) {
	cfg := svc.cfg
	errFD := s.devnull
	switch cfg.Stderr {
	case config.StderrSocket:
		errFD = socks[0]
	case config.StderrLog:
		var p [2]int
		if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
			return nil, os.NewSyscallError("pipe2", err)
		}
		// Only superd's end is non-blocking: pipe ends are separate open
		// file descriptions, so the child's stderr stays blocking. (One
		// F_SETFL: a fresh read end has no other status flag to keep.)
		unix.FcntlInt(uintptr(p[0]), unix.F_SETFL, unix.O_NONBLOCK)
		c.errR, c.errW = p[0], p[1]
		errFD = p[1]
	}
	if cfg.Pass == config.PassListenFDs {
		files := make([]int, 0, 3+len(socks))
		files = append(files, s.devnull, s.devnull, errFD)
		return append(files, socks...), nil
	}
	return []int{socks[0], socks[0], errFD}, nil
}

// listenEnv adds the sd_listen_fds(3) variables (but LISTEN_PID, which only
// the launcher can know) for n passed sockets.
func listenEnv(svc *service, base []string, n int) []string {
	env := make([]string, len(base), len(base)+2)
	copy(env, base)
	return append(env, "LISTEN_FDS="+strconv.Itoa(n), fdNamesVar(svc.cfg))
}

// fdNamesVar is a service's LISTEN_FDNAMES assignment: "connection" for the
// one fd of accept mode, else each socket's fd_name in listen order.
func fdNamesVar(sc *config.Service) string {
	if sc.Mode == config.Accept {
		return "LISTEN_FDNAMES=connection"
	}
	names := make([]string, len(sc.Sockets))
	for i, so := range sc.Sockets {
		names[i] = so.FDName
	}
	return "LISTEN_FDNAMES=" + strings.Join(names, ":")
}

// startChild queues a spawn; flushSpawns starts it once the loop has
// handled the events at hand.
func (s *Server) startChild(c *child, files []int, env []string) {
	svc := c.svc
	if svc.cfg.Pass == config.PassListenFDs {
		env = listenEnv(svc, env, len(files)-3)
	}
	s.spawning++
	s.queued = append(s.queued, &spawnJob{c: c, spec: svc.spawnSpec(), files: files, env: env})
}

// inlineMaxFD is the highest fd number with which the loop forks itself: a
// fork copies the fd table up to the highest open fd, which the spawners
// keep small. A fresh fd takes the lowest free number, so the files of
// the spawn at hand show how far superd's table reaches.
const inlineMaxFD = 64

// flushSpawns starts what startChild queued during this round of events.
// One spawn, with no other spawn in flight and no client waiting on a
// listening socket, the loop starts itself: handing it over would cost two
// thread wake-ups (the spawner's, then the loop's for the result) while the
// loop had nothing urgent to do. A zero-timeout epoll_wait says whether a
// client waits; what it returns is handled next. Everything else goes to
// the pool, so a fork never keeps waiting work from the loop. Measured on
// 2 cores, medians of 5 interleaved rounds: 0.85 -> 0.92 of the C floor's
// connections/s at concurrency 1, no change beyond the noise (3 %) at 8
// and 64. A child with more files than a spawn message carries is started
// here too.
func (s *Server) flushSpawns() {
	if len(s.queued) == 0 {
		return
	}
	// (Not a launcher's: Start waits for the launcher to start the
	// program, a few milliseconds the loop should not spend; only a
	// child with more files than a message carries is, below.)
	if len(s.queued) == 1 && s.pool.idle() && slices.Max(s.queued[0].files) <= inlineMaxFD &&
		!s.queued[0].spec.UsesLauncher() && !s.peek() {
		s.spawnHere(s.queued[0])
		s.queued[0] = nil
		s.queued = s.queued[:0]
		return
	}
	for i, j := range s.queued {
		if len(j.files) > maxSpawnFiles {
			s.spawnHere(j)
		} else {
			s.pool.submit(j)
		}
		s.queued[i] = nil
	}
	s.queued = s.queued[:0]
}

// spawnHere forks j on the loop's own thread.
func (s *Server) spawnHere(j *spawnJob) {
	pid, pidfd, err := j.spec.Start(j.files, j.env)
	started := time.Now()
	j.c.closeOwned()
	s.spawned(j.c, pid, pidfd, started, err)
}

// spawnDone is a spawner's result, on the loop: the pidfd is opened here, in
// the loop's table (the spawner's is its own).
func (s *Server) spawnDone(j *spawnJob, r spawnResult) {
	s.pool.inFlight--
	s.pool.next()
	pidfd := -1
	if r.err == nil {
		var err error
		if pidfd, err = unix.PidfdOpen(r.pid, 0); err != nil {
			// Out of fds: without a pidfd the child cannot be
			// watched. It has barely started; end it now.
			unix.Kill(r.pid, unix.SIGKILL)
			var ws unix.WaitStatus
			unix.Wait4(r.pid, &ws, 0, nil)
			r.err = os.NewSyscallError("pidfd_open", err)
			pidfd = -1
		}
	}
	s.spawned(j.c, r.pid, pidfd, r.started, r.err)
}

// spawned is a spawn's result, back on the loop.
func (s *Server) spawned(c *child, pid, pidfd int, started time.Time, err error) {
	s.spawning--
	c.follow() // a reload may have replaced its service meanwhile
	svc := c.svc
	if err != nil {
		svc.active--
		svc.release(c.src)
		c.dropStderr()
		if pidfd >= 0 {
			unix.Close(pidfd)
		}
		delete(s.waitMarks, c)
		svc.m.Rejected(metrics.ReasonSpawnError)
		svc.logger().Error("spawn failed", zap.String("remote", c.remote), zap.Error(err))
		s.drained(svc)
		if c.heldKeys != nil && s.freed != nil {
			s.freed(c.heldKeys)
		}
		switch {
		case svc.cfg.Mode == config.Wait && svc.socks == nil:
			// A removed service: nothing to re-arm, and a state set
			// on it would show in the metrics that a service of the
			// same name may share.
			svc.waitChild = nil
		case svc.cfg.Mode == config.Wait:
			svc.rearmWait(s, 0, "cannot start the child; backing off")
		case errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.ENOMEM) || errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE):
			// The process table or memory is full: rest instead of
			// accepting connections only to close them.
			if svc.state == StateListening {
				svc.pauseFor(s, resourcePause, "out of resources to start children", err)
			}
		}
		return
	}
	c.pid, c.pidfd, c.started = pid, pidfd, started
	s.children[pidfd] = c
	if err := s.watch(pidfd, unix.EPOLLIN, c); err != nil {
		// Cannot happen short of a kernel out of memory; without the
		// watch the child would never be reaped, so stop it and wait
		// for it here (it dies at once), then account for it as usual.
		svc.logger().Error("cannot watch child; killing it", zap.Int("pid", pid), zap.Error(err))
		unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0)
		var info unix.Siginfo
		unix.Waitid(unix.P_PIDFD, pidfd, &info, unix.WEXITED|unix.WNOWAIT, nil)
		c.dropStderr() // not watched yet: nothing else would close it
		svc.activations++
		svc.m.Instances.Inc()
		c.ready(s, 0)
		return
	}
	if c.errR >= 0 {
		c.stderr = &stderrLog{c: c}
		if err := s.watch(c.errR, unix.EPOLLIN, c.stderr); err != nil {
			unix.Close(c.errR)
			c.errR = -1
		}
	}
	svc.activations++
	svc.m.Activations.Inc()
	svc.m.Instances.Inc()
	svc.m.ObserveSpawn(started.Sub(c.readyAt).Seconds())
	if c.remote != "" {
		svc.logger().Info("activation", zap.Int("pid", pid), zap.String("remote", c.remote))
	} else {
		svc.logger().Info("activation", zap.Int("pid", pid))
	}
	if s.stopping && !s.handedOver {
		c.stop(s)
	} else if d := svc.cfg.MaxDuration; d > 0 && svc.cfg.Mode == config.Accept {
		c.limit = time.AfterFunc(d, func() {
			s.post(func() {
				if s.children[c.pidfd] == c {
					c.svc.logger().Info("max_duration reached; stopping child", zap.Int("pid", c.pid), zap.Duration("max_duration", d))
					c.stop(s)
				}
			})
		})
	}
}

// ready is the child's pidfd readiness: it has exited.
func (c *child) ready(s *Server, _ uint32) {
	var ws unix.WaitStatus
	var ru unix.Rusage
	pid, err := unix.Wait4(c.pid, &ws, unix.WNOHANG, &ru)
	if err == unix.EINTR || (err == nil && pid == 0) {
		return // not gone yet; the pidfd stays readable until it is
	}
	s.closeWatched(c.pidfd)
	delete(s.children, c.pidfd)
	if c.killTimer != nil {
		c.killTimer.Stop()
	}
	if c.limit != nil {
		c.limit.Stop()
	}
	c.closeErrW()
	if c.stderr != nil {
		// Log what the child wrote before exiting now, so it comes before
		// the exit line; the pipe itself closes at EOF, which a
		// grandchild still holding it may delay.
		c.stderr.drain(s)
	}
	svc := c.svc
	ran := time.Since(c.started)
	outcome := metrics.OutcomeSuccess
	// Room for the two fields finished adds: one allocation per exit.
	fields := make([]zap.Field, 1, 5)
	fields[0] = zap.Int("pid", c.pid)
	if c.remote != "" {
		fields = append(fields, zap.String("remote", c.remote))
	}
	switch {
	case err != nil:
		outcome = metrics.OutcomeFailure
		fields = append(fields, zap.NamedError("wait", err))
	case ws.Signaled():
		outcome = metrics.OutcomeSignal
		fields = append(fields, zap.String("signal", unix.SignalName(ws.Signal())))
	default:
		fields = append(fields, zap.Int("exit", ws.ExitStatus()))
		if ws.ExitStatus() != 0 {
			outcome = metrics.OutcomeFailure
		}
	}
	if c.stopping {
		outcome = metrics.OutcomeStopped
	}
	s.finished(svc, c.src, ran, outcome, fields)

	if c.heldKeys != nil && s.freed != nil {
		s.freed(c.heldKeys)
	}
	marks := s.waitMarks[c]
	delete(s.waitMarks, c)
	switch {
	case svc.waitChild != c:
	case s.stopping:
		svc.waitChild = nil
	case svc.socks != nil:
		svc.rearmWait(s, ran, s.waitExitWhy(svc, ran, outcome, marks))
	case svc.state == StateFailed:
		// A reload changed a socket's options while this child held
		// the old one, so the new one could not bind: it can now.
		svc.waitChild = nil
		svc.logger().Info("child released the address; binding the service's sockets again")
		svc.startWith(s, func(config.Socket) (int, bool) { return -1, false })
	default:
		svc.waitChild = nil
	}
}

// finished is the accounting every end of an activation shares, a child's
// or an in-process session's: limits, metrics and the exit log line.
func (s *Server) finished(svc *service, src source, ran time.Duration, outcome string, fields []zap.Field) {
	svc.active--
	svc.release(src)
	// Logged before it is counted: whoever sees the count (a test, a
	// scrape) finds the line already written.
	svc.logger().Info("exit", append(fields, zap.Duration("duration", ran), zap.String("outcome", outcome))...)
	svc.m.Instances.Dec()
	svc.m.ObserveDuration(ran.Seconds())
	svc.m.Exited(outcome)
	s.drained(svc)
}

// closeErrW closes superd's copy of the stderr pipe's write end.
func (c *child) closeErrW() {
	if c.errW >= 0 {
		unix.Close(c.errW)
		c.errW = -1
	}
}

// dropStderr closes both ends of a stderr pipe the loop does not watch (the
// child never started, or cannot be watched).
func (c *child) dropStderr() {
	c.closeErrW()
	if c.errR >= 0 {
		unix.Close(c.errR)
		c.errR = -1
	}
}

// closeOwned closes superd's copies of what the child was handed.
func (c *child) closeOwned() {
	closeAll(c.owned)
	c.owned = nil
}

// follow moves the child to the service that replaced its own in a reload,
// counting its client against the new service's per-source limit.
func (c *child) follow() {
	if cur := c.svc.current(); cur != c.svc {
		c.svc = cur
		c.src = cur.count(c.ip)
	}
}

// stop sends the child its service's stop signal and arranges a SIGKILL
// after stop_timeout.
func (c *child) stop(s *Server) {
	if c.stopping || c.pidfd < 0 {
		return
	}
	c.stopping = true
	sig := c.svc.cfg.StopSignal
	if sig == 0 {
		sig = syscall.SIGTERM
	}
	if err := unix.PidfdSendSignal(c.pidfd, sig, nil, 0); err != nil && err != unix.ESRCH {
		c.svc.logger().Warn("cannot signal child", zap.Int("pid", c.pid), zap.Error(err))
	}
	timeout := c.svc.cfg.StopTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	c.killTimer = time.AfterFunc(timeout, func() {
		s.post(func() {
			if _, alive := s.children[c.pidfd]; alive && s.children[c.pidfd] == c {
				c.svc.logger().Warn("child did not stop in time; killing", zap.Int("pid", c.pid), zap.Duration("stop_timeout", timeout))
				if err := unix.PidfdSendSignal(c.pidfd, unix.SIGKILL, nil, 0); err != nil && err != unix.ESRCH {
					// EPERM: superd lacks CAP_KILL for a child of
					// another user; it keeps waiting for the exit.
					c.svc.logger().Error("cannot kill child", zap.Int("pid", c.pid), zap.Error(err))
				}
			}
		})
	})
}

// maxStderrLine bounds a buffered partial line: a child writing megabytes
// without a newline gets it logged in pieces.
const maxStderrLine = 4096

// stderrLog turns a child's stderr into log lines tagged with service and
// pid.
type stderrLog struct {
	c       *child
	partial []byte
}

func (l *stderrLog) ready(s *Server, _ uint32) {
	l.drain(s)
}

// maxStderrReads bounds the reads per readiness event: a child writing to
// stderr faster than superd logs must not keep the loop from everything
// else. The pipe stays readable, so epoll comes back to it.
const maxStderrReads = 16

// drain reads (a bounded amount of) what the pipe holds and logs complete
// lines; at EOF it logs the rest and closes the pipe.
func (l *stderrLog) drain(s *Server) {
	c := l.c
	if c.errR < 0 {
		return
	}
	var buf [4096]byte
	eof := false
	for i := 0; i < maxStderrReads; i++ {
		n, err := unix.Read(c.errR, buf[:])
		if n > 0 {
			l.partial = append(l.partial, buf[:n]...)
			l.emit(false)
			continue
		}
		if err == unix.EINTR {
			continue
		}
		eof = err == nil // n == 0: every writer closed
		break
	}
	if eof {
		l.emit(true)
		s.closeWatched(c.errR)
		c.errR = -1
	}
}

func (l *stderrLog) emit(all bool) {
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			if len(l.partial) >= maxStderrLine || (all && len(l.partial) > 0) {
				i = len(l.partial)
			} else {
				return
			}
		}
		line := l.partial[:i]
		l.c.svc.logger().Info("stderr", zap.Int("pid", l.c.pid), zap.ByteString("line", bytes.TrimRight(line, "\r")))
		if i < len(l.partial) {
			i++
		}
		l.partial = l.partial[i:]
		if len(l.partial) == 0 {
			l.partial = nil
			return
		}
	}
}
