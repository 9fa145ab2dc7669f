package server

import (
	"hash/fnv"
	"math"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/superd/superd/pkg/listener"
	"github.com/superd/superd/pkg/metrics"
)

// unservedLimit is how many wait-mode children in a row may exit quickly
// and successfully, yet leave the client that woke them waiting, before
// the service backs off as if they had failed: a program that never takes
// its socket and exits 0 must not make superd spin either. It is systemd's
// trigger limit for a socket without Accept (20 activations).
//
// What counts is whether the child took any of the clients that waited as
// it started (leftUntaken), not whether the socket is still readable: a
// program that serves one client and exits while others queue takes one
// each time and is never held back.
//   - On a datagram socket the first datagram waiting is peeked (sender,
//     length, first bytes) as the child starts and at its exit.
//   - On a listening stream socket the waiting connections are named by
//     sock_diag (sockdiag_linux.go): the cookies of TCP connections no one
//     accepted, a UNIX listener's pending ones by their clients' inodes
//     (counted: every client that has closed is inode 0). That query
//     can take milliseconds, so a child's start makes it only while the
//     service is under suspicion: once quick exits have left the socket
//     readable for suspicionLag (unserved is then at least 1, but those
//     exits, judged by readability alone, do not count towards the
//     limit). Judged by the queue's length alone, one-shot children
//     serving clients back to back looked like children that accepted
//     nothing (make bench's TCP wait test: 1 request a second).
//
// A socket sock_diag cannot name (no inet_diag or unix_diag in the
// kernel) is not judged.
const unservedLimit = 20

// queueMark is what waits on one socket of a wait-mode service as its
// child starts, to tell at the child's exit whether the child took it.
type queueMark struct {
	fd int
	// head hashes the first datagram's sender, length and first bytes;
	// 0 when none waits or the socket is not a datagram socket.
	head uint64
	// pending names the connections waiting on a listening stream
	// socket (nil: not looked at), and waiting lists them again.
	pending map[uint64]int
	waiting func() (map[uint64]int, error)
}

// markQueues marks every socket of svc, before its wait-mode child starts.
func markQueues(svc *service) []queueMark {
	marks := make([]queueMark, len(svc.socks))
	for i, sk := range svc.socks {
		m := queueMark{fd: sk.fd}
		if sk.cfg.Address.Kind == listener.Datagram {
			m.head = datagramHead(sk.fd)
		} else if svc.unserved > 0 {
			if m.waiting = streamWaiting(sk.fd); m.waiting != nil {
				if pending, err := m.waiting(); err == nil && len(pending) > 0 {
					m.pending = pending
				}
			}
		}
		marks[i] = m
	}
	return marks
}

// datagramHead is a hash of the first datagram waiting on fd, or 0.
func datagramHead(fd int) uint64 {
	var buf [64]byte
	n, from, err := unix.Recvfrom(fd, buf[:], unix.MSG_PEEK|unix.MSG_DONTWAIT|unix.MSG_TRUNC)
	if err != nil {
		return 0 // nothing waits (EAGAIN)
	}
	h := fnv.New64a()
	h.Write([]byte(strconv.Itoa(n)))
	h.Write([]byte(sockaddrString(from)))
	h.Write(buf[:min(n, len(buf))])
	return h.Sum64() | 1 // never 0, which is "nothing waits"
}

// sockaddrString names a datagram's sender for datagramHead's hash.
func sockaddrString(sa unix.Sockaddr) string {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return string(a.Addr[:]) + strconv.Itoa(a.Port)
	case *unix.SockaddrInet6:
		return string(a.Addr[:]) + strconv.Itoa(a.Port)
	case *unix.SockaddrUnix:
		return a.Name
	}
	return ""
}

// streamWaiting returns how to list the connections waiting on fd, a
// listening TCP or UNIX stream (or seqpacket) socket; nil for any other.
func streamWaiting(fd int) func() (map[uint64]int, error) {
	if listening, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); err != nil || listening == 0 {
		return nil
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return nil
	}
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return func() (map[uint64]int, error) { return pendingTCP(unix.AF_INET, uint16(a.Port)) }
	case *unix.SockaddrInet6:
		return func() (map[uint64]int, error) { return pendingTCP(unix.AF_INET6, uint16(a.Port)) }
	case *unix.SockaddrUnix:
		var st unix.Stat_t
		if unix.Fstat(fd, &st) != nil {
			return nil
		}
		return func() (map[uint64]int, error) { return pendingUnix(st.Ino) }
	}
	return nil
}

// suspicionLag is how long quick exits must keep leaving a listening
// stream socket readable before superd names the connections waiting on
// it: a sock_diag dump walks every TCP socket of the host, TIME_WAIT ones
// included, which on a host that serves many connections takes
// milliseconds (make bench's back-to-back TCP wait test fell from 0.90 to
// 0.25 x the floor when every such exit led to one). One-shot children
// serving clients back to back then cost one dump a second; a program that
// accepts nothing spins for a second before it is judged.
var suspicionLag = time.Second // a variable for tests

// waitExitWhy is why a wait-mode child's exit calls for a back-off, or ""
// if it does not: it failed, or it is the unservedLimit-th child in a row
// to exit quickly leaving the client that woke it. marks are the service's
// sockets as the child started.
func (s *Server) waitExitWhy(svc *service, ran time.Duration, outcome string, marks []queueMark) string {
	if outcome == metrics.OutcomeFailure || outcome == metrics.OutcomeSignal {
		s.clearSuspicion(svc)
		return "child failed quickly; backing off"
	}
	if ran >= fastFailure {
		s.clearSuspicion(svc)
		return ""
	}
	switch untaken, suspect := svc.leftUntaken(marks); {
	case untaken:
		svc.unserved = max(svc.unserved, 1) // the unjudged suspicion counts now
		if svc.unserved < math.MaxUint8 {
			svc.unserved++
		}
	case suspect && svc.unserved == 0:
		// Look closely at the children once suspicion has lasted.
		since, ok := s.suspects[svc]
		if !ok {
			if s.suspects == nil {
				s.suspects = make(map[*service]time.Time)
			}
			s.suspects[svc] = time.Now()
		} else if time.Since(since) >= suspicionLag {
			svc.unserved = 1
		}
	default:
		s.clearSuspicion(svc)
	}
	// unserved counts one suspicion, then each child judged untaken.
	if int(svc.unserved)-1 < unservedLimit {
		return ""
	}
	return "children keep exiting quickly without taking what waits on the socket; backing off"
}

// clearSuspicion ends svc's run of quick exits.
func (s *Server) clearSuspicion(svc *service) {
	svc.unserved = 0
	delete(s.suspects, svc)
}

// leftUntaken says whether the child took none of the clients that
// waited on svc's sockets as it started (untaken): every socket that can
// be judged was, and on none did one go — the same first datagram, every
// connection named then named still. A child that takes one client of
// several, on any socket, took something. Where the child started
// unmarked, it says whether a listening stream socket is still readable
// (suspect). A mark whose fd is no longer one of svc's, after a reload, is
// passed over.
func (svc *service) leftUntaken(marks []queueMark) (untaken, suspect bool) {
	judged := false
	for _, m := range marks {
		var sk *socket
		for _, s := range svc.socks {
			if s.fd == m.fd {
				sk = s
			}
		}
		switch {
		case sk == nil:
		case m.head != 0:
			if datagramHead(sk.fd) != m.head {
				return false, false
			}
			judged = true
		case m.pending != nil:
			now, err := m.waiting()
			if err != nil {
				continue
			}
			for id, n := range m.pending {
				if now[id] < n {
					return false, false
				}
			}
			judged = true
		default:
			suspect = suspect || (sk.cfg.Address.Kind != listener.Datagram && readable(sk.fd))
		}
	}
	return judged, suspect && !judged
}
