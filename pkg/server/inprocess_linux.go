package server

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/superd/superd/pkg/builtin"
	"github.com/superd/superd/pkg/metrics"
)

// redirectDialTimeout bounds connecting to a redirect target.
const redirectDialTimeout = 10 * time.Second

// maxDatagramBatch bounds the datagrams a UDP built-in answers per
// readiness event, so a flood cannot keep the loop from everything else.
const maxDatagramBatch = 64

// session is one connection served in-process (an internal TCP service or
// a redirect), on a goroutine of its own; the loop owns the struct.
type session struct {
	svc     *service
	remote  string
	ip      netip.Addr
	src     source
	started time.Time
	cancel  context.CancelFunc
	// stopped is set when superd ended the session (shutdown).
	stopped bool
}

// follow is child.follow for sessions.
func (ss *session) follow() {
	if cur := ss.svc.current(); cur != ss.svc {
		ss.svc = cur
		ss.src = cur.count(ss.ip)
	}
}

// startSession serves an accepted connection in-process.
func (s *Server) startSession(svc *service, fd int, ip netip.Addr, remote string, src source, readyAt time.Time) {
	f := os.NewFile(uintptr(fd), "conn")
	conn, err := net.FileConn(f) // a dup, in Go's poller
	f.Close()
	if err != nil {
		svc.active--
		svc.release(src)
		svc.m.Rejected(metrics.ReasonResources)
		svc.pauseFor(s, resourcePause, "cannot serve connection", err)
		return
	}
	// Cancelled on shutdown; max_duration is a deadline on the same ctx.
	var ctx context.Context
	var cancel context.CancelFunc
	if d := svc.cfg.MaxDuration; d > 0 {
		ctx, cancel = context.WithTimeout(context.Background(), d)
	} else {
		ctx, cancel = context.WithCancel(context.Background())
	}
	ss := &session{svc: svc, ip: ip, remote: remote, src: src, started: readyAt, cancel: cancel}
	s.sessions[ss] = struct{}{}
	svc.activations++
	svc.m.Activations.Inc()
	svc.m.Instances.Inc()
	svc.logger().Info("activation", zap.String("remote", remote))
	cfg := svc.cfg
	go func() {
		var err error
		if cfg.Redirect != "" {
			_, _, err = builtin.Relay(ctx, conn, cfg.Redirect, redirectDialTimeout)
		} else {
			err = builtin.ServeStream(ctx, cfg.Internal, conn, time.Now)
		}
		s.post(func() { s.sessionDone(ss, err) })
	}()
}

// sessionDone is the end of an in-process session, back on the loop.
func (s *Server) sessionDone(ss *session, err error) {
	delete(s.sessions, ss)
	ss.cancel()
	outcome := metrics.OutcomeSuccess
	fields := make([]zap.Field, 1, 4) // room for finished's two
	fields[0] = zap.String("remote", ss.remote)
	switch {
	case ss.stopped || errors.Is(err, context.DeadlineExceeded):
		outcome = metrics.OutcomeStopped
	case err != nil:
		outcome = metrics.OutcomeFailure
		fields = append(fields, zap.Error(err))
	}
	s.finished(ss.svc, ss.src, time.Since(ss.started), outcome, fields)
}

// serveDatagrams answers what a UDP built-in's sockets hold, in the loop:
// each answer is one recvfrom and one sendto, never blocking.
func (s *Server) serveDatagrams(svc *service, now time.Time) {
	if s.dgram == nil {
		s.dgram = make([]byte, 65536)
		s.reply = make([]byte, 0, builtin.ReplyBufSize)
	}
	for _, sk := range svc.socks {
		for i := 0; i < maxDatagramBatch; i++ {
			n, from, err := unix.Recvfrom(sk.fd, s.dgram, unix.MSG_TRUNC)
			if err != nil {
				if err != unix.EAGAIN && err != unix.EINTR && err != unix.ECONNREFUSED {
					svc.logger().Warn("recvfrom failed", zap.Error(err))
				}
				break
			}
			if n > len(s.dgram) {
				continue // truncated: echoing part of it would be wrong
			}
			ip, port, ok := sockaddrIPPort(from)
			if !ok {
				continue
			}
			src := netip.AddrPortFrom(ip, uint16(port))
			if s.ownBuiltinPort(uint16(port)) {
				svc.refused(metrics.ReasonAccess, src, now)
				continue
			}
			if svc.acl != nil && !svc.acl.Allowed(ip) {
				svc.refused(metrics.ReasonAccess, src, now)
				continue
			}
			reply, ok := builtin.ReplyDatagram(svc.cfg.Internal, s.dgram[:n], src, time.Now, s.reply)
			if !ok {
				if svc.cfg.Internal != "discard" {
					svc.refused(metrics.ReasonAccess, src, now)
				}
				continue
			}
			svc.activations++
			svc.m.Activations.Inc()
			// A full socket buffer or an unreachable client loses this
			// one answer, as UDP may; never block or retry.
			unix.Sendto(sk.fd, reply, unix.MSG_DONTWAIT, from)
		}
	}
}

// ownBuiltinPort says whether port is the local port of one of superd's
// own UDP built-ins: two built-ins must never answer each other, whatever
// ports they run on (the source-port rule covers only ports below 1024).
func (s *Server) ownBuiltinPort(port uint16) bool {
	return s.builtinPorts[port]
}

// noteBuiltinPorts recomputes the ports ownBuiltinPort knows, after the
// services changed.
func (s *Server) noteBuiltinPorts() {
	s.builtinPorts = make(map[uint16]bool)
	for _, svc := range s.services {
		if svc.cfg.Internal == "" {
			continue
		}
		for _, sc := range svc.cfg.Sockets {
			s.builtinPorts[sc.Address.Port] = true
		}
	}
}
