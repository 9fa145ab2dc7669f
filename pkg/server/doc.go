// Package server is superd's event loop and the per-service state machines
// it drives.
//
// Invariants:
//   - One goroutine, the loop (Server.Run), owns every fd that matters: the
//     epoll instance, every listening socket, every child's pidfd and stderr
//     pipe, and the eventfd through which the rest of the program reaches it.
//     Other goroutines never touch those fds; they post closures to the loop
//     (Server.post), which runs them between events.
//   - The loop blocks only in epoll_wait, and in a fork when nothing else
//     waits (flushSpawns). Forking blocks until the child's execve, so
//     spawns run on a pool of spawners, each on a thread of its own with a
//     private, nearly empty fd table (spawner_linux.go); the loop decides
//     limits before handing a connection over, so limits stay exact.
//   - Nothing runs while nothing happens: no tickers; timers exist only while
//     something waits on them (a back-off, a stop timeout).
package server
