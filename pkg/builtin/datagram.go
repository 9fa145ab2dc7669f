package builtin

import (
	"math/rand/v2"
	"net/netip"
	"time"
)

// ReplyBufSize is the capacity of buf that makes ReplyDatagram
// allocation-free for every service: the longest reply it builds in buf
// (a chargen datagram) is this long.
const ReplyBufSize = dgramMax

// ReplyDatagram answers one datagram req that arrived from the address from
// for the built-in service name, building the reply in buf (its contents
// are overwritten; nil is allowed). It returns ok=false when the datagram
// must be dropped without a reply: discard, an unknown name, or a source
// the anti-reflection rule of the package documentation refuses. With
// ok=true the loop sends reply, which may be empty (a chargen datagram of
// length 0), to from. reply aliases req (echo) or buf and is valid until
// either is reused. now may be nil for time.Now. ReplyDatagram is safe for
// concurrent use and never blocks.
func ReplyDatagram(name string, req []byte, from netip.AddrPort, now func() time.Time, buf []byte) (reply []byte, ok bool) {
	if !sourceAllowed(from) {
		return nil, false
	}
	if now == nil {
		now = time.Now
	}
	switch name {
	case nameEcho:
		return req, true
	case nameDaytime:
		return appendDaytime(buf[:0], now()), true
	case nameTime:
		return appendTime(buf[:0], now()), true
	case nameChargen:
		start := rand.IntN(ringLen) * lineLen
		n := rand.IntN(dgramMax + 1)
		return append(buf[:0], chargenTable[start:start+n]...), true
	}
	return nil, false
}

// nfsPort is refused as a source like the reserved ports, as OpenBSD's
// inetd does: an NFS server answers whatever arrives there.
const nfsPort = 2049

// sourceAllowed applies the anti-reflection rule of the package
// documentation to the source of a datagram.
func sourceAllowed(from netip.AddrPort) bool {
	if !from.IsValid() {
		return false
	}
	if !portAllowed(from.Port()) {
		return false
	}
	addr := from.Addr().Unmap()
	if addr.IsUnspecified() || addr.IsMulticast() {
		return false
	}
	if addr.Is4() {
		a := addr.As4()
		if a[0] == 0 || a == [4]byte{255, 255, 255, 255} {
			return false
		}
	}
	return true
}

// portAllowed reports whether a datagram from port may be answered.
func portAllowed(port uint16) bool {
	switch port {
	case 7, 9, 13, 19, 37: // the built-ins' own ports, named so that no two built-ins can ping-pong
		return false
	case nfsPort:
		return false
	}
	return port >= 1024
}
