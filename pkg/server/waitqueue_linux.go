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
// and successfully, yet leave the datagram that woke them waiting, before
// the service backs off as if they had failed: a program that never reads
// its socket and exits 0 must not make superd spin either. It is systemd's
// trigger limit for a socket without Accept (20 activations).
//
// Only datagram sockets are judged: the first datagram waiting can be
// peeked, so a child that took one is told from one that took nothing, and
// a program that serves one datagram and exits while others queue is never
// held back. A listening stream socket says only how many connections
// wait, not which: a one-shot child serving clients back to back leaves a
// queue as long as a child that accepted nothing (make bench's TCP wait
// test backed off after 20 when both counted), so stream sockets are not
// judged (a rate_limit bounds a program that exits without accepting).
const unservedLimit = 20

// queueMark is the first datagram waiting on a socket, to tell at a
// wait-mode child's exit whether the child took it.
type queueMark struct {
	fd int
	// head hashes the first datagram's sender, length and first bytes;
	// 0 when none waits or the socket is not a datagram socket.
	head uint64
}

// markQueues marks every socket of svc, before its wait-mode child starts.
func markQueues(svc *service) []queueMark {
	marks := make([]queueMark, len(svc.socks))
	for i, sk := range svc.socks {
		marks[i] = queueMark{fd: sk.fd, head: datagramHead(sk.fd)}
	}
	return marks
}

// datagramHead is a hash of the first datagram waiting on fd, or 0.
func datagramHead(fd int) uint64 {
	var buf [64]byte
	n, from, err := unix.Recvfrom(fd, buf[:], unix.MSG_PEEK|unix.MSG_DONTWAIT|unix.MSG_TRUNC)
	if err != nil {
		// Nothing waits (EAGAIN), or not a datagram socket: a
		// listening stream socket refuses recvfrom (ENOTCONN).
		return 0
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

// waitExitWhy is why a wait-mode child's exit calls for a back-off, or ""
// if it does not: it failed, or it is the unservedLimit-th child in a row
// to exit quickly leaving the datagram that woke it. marks are the
// service's sockets as the child started.
func (svc *service) waitExitWhy(ran time.Duration, outcome string, marks []queueMark) string {
	if outcome == metrics.OutcomeFailure || outcome == metrics.OutcomeSignal {
		svc.unserved = 0
		return "child failed quickly; backing off"
	}
	if ran >= fastFailure || !svc.leftUntaken(marks) {
		svc.unserved = 0
		return ""
	}
	if svc.unserved < math.MaxUint8 {
		svc.unserved++
	}
	if svc.unserved < unservedLimit {
		return ""
	}
	return "children keep exiting quickly without reading what waits on the socket; backing off"
}

// leftUntaken says whether the first datagram waiting on one of svc's
// sockets is the one that waited first there when the child started. (A
// mark whose fd is no longer one of svc's, after a reload, is passed over.)
func (svc *service) leftUntaken(marks []queueMark) bool {
	for _, m := range marks {
		if m.head == 0 {
			continue
		}
		for _, sk := range svc.socks {
			if sk.fd == m.fd && datagramHead(sk.fd) == m.head {
				return true
			}
		}
	}
	return false
}
