package server

import (
	"net/netip"
	"os"
	"strconv"
	"time"
	"unsafe"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/superd/superd/pkg/access"
	"github.com/superd/superd/pkg/config"
	"github.com/superd/superd/pkg/listener"
	"github.com/superd/superd/pkg/metrics"
	"github.com/superd/superd/pkg/spawn"
)

// State is where a service stands.
type State uint8

// Service states.
const (
	StateListening State = iota + 1
	// StateRunning is a wait-mode service whose child has the sockets.
	StateRunning
	// StatePaused is a service that does not accept for a while (back-off).
	StatePaused
	StateFailed
	StateDisabled
)

func (st State) String() string {
	switch st {
	case StateListening:
		return "listening"
	case StateRunning:
		return "running"
	case StatePaused:
		return "paused"
	case StateFailed:
		return "failed"
	case StateDisabled:
		return "disabled"
	}
	return "unknown"
}

// maxAcceptBatch bounds the accepts done for one readiness event, so one busy
// service cannot starve the others (and child exits) of the loop's attention.
const maxAcceptBatch = 32

// Wait-mode back-off after a child that failed quickly (SPEC §2.1).
const (
	fastFailure    = time.Second
	backoffInitial = time.Second
	backoffMax     = time.Minute
)

// service is one configured service; owned by the loop. (Its fields are
// laid out for size: a 10,000-service superd holds 10,000 of them.)
type service struct {
	cfg *config.Service
	// spec is how to start the service's children, made at the first
	// spawn: most configured services never run one, and at 10,000
	// services the specs would hold 3 MB.
	spec  *spawn.Spec
	socks []*socket
	// active counts children running or being spawned (accept mode), the
	// figure max_instances bounds.
	active int32
	state  State
	// upgradeHold is set while a live upgrade is under way and this
	// wait-mode service must not start a child (see Server.Listening).
	upgradeHold bool
	// removed is set on a service a reload removed while it had
	// children: its metrics go when the last one ends (Server.drained).
	removed bool
	// unserved is 0, or 1 for a lasting suspicion that wait-mode
	// children leave their clients waiting, plus one for each child in
	// a row judged to have done so (waitExitWhy; saturating).
	unserved uint8
	// activations counts children started since superd started.
	activations uint64
	// waitChild is the wait-mode child holding the sockets, if any.
	waitChild *child
	// replacedBy is the service of the same name a reload put in this
	// one's place; children and pending spawns follow it.
	replacedBy *service
	// backoff is the next wait-mode back-off; 0 after a healthy run.
	backoff time.Duration
	m       *metrics.Service
	// log is the service's logger, made at its first use (logger): a zap
	// child logger holds a 1 KiB buffer, 10 MiB for 10,000 services that
	// mostly log nothing after their start.
	log  *zap.Logger
	base *zap.Logger

	// Admission: nil (or zero) where the service sets no such limit.
	acl       *access.ACL
	times     access.Times
	perSource *access.SourceCounter
	rate      *access.RateLimiter
	// refusals rate-limits refusal log lines (made at the first refusal).
	refusals *refusalLog
}

// refusalLog rate-limits a service's refusal log lines, so a flood cannot
// fill the disk: at most one line a second, saying how many it stood for.
type refusalLog struct {
	last       time.Time
	suppressed int
}

// socket is one listening socket of a service; owned by the loop.
type socket struct {
	svc *service
	// cfg points into the service's configuration (a copy would add
	// 200 bytes per socket, 2 MB at 10,000 services).
	cfg *config.Socket
	fd  int
	// watching says whether fd is in the epoll set now.
	watching bool
	// localEnv is TCPLOCALIP= and TCPLOCALPORT= of a socket bound to one
	// address, made at its first connection: from then on accept mode
	// needs no getsockname and no formatting for them. (Made at start-up,
	// 10,000 sockets' strings would each pin a mostly empty page among the
	// parser's garbage; most configured sockets never see a connection.)
	localEnv *[2]string
}

// logger is the service's logger: every line carries its name.
func (svc *service) logger() *zap.Logger {
	if svc.log == nil {
		svc.log = svc.base.With(zap.String("service", svc.cfg.Name))
	}
	return svc.log
}

// spawnSpec returns the service's spawn.Spec, making it the first time.
// Only exec services have one.
func (svc *service) spawnSpec() *spawn.Spec {
	if svc.spec == nil {
		svc.spec = spawn.NewSpec(svc.cfg)
	}
	return svc.spec
}

func newService(s *Server, sc *config.Service) *service {
	svc := &service{
		cfg:  sc,
		m:    s.m.ForService(sc.Name),
		base: s.log,
	}
	if len(sc.Allow) > 0 || len(sc.Deny) > 0 {
		svc.acl = access.NewACL(sc.Allow, sc.Deny)
	}
	svc.times = access.NewTimes(sc.AccessTimes)
	if sc.MaxPerSource > 0 {
		svc.perSource = access.NewSourceCounter(int(sc.PerSourcePrefix6))
	}
	if r := sc.RateLimit; r != nil {
		svc.rate = access.NewRateLimiter(r.Max, r.Per, r.Pause)
	}
	return svc
}

// startWith binds the service's sockets and starts watching them (unless a
// wait-mode child it adopted still holds them). take offers an already open
// fd for a socket (one kept across a reload, or inherited); the rest are
// opened here. On failure the service is marked failed and every socket it
// had is closed. It returns how many sockets take supplied.
func (svc *service) startWith(s *Server, take func(config.Socket) (int, bool)) (taken int) {
	if svc.cfg.Disabled {
		svc.setState(StateDisabled)
		return 0
	}
	for i := range svc.cfg.Sockets {
		sc := &svc.cfg.Sockets[i]
		fd, ok := take(*sc)
		if ok {
			taken++
		} else {
			var err error
			if fd, err = listener.Open(sc.Address, sc.Options); err != nil {
				svc.logger().Error("service failed: cannot listen", zap.String("listen", sc.Address.String()), zap.Error(err))
				svc.closeSockets(s)
				svc.setState(StateFailed)
				return taken
			}
			if b := listener.Bound(sc.Address, sc.Options); b != sc.Address {
				svc.logger().Warn("this kernel has no IPv6: listening on IPv4 only",
					zap.String("listen", sc.Address.String()), zap.String("bound", b.String()))
			}
		}
		sk := &socket{svc: svc, cfg: sc, fd: fd}
		svc.socks = append(svc.socks, sk)
	}
	switch {
	case svc.waitChild != nil:
		// The child holds the sockets in blocking mode; they are
		// watched again when it exits.
		svc.setState(StateRunning)
	case svc.heldByPrevious(s):
		// A previous superd's child serves them: Release will tell.
		svc.setState(StateRunning)
	default:
		svc.arm(s)
	}
	// Through the base logger: the same line, without making the
	// service's own logger just for it.
	svc.base.Info("listening", zap.String("service", svc.cfg.Name),
		zap.Strings("listen", svc.listenStrings()), zap.Stringer("mode", svc.cfg.Mode))
	return taken
}

// heldByPrevious says whether a previous superd's wait-mode child still
// serves one of the service's sockets.
func (svc *service) heldByPrevious(s *Server) bool {
	for _, sk := range svc.socks {
		if s.held[listener.Key(sk.cfg.Address, sk.cfg.Options)] {
			return true
		}
	}
	return false
}

// holdsKey says whether one of the service's sockets has key.
func (svc *service) holdsKey(key string) bool {
	for _, sk := range svc.socks {
		if listener.Key(sk.cfg.Address, sk.cfg.Options) == key {
			return true
		}
	}
	return false
}

func (svc *service) listenStrings() []string {
	out := make([]string, len(svc.cfg.Sockets))
	for i, sc := range svc.cfg.Sockets {
		out[i] = sc.Address.String()
	}
	return out
}

func (svc *service) setState(st State) {
	svc.state = st
	svc.m.SetUp(st == StateListening || st == StateRunning, st == StateDisabled)
}

// arm watches every socket of the service.
func (svc *service) arm(s *Server) {
	for _, sk := range svc.socks {
		if sk.watching {
			continue
		}
		if err := s.watch(sk.fd, unix.EPOLLIN, sk); err != nil {
			svc.logger().Error("cannot watch socket", zap.Error(err))
			continue
		}
		sk.watching = true
	}
	svc.setState(StateListening)
}

// disarm stops watching every socket of the service; they stay bound, so
// clients wait in the backlog.
func (svc *service) disarm(s *Server) {
	for _, sk := range svc.socks {
		if sk.watching {
			s.unwatch(sk.fd)
			sk.watching = false
		}
	}
}

// closeSockets closes every socket of the service (and removes UNIX socket
// files), as on shutdown or failure.
func (svc *service) closeSockets(s *Server) {
	svc.disarm(s)
	for _, sk := range svc.socks {
		unix.Close(sk.fd)
		listener.Unlink(sk.cfg.Address)
	}
	svc.socks = nil
}

// ready is a listening socket's readiness.
func (sk *socket) ready(s *Server, _ uint32) {
	if s.stopping {
		return
	}
	svc := sk.svc
	if svc.cfg.Mode == config.Wait {
		// A readiness with nothing behind it (closeWatched says when one
		// can come) must not start a child.
		if !readable(sk.fd) {
			return
		}
		svc.activateWait(s)
		return
	}
	for i := 0; i < maxAcceptBatch; i++ {
		if !sk.acceptOne(s) {
			return
		}
	}
}

// readable says whether fd has a connection or datagram waiting, without
// blocking.
func readable(fd int) bool {
	p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, err := unix.Poll(p, 0)
	return err != nil || (n > 0 && p[0].Revents != 0) // in doubt, go ahead
}

// acceptOne accepts and dispatches one connection; it reports whether
// another accept may find one.
func (sk *socket) acceptOne(s *Server) bool {
	svc := sk.svc
	fd, ip, port, hasIP, err := accept(sk.fd)
	readyAt := time.Now()
	if err != nil {
		switch err {
		case unix.EAGAIN, unix.EINTR:
			return false
		case unix.ECONNABORTED, unix.EPROTO, unix.EPERM:
			// The client went away or a firewall said no: another
			// connection may be waiting.
			return true
		case unix.EMFILE, unix.ENFILE, unix.ENOBUFS, unix.ENOMEM:
			svc.m.Rejected(metrics.ReasonResources)
			svc.pauseFor(s, resourcePause, "out of resources", err)
			return false
		}
		// Unexpected: rest rather than spin on a level-triggered fd.
		svc.pauseFor(s, resourcePause, "accept failed", os.NewSyscallError("accept4", err))
		return false
	}
	svc.m.Accepted.Inc()
	var client netip.AddrPort
	if hasIP {
		client = netip.AddrPortFrom(ip, uint16(port))
	}
	src, reason := svc.admit(s, ip, hasIP, readyAt)
	if reason != "" {
		// Counted before the close, so whoever sees the close sees the
		// count too.
		svc.refused(reason, client, readyAt)
		unix.Close(fd)
		return svc.state != StatePaused
	}
	svc.active++
	var remote string
	if len(svc.cfg.Exec) == 0 {
		if hasIP {
			remote = client.String()
		}
		s.startSession(svc, fd, ip, remote, src, readyAt)
		return true
	}
	env := svc.cfg.Env
	if hasIP {
		var remoteEnv [4]string
		remote, remoteEnv = formatRemote(ip, port)
		env = sk.connEnv(fd, &remoteEnv)
	}
	c := newChild(svc, []int{fd}, remote, readyAt)
	c.ip, c.src = ip, src
	files, err := s.childFiles(svc, c, []int{fd})
	if err != nil {
		svc.active--
		svc.release(src)
		unix.Close(fd)
		svc.m.Rejected(metrics.ReasonResources)
		svc.pauseFor(s, resourcePause, "out of resources", err)
		return false
	}
	s.startChild(c, files, env)
	return true
}

// source is a client's per-source key, when max_per_source counts it.
type source struct {
	key     netip.Prefix
	counted bool
}

// admit decides whether a connection from ip may start an activation, in
// the order: allow/deny, access_times, max_instances, max_per_source,
// rate_limit — the rate window last, so refused connections do not count
// as activations. It returns the reason for a refusal, or "" and the
// client's per-source slot (already counted).
func (svc *service) admit(s *Server, ip netip.Addr, hasIP bool, now time.Time) (source, string) {
	cfg := svc.cfg
	if svc.acl != nil && !svc.acl.Allowed(ip) {
		return source{}, metrics.ReasonAccess
	}
	if !svc.times.Open(now) {
		return source{}, metrics.ReasonAccessTimes
	}
	if cfg.MaxInstances > 0 && int(svc.active) >= cfg.MaxInstances {
		return source{}, metrics.ReasonMaxInstances
	}
	var src source
	if svc.perSource != nil && hasIP {
		src.key = svc.perSource.Key(ip)
		if svc.perSource.Count(src.key) >= cfg.MaxPerSource {
			return source{}, metrics.ReasonMaxPerSource
		}
	}
	if !svc.allowRate(s, now) {
		return source{}, metrics.ReasonRateLimit
	}
	if svc.perSource != nil && hasIP {
		svc.perSource.Inc(src.key)
		src.counted = true
	}
	return src, ""
}

// allowRate records an activation in the rate window; over the limit the
// service pauses with its sockets bound, so clients wait in the backlog.
func (svc *service) allowRate(s *Server, now time.Time) bool {
	if svc.rate == nil {
		return true
	}
	ok, until := svc.rate.Allow(now)
	if !ok && svc.state != StatePaused {
		svc.pauseFor(s, until.Sub(now), "rate limit exceeded; pausing", nil)
	}
	return ok
}

// count takes a per-source slot for a client already running (after a
// reload), whatever the limit says.
func (svc *service) count(ip netip.Addr) source {
	if svc.perSource == nil || !ip.IsValid() {
		return source{}
	}
	k := svc.perSource.Key(ip)
	svc.perSource.Inc(k)
	return source{key: k, counted: true}
}

// release gives back a per-source slot taken by admit.
func (svc *service) release(src source) {
	if src.counted {
		svc.perSource.Dec(src.key)
	}
}

// refused counts a refusal and logs it, at most once a second per service;
// the client's address (the zero AddrPort: none) is formatted only for the
// line, so a flood of refusals costs no formatting.
func (svc *service) refused(reason string, client netip.AddrPort, now time.Time) {
	svc.m.Rejected(reason)
	if svc.refusals == nil {
		svc.refusals = new(refusalLog)
	}
	r := svc.refusals
	if now.Sub(r.last) < time.Second {
		r.suppressed++
		return
	}
	remote := ""
	if client.IsValid() {
		remote = client.String()
	}
	svc.logger().Warn("connection refused", zap.String("reason", reason), zap.String("remote", remote),
		zap.Int("refusals_not_logged", r.suppressed))
	r.last, r.suppressed = now, 0
}

// formatRemote formats a client's address once for everything that names
// it: remote ("1.2.3.4:5", "[::1]:5") for log lines and status, and env,
// systemd's REMOTE_ADDR/REMOTE_PORT and ucspi-tcp's
// TCPREMOTEIP/TCPREMOTEPORT assignments. They are all slices of one
// string: one allocation per connection instead of seven.
func formatRemote(ip netip.Addr, port int) (remote string, env [4]string) {
	var buf [256]byte // enough for an IPv6 address with the longest zone
	b := buf[:0]
	var ends [5]int
	for i, name := range [4]string{"REMOTE_ADDR=", "REMOTE_PORT=", "TCPREMOTEIP=", "TCPREMOTEPORT="} {
		b = append(b, name...)
		if i%2 == 0 {
			b = ip.AppendTo(b)
		} else {
			b = strconv.AppendInt(b, int64(port), 10)
		}
		ends[i] = len(b)
	}
	b = netip.AddrPortFrom(ip, uint16(port)).AppendTo(b)
	ends[4] = len(b)
	all := string(b)
	start := 0
	for i := range env {
		env[i] = all[start:ends[i]]
		start = ends[i]
	}
	return all[start:ends[4]], env
}

// connEnv builds the per-connection environment of a TCP connection: the
// client's address (formatRemote) and the local one on top of the
// service's base environment.
func (sk *socket) connEnv(fd int, remote *[4]string) []string {
	var local [2]string
	if sk.localEnv != nil {
		local = *sk.localEnv
	} else {
		var lip, lport string
		a := sk.cfg.Address
		bound := !a.IP.IsUnspecified()
		if bound {
			lip, lport = a.IP.WithZone("").String(), strconv.Itoa(int(a.Port))
		} else if lsa, err := unix.Getsockname(fd); err == nil {
			// A wildcard socket: each connection has its own local address.
			if ip, port, ok := sockaddrIPPort(lsa); ok {
				lip, lport = ip.String(), strconv.Itoa(port)
			}
		}
		local = [2]string{"TCPLOCALIP=" + lip, "TCPLOCALPORT=" + lport}
		if bound {
			kept := local // on the heap only here
			sk.localEnv = &kept
		}
	}
	base := sk.svc.cfg.Env
	env := make([]string, len(base), len(base)+7)
	copy(env, base)
	return append(env,
		remote[0], // REMOTE_ADDR
		remote[1], // REMOTE_PORT
		"PROTO=TCP",
		remote[2], // TCPREMOTEIP
		remote[3], // TCPREMOTEPORT
		local[0],
		local[1],
	)
}

// accept accepts one connection on the listening socket lfd and decodes the
// client's address, if it has one. It is accept4 without x/sys's
// conversion, which asks every IPv4 and IPv6 connection for its protocol
// (getsockopt SO_PROTOCOL) to tell L2TP apart: one system call fewer per
// connection. No SOCK_NONBLOCK: the connection goes to a child in blocking
// mode.
func accept(lfd int) (fd int, ip netip.Addr, port int, hasIP bool, err error) {
	var rsa unix.RawSockaddrAny
	n := uint32(unix.SizeofSockaddrAny)
	r, _, e := unix.Syscall6(unix.SYS_ACCEPT4, uintptr(lfd), uintptr(unsafe.Pointer(&rsa)),
		uintptr(unsafe.Pointer(&n)), unix.SOCK_CLOEXEC, 0, 0)
	if e != 0 {
		return -1, netip.Addr{}, 0, false, e
	}
	ip, port, hasIP = rawIPPort(&rsa)
	return int(r), ip, port, hasIP, nil
}

// rawIPPort is sockaddrIPPort for a kernel-format address.
func rawIPPort(rsa *unix.RawSockaddrAny) (netip.Addr, int, bool) {
	switch rsa.Addr.Family {
	case unix.AF_INET:
		a := (*unix.RawSockaddrInet4)(unsafe.Pointer(rsa))
		p := (*[2]byte)(unsafe.Pointer(&a.Port))
		return netip.AddrFrom4(a.Addr), int(p[0])<<8 | int(p[1]), true
	case unix.AF_INET6:
		a := (*unix.RawSockaddrInet6)(unsafe.Pointer(rsa))
		p := (*[2]byte)(unsafe.Pointer(&a.Port))
		return netip.AddrFrom16(a.Addr).Unmap(), int(p[0])<<8 | int(p[1]), true
	}
	return netip.Addr{}, 0, false
}

// sockaddrIPPort extracts an IP connection's address; IPv4-mapped IPv6
// addresses (a dual-stack socket's IPv4 clients) come back as IPv4, which is
// what a child reading REMOTE_ADDR expects.
func sockaddrIPPort(sa unix.Sockaddr) (netip.Addr, int, bool) {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrFrom4(a.Addr), a.Port, true
	case *unix.SockaddrInet6:
		return netip.AddrFrom16(a.Addr).Unmap(), a.Port, true
	}
	return netip.Addr{}, 0, false
}

// activateWait hands every socket of a wait-mode service to one new child.
func (svc *service) activateWait(s *Server) {
	readyAt := time.Now()
	if svc.cfg.Internal != "" {
		s.serveDatagrams(svc, readyAt)
		return
	}
	if !svc.allowRate(s, readyAt) {
		svc.refused(metrics.ReasonRateLimit, netip.AddrPort{}, readyAt)
		return
	}
	svc.disarm(s)
	svc.setState(StateRunning)
	// The spawner gets its own copies: the loop may close its fds (a
	// reload, a shutdown) before the fork runs.
	fds := make([]int, 0, len(svc.socks))
	var err error
	for _, sk := range svc.socks {
		// Children expect blocking sockets, and O_NONBLOCK lives on the
		// open file description superd shares with the child.
		if err = unix.SetNonblock(sk.fd, false); err != nil {
			break
		}
		var dup int
		if dup, err = unix.FcntlInt(uintptr(sk.fd), unix.F_DUPFD_CLOEXEC, 3); err != nil {
			err = os.NewSyscallError("fcntl F_DUPFD_CLOEXEC", err)
			break
		}
		fds = append(fds, dup)
	}
	c := newChild(svc, fds, "", readyAt)
	var files []int
	if err == nil {
		files, err = s.childFiles(svc, c, fds)
	}
	if err != nil {
		c.closeOwned()
		for _, sk := range svc.socks {
			unix.SetNonblock(sk.fd, true)
		}
		svc.m.Rejected(metrics.ReasonResources)
		svc.pauseFor(s, resourcePause, "out of resources", err)
		return
	}
	svc.waitChild = c
	if s.waitMarks == nil {
		s.waitMarks = make(map[*child][]queueMark)
	}
	s.waitMarks[c] = markQueues(svc)
	svc.active++
	s.startChild(c, files, svc.cfg.Env)
}

// rearmWait makes a wait-mode service's sockets non-blocking and watched
// again once its child is gone. A child that failed within fastFailure of
// starting (why says how) delays that with a doubling back-off, so a
// broken program that never reads its socket cannot make the loop spin; ""
// is a child that did not fail.
func (svc *service) rearmWait(s *Server, ran time.Duration, why string) {
	svc.waitChild = nil
	for _, sk := range svc.socks {
		unix.SetNonblock(sk.fd, true)
	}
	if why == "" || ran >= fastFailure {
		svc.backoff = 0
		svc.arm(s)
		return
	}
	if svc.backoff == 0 {
		svc.backoff = backoffInitial
	} else if svc.backoff *= 2; svc.backoff > backoffMax {
		svc.backoff = backoffMax
	}
	svc.pauseFor(s, svc.backoff, why, nil)
}

// resourcePause is how long a listener rests after running out of fds or
// memory: long enough not to spin, short enough to recover quickly.
const resourcePause = 100 * time.Millisecond

// pauseFor stops watching the service's sockets for d, then watches them
// again (unless the service changed state meanwhile).
func (svc *service) pauseFor(s *Server, d time.Duration, why string, err error) {
	svc.disarm(s)
	svc.setState(StatePaused)
	fields := []zap.Field{zap.Duration("pause", d)}
	if err != nil {
		fields = append(fields, zap.Error(err))
	}
	svc.logger().Warn(why, fields...)
	time.AfterFunc(d, func() {
		s.post(func() {
			if svc.state == StatePaused && !s.stopping && svc.socks != nil && !svc.upgradeHold {
				svc.arm(s)
			}
		})
	})
}
