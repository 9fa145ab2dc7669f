// Package spawn starts service children: it turns a service's precomputed
// Spec plus the fds and per-connection environment of one activation into a
// running process and its pidfd.
//
// Invariants: a child receives exactly the fds placed in Start's files slice
// (fd i = files[i]) and nothing else of superd's, since every fd superd opens
// is O_CLOEXEC; every process attribute (credentials, umask, nice, rlimits,
// LISTEN_PID) is in force before the target program's first instruction.
//
// Two paths lead to a child. The fast path is one vfork-style clone+execve of
// the target (syscall.ForkExec), used when everything the child needs can be
// set up by Go's fork code: credentials, session, working directory, fds.
// Umask, nice, rlimits and LISTEN_PID (which must be the child's own pid) have
// no place there, so a service that needs any of them starts through the
// launcher: superd re-executes its own binary with a hidden verb, applies the
// attributes in the new process, then execve's the target in place — the pid
// stays the same, so LISTEN_PID is exact.
package spawn
