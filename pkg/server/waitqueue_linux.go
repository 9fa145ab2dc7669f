package server

import (
	"hash/fnv"
	"math"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/superd/superd/pkg/metrics"
)

// unservedLimit is how many wait-mode children in a row may exit quickly
// and successfully, yet leave what woke them waiting on the socket, before
// the service backs off as if they had failed: a program that never takes
// its socket and exits 0 must not make superd spin either. It is systemd's
// trigger limit for a socket without Accept (20 activations). A child that
// took something — the first datagram is another, the accept queue is
// shorter — breaks the run, so a program that serves one datagram and
// exits while others queue is never held back.
const unservedLimit = 20

// queueMark is what waits first on a listening socket, to tell at a
// wait-mode child's exit whether the child took anything.
type queueMark struct {
	fd   int
	kind uint8 // markNone, markDatagram or markAccept
	v    uint64
}

const (
	markNone     = iota // superd cannot tell (a UNIX stream listener)
	markDatagram        // v: a hash of the first datagram's sender, length and start; 0 if none
	markAccept          // v: the TCP accept queue's length
)

// markQueues marks every socket of svc, before its wait-mode child starts.
func markQueues(svc *service) []queueMark {
	marks := make([]queueMark, len(svc.socks))
	for i, sk := range svc.socks {
		marks[i] = markQueue(sk.fd)
	}
	return marks
}

func markQueue(fd int) queueMark {
	m := queueMark{fd: fd}
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return m
	}
	switch typ {
	case unix.SOCK_DGRAM:
		m.kind = markDatagram
		var buf [64]byte
		n, from, err := unix.Recvfrom(fd, buf[:], unix.MSG_PEEK|unix.MSG_DONTWAIT|unix.MSG_TRUNC)
		if err != nil {
			return m // nothing waits (EAGAIN): v 0
		}
		h := fnv.New64a()
		h.Write([]byte(strconv.Itoa(n)))
		h.Write([]byte(sockaddrString(from)))
		h.Write(buf[:min(n, len(buf))])
		m.v = h.Sum64() | 1 // never 0, which is "nothing waits"
	case unix.SOCK_STREAM:
		info, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
		if err != nil {
			return m // not TCP
		}
		// On a listening socket tcpi_unacked is the accept queue's
		// length (tcp_get_info).
		m.kind, m.v = markAccept, uint64(info.Unacked)
	}
	return m
}

// sockaddrString names a datagram's sender for markQueue's hash.
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

// took says whether the queue at m's socket moved on since m: the child
// took something from it.
func (m queueMark) took(now queueMark) bool {
	switch m.kind {
	case markDatagram:
		return now.v != m.v
	case markAccept:
		return now.v < m.v
	}
	return false
}

// waitExitWhy is why a wait-mode child's exit calls for a back-off, or ""
// if it does not: it failed, or it is the unservedLimit-th child in a row
// to exit quickly while what woke it still waits. marks are the service's
// sockets as the child started.
func (svc *service) waitExitWhy(ran time.Duration, outcome string, marks []queueMark) string {
	if outcome == metrics.OutcomeFailure || outcome == metrics.OutcomeSignal {
		return "child failed quickly; backing off"
	}
	if ran >= fastFailure || !svc.leftWaiting(marks) {
		svc.unserved = 0
		return ""
	}
	if svc.unserved < math.MaxUint8 {
		svc.unserved++
	}
	if svc.unserved < unservedLimit {
		return ""
	}
	return "children keep exiting quickly without taking what waits on the socket; backing off"
}

// leftWaiting says whether a client still waits on one of svc's sockets
// and none of them moved on since marks.
func (svc *service) leftWaiting(marks []queueMark) bool {
	waits := false
	for _, sk := range svc.socks {
		p := []unix.PollFd{{Fd: int32(sk.fd), Events: unix.POLLIN}}
		if n, err := unix.Poll(p, 0); err == nil && n > 0 && p[0].Revents&unix.POLLIN != 0 {
			waits = true
		}
		for _, m := range marks {
			if m.fd == sk.fd && m.took(markQueue(sk.fd)) {
				return false
			}
		}
	}
	return waits
}
