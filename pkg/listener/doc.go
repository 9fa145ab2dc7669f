// Package listener turns `listen` strings into addresses and addresses into
// bound, listening sockets with every socket option of the configuration
// applied.
//
// Invariants: every fd this package returns is O_CLOEXEC and O_NONBLOCK; the
// package never accepts, reads or spawns — whoever opened a socket owns it and
// closes it; it removes a file only if that file is a socket; and for every
// Address a ParseAddress returns, ParseAddress(a.String()) returns a again,
// so the canonical string can name a socket in logs and across reloads.
package listener
