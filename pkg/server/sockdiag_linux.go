package server

import (
	"encoding/binary"
	"errors"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Which connections wait in a listening socket's accept queue, from the
// kernel's sock_diag netlink interface (sock_diag(7)): a TCP connection
// the kernel completed but nobody accepted yet has no inode (no file
// holds it), and a UNIX listener lists the inodes of its pending
// connections (UDIAG_SHOW_ICONS). Used only at wait-mode activations and
// exits (waitqueue_linux.go), never on the accept path.

// sock_diag's message type and the fields of its requests and replies
// (linux/sock_diag.h, linux/inet_diag.h, linux/unix_diag.h); x/sys/unix
// does not have them.
const (
	sockDiagByFamily = 20 // SOCK_DIAG_BY_FAMILY

	unixDiagShowICons = 0x08 // UDIAG_SHOW_ICONS
	unixDiagICons     = 3    // UNIX_DIAG_ICONS

	sizeofInetDiagReqV2 = 56
	sizeofInetDiagMsg   = 72
	sizeofUnixDiagReq   = 24
	sizeofUnixDiagMsg   = 16
)

var errDiag = errors.New("sock_diag: unexpected reply")

// diagQueries counts sock_diag requests, for tests.
var diagQueries atomic.Int64

// pendingTCP returns the cookies of the TCP connections of the given
// family on local port port that no one has accepted yet (each counted
// once: a cookie names one connection).
func pendingTCP(family int, port uint16) (map[uint64]int, error) {
	req, r := diagRequest(sizeofInetDiagReqV2, unix.NLM_F_DUMP)
	ne := binary.NativeEndian
	r[0] = byte(family)
	r[1] = unix.IPPROTO_TCP
	// Established, and close-wait for a client that already hung up. (A
	// TCP Fast Open connection waits in SYN_RECV: not named, so a child
	// that leaves one is not judged by it.)
	ne.PutUint32(r[4:], 1<<unix.BPF_TCP_ESTABLISHED|1<<unix.BPF_TCP_CLOSE_WAIT)
	// idiag_sport, in network order: the kernel skips other local ports
	// as it walks its table (every kernel with sock_diag; the bytecode
	// op INET_DIAG_BC_S_EQ would need 4.16).
	binary.BigEndian.PutUint16(r[8:], port)
	pending := map[uint64]int{}
	err := sockDiag(req, func(typ uint16, m []byte) error { return inetPending(pending, typ, m) })
	return pending, err
}

// inetPending adds the cookie of m, one inet_diag_msg, to pending if no
// file holds its connection yet.
func inetPending(pending map[uint64]int, typ uint16, m []byte) error {
	if typ != sockDiagByFamily || len(m) < sizeofInetDiagMsg {
		return errDiag
	}
	ne := binary.NativeEndian
	if ne.Uint32(m[68:]) == 0 { // idiag_inode: no file yet
		pending[ne.Uint64(m[44:])]++ // idiag_cookie
	}
	return nil
}

// pendingUnix returns the connections waiting on the UNIX listening socket
// whose inode is ino, by their clients' inodes, counted: a client that has
// closed its end is inode 0, however many there are. (The kernel answers
// one such request in about a page: beyond some 1,900 pending connections
// it fails with EMSGSIZE, and the service is not judged.)
func pendingUnix(ino uint64) (map[uint64]int, error) {
	req, r := diagRequest(sizeofUnixDiagReq, 0)
	ne := binary.NativeEndian
	r[0] = unix.AF_UNIX
	ne.PutUint32(r[4:], ^uint32(0)) // any state
	ne.PutUint32(r[8:], uint32(ino))
	ne.PutUint32(r[12:], unixDiagShowICons)
	ne.PutUint64(r[16:], ^uint64(0)) // INET_DIAG_NOCOOKIE: by inode alone
	pending := map[uint64]int{}
	err := sockDiag(req, func(typ uint16, m []byte) error { return unixPending(pending, typ, m) })
	return pending, err
}

// unixPending adds the inodes m, one unix_diag_msg, lists as pending
// connections (its UNIX_DIAG_ICONS attribute) to pending.
func unixPending(pending map[uint64]int, typ uint16, m []byte) error {
	if typ != sockDiagByFamily || len(m) < sizeofUnixDiagMsg {
		return errDiag
	}
	ne := binary.NativeEndian
	for attrs := m[sizeofUnixDiagMsg:]; len(attrs) >= unix.SizeofRtAttr; {
		l := int(ne.Uint16(attrs[0:]))
		if l < unix.SizeofRtAttr || l > len(attrs) {
			return errDiag
		}
		if ne.Uint16(attrs[2:]) == unixDiagICons {
			for v := attrs[unix.SizeofRtAttr:l]; len(v) >= 4; v = v[4:] {
				pending[uint64(ne.Uint32(v))]++
			}
		}
		attrs = attrs[min((l+3)&^3, len(attrs)):]
	}
	return nil
}

// diagRequest is a sock_diag request of a body of size bytes, with flags
// besides NLM_F_REQUEST: the whole message, and its body to fill in.
func diagRequest(size int, flags uint16) (req, body []byte) {
	req = make([]byte, unix.NLMSG_HDRLEN+size)
	binary.NativeEndian.PutUint32(req[0:], uint32(len(req)))
	binary.NativeEndian.PutUint16(req[4:], sockDiagByFamily)
	binary.NativeEndian.PutUint16(req[6:], unix.NLM_F_REQUEST|flags)
	return req, req[unix.NLMSG_HDRLEN:]
}

// sockDiag sends req on a new NETLINK_SOCK_DIAG socket and hands each
// reply's payload to each, until the end of a dump or of a single reply.
func sockDiag(req []byte, each func(typ uint16, payload []byte) error) error {
	diagQueries.Add(1)
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	// The loop waits for the answer: never for long.
	tv := unix.Timeval{Sec: 1}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return err
	}
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	dump := binary.NativeEndian.Uint16(req[6:])&unix.NLM_F_DUMP != 0
	buf := make([]byte, 32<<10)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if done, err := diagMessages(buf[:n], dump, each); done || err != nil {
			return err
		}
	}
}

// diagMessages hands each netlink message of b, one read's worth, to
// each; done at the end of a dump, at an error reply, or after the one
// reply of a request that is not a dump.
func diagMessages(b []byte, dump bool, each func(typ uint16, payload []byte) error) (done bool, err error) {
	for len(b) >= unix.NLMSG_HDRLEN {
		l := int(binary.NativeEndian.Uint32(b[0:]))
		typ := binary.NativeEndian.Uint16(b[4:])
		if l < unix.NLMSG_HDRLEN || l > len(b) {
			return true, errDiag
		}
		switch typ {
		case unix.NLMSG_DONE:
			return true, nil
		case unix.NLMSG_ERROR:
			if l >= unix.NLMSG_HDRLEN+4 {
				if e := int32(binary.NativeEndian.Uint32(b[unix.NLMSG_HDRLEN:])); e != 0 {
					return true, unix.Errno(-e)
				}
			}
			return true, nil
		}
		if err := each(typ, b[unix.NLMSG_HDRLEN:l]); err != nil {
			return true, err
		}
		if !dump {
			return true, nil
		}
		b = b[min((l+3)&^3, len(b)):]
	}
	return false, nil
}
