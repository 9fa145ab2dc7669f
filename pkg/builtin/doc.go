// Package builtin implements the services superd answers itself: the five
// classic inetd built-ins (`internal:` in the configuration) and the TCP
// relay behind `redirect:`. It is a library of pure protocol code: it knows
// nothing about epoll, configuration or metrics; the server loop accepts or
// reads, then calls in here.
//
// Invariants: ServeStream and Relay own the connections handed to them and
// always close them before returning, and every goroutine they start has
// ended by then; ReplyDatagram never blocks, never keeps req, buf or the
// reply, and allocates nothing when buf has at least ReplyBufSize bytes of
// capacity; the only package-level state is immutable tables built at init.
//
// # The services
//
//   - echo (RFC 862): stream: every byte read is written back, byte-exact,
//     until the client's EOF; a client that half-closes still gets the rest
//     of its echo, then the connection is closed. Datagram: the payload.
//   - discard (RFC 863): stream: read and drop until EOF. Datagram: no reply.
//   - daytime (RFC 867): one line in the format BSD inetd sends, ctime(3)
//     without its newline followed by CRLF: "Wed Nov 25 07:22:41 2026\r\n"
//     (Go's time.ANSIC layout), in the location of the time the clock
//     returns, so time.Now gives local time as ctime does. Stream: the line,
//     then close.
//   - time (RFC 868): the seconds since 1900-01-01T00:00:00Z as a 32-bit
//     big-endian number; the value wraps modulo 2^32 as the RFC's does
//     (next in February 2036). Stream: 4 bytes, then close.
//   - chargen (RFC 864): the 95 printable ASCII characters (0x20 to 0x7e) in
//     a ring; line i holds the 72 characters starting at ring position
//     i mod 95, then CRLF. Stream: lines from line 0 on until the client
//     goes away (a reset or broken pipe ends the session normally); data the
//     client sends is read and thrown away. Datagram: as RFC 864 asks, a
//     random number (0 to 512, uniform) of bytes of that line stream,
//     starting at the beginning of a random line. BSD inetd instead sends
//     exactly one 74-byte line per datagram, rotating the start from one
//     datagram to the next; superd follows the RFC and keeps no state.
//
// # Anti-reflection
//
// A UDP built-in answers a datagram whose source address anyone can forge,
// so an attacker can aim the answer at a third party or at another
// server's built-in, which answers back forever. As BSD inetd does
// (dg_badinput in OpenBSD's inetd.c), ReplyDatagram drops a datagram,
// without a reply, when any of these holds:
//
//   - the source is not a valid address and port;
//   - the source port is below 1024, the reserved ports on which other
//     servers answer, the built-ins' own ports 7, 9, 13, 19 and 37 among them
//     (listed explicitly too, so that no two built-ins can ping-pong even if
//     the threshold moves);
//   - the source port is 2049 (NFS), which OpenBSD refuses as well;
//   - the source address, after unmapping an IPv4-mapped IPv6 address as a
//     dual-stack socket reports IPv4 clients, is unspecified (0.0.0.0, ::)
//     or in 0.0.0.0/8, is multicast (224.0.0.0/4, ff00::/8), or is the IPv4
//     limited broadcast 255.255.255.255.
//
// Two deliberate differences from OpenBSD: loopback sources (127.0.0.0/8,
// ::1) are answered, because Linux already discards packets that claim a
// loopback source on any other interface (martian sources, unless
// route_localnet is set); and subnet-directed broadcast sources are not
// looked up per datagram, because that needs the host's interfaces, which
// this package does not know about, and Linux drops those as martians too.
// A built-in configured on a port of 1024 or above is not protected by the
// port rule against a peer on the same kind of port; the loop may drop, in
// addition, datagrams whose source port is the local port of one of its own
// UDP built-in sockets (FreeBSD's check_loop).
package builtin
