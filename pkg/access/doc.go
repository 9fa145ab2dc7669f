// Package access decides, for one service, whether a new activation may go
// ahead: allow and deny prefixes (ACL), access_times windows (Times),
// connections per client address (SourceCounter) and rate_limit windows
// (RateLimiter), as SPEC §2.1 "Limits and access" describes them.
//
// Invariants:
//
//   - The package does no I/O and reads no clock of its own: every decision
//     that depends on time takes the time as an argument, so a test drives it
//     with a fake clock and the event loop passes one reading of its Clock to
//     every check of one connection.
//   - The hot path (ACL.Allowed, Times.Open, SourceCounter.Key/Inc/Dec/Count,
//     RateLimiter.Allow) does not allocate, except when SourceCounter.Inc adds
//     a key and its map must grow; everything is sized at construction.
//   - ACL and Times are immutable once built and may be shared freely.
//     SourceCounter and RateLimiter hold mutable state and are not safe for
//     concurrent use: exactly one goroutine, the event loop, owns each value.
//   - IPv4 clients of a dual-stack socket (::ffff:a.b.c.d) are IPv4 clients
//     everywhere in this package, and address zones are ignored.
//
// The nil *ACL, the zero Times and the nil *RateLimiter impose no limit, so a
// service without allow/deny, access_times or rate_limit needs no special case.
package access
