// Package server is superd's event loop and the per-service state machines
// it drives.
//
// Invariants:
//   - One goroutine, the loop (Server.Run), owns every fd that matters: the
//     epoll instance, every listening socket, every child's pidfd and stderr
//     pipe, and the eventfd through which the rest of the program reaches it.
//     Other goroutines never touch those fds; they post closures to the loop
//     (Server.post), which runs them between events.
//   - The loop never blocks except in epoll_wait. Forking does block (a
//     vfork-style clone waits for the child's execve), so spawns run on a
//     bounded pool of goroutines; the loop decides limits before handing a
//     connection over, so limits stay exact.
//   - Nothing runs while nothing happens: no tickers; timers exist only while
//     something waits on them (a back-off, a stop timeout).
package server
