package server

import (
	"encoding/binary"
	"errors"
	"os"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/superd/superd/pkg/spawn"
)

// The spawner pool forks children for the loop, so that a fork, which
// blocks its thread until the child has exec'd, never blocks the loop, and
// forks run in parallel on many cores.
//
// Each spawner is a goroutine locked to a thread of its own whose file
// descriptor table is private (unshare(CLONE_FILES)) and nearly empty. A
// fork copies the forking thread's table and exec then closes every
// close-on-exec entry, so forking from superd's own table — one entry per
// listening socket — costs time in proportion to the number of configured
// services: at 10,000 services a quarter of the one-service rate. From a
// private table it costs the same at any count.
//
// The loop hands a spawn over as a message on a SOCK_SEQPACKET socket pair
// that carries the child's files (SCM_RIGHTS) and a job number; the kernel
// installs the files in the receiving spawner's table and queues messages
// for whichever spawner is free. The loop closes its copies as soon as the
// message is sent. Results come back through Server.post; the loop opens
// the child's pidfd itself, in its own table (superd is the child's parent,
// so the pid cannot be reused before the loop has reaped it).

// maxInFlight bounds the spawn messages queued in the socket pair; more
// wait in the loop, in order. It stays far below what the socket's buffer
// holds by default; should a send still find the buffer full, that job
// waits for the next result too. (A variable for a test.)
var maxInFlight = 64

// maxSpawnFiles is the most fds one spawn message carries: the kernel takes
// at most 253 per SCM_RIGHTS message, and the message indexes them in a
// byte. A child with more (a listen_fds service with hundreds of sockets)
// is started by the loop itself.
const maxSpawnFiles = 250

// spawnJob is one child to start; files are the loop's fd numbers for the
// child's fds 0, 1, 2, 3...
type spawnJob struct {
	id    uint64
	c     *child
	spec  *spawn.Spec
	files []int
	env   []string
}

// spawnResult is a job's outcome as the loop needs it.
type spawnResult struct {
	pid     int
	started time.Time
	err     error
}

type spawnPool struct {
	// send is the loop's end of the socket pair; recv the spawners'.
	send, recv int
	// post delivers a result to the loop; false once the loop has ended.
	post func(*spawnJob, spawnResult) bool

	mu   sync.Mutex
	jobs map[uint64]*spawnJob // sent, not yet taken by a spawner

	// spawners are the spawners' threads; set by startPool, read-only after.
	spawners []isolation

	// Owned by the loop.
	nextID   uint64
	inFlight int         // sent, result not yet back
	waiting  []*spawnJob // not yet sent (maxInFlight reached)
}

// startPool starts n spawners. post delivers each result to the loop.
func startPool(n int, post func(*spawnJob, spawnResult) bool) (*spawnPool, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("socketpair", err)
	}
	p := &spawnPool{send: fds[0], recv: fds[1], post: post, jobs: make(map[uint64]*spawnJob)}
	// The runtime's own poller (an epoll instance and an eventfd, which
	// any thread may use to wake it or poll) must exist before the
	// spawners copy the table, or a spawner's table would lack it and the
	// runtime would die on EBADF. Opening a pollable file makes it; if
	// that fails, the spawners keep sharing superd's table.
	private := false
	if r, w, err := os.Pipe(); err == nil {
		r.Close()
		w.Close()
		private = true
	}
	// The loop's sends never wait: maxInFlight keeps the queue short.
	unix.SetNonblock(p.send, true)
	isolated := make(chan isolation)
	for i := 0; i < n; i++ {
		go p.spawner(isolated, private)
	}
	// Every spawner has its private table before the caller opens more
	// descriptors (listening sockets) that the spawners would only close.
	running := 0
	for i := 0; i < n; i++ {
		iso := <-isolated
		if iso.recv >= 0 {
			running++
			p.spawners = append(p.spawners, iso)
		}
		if iso.private {
			unix.Close(iso.recv) // the spawner's copy is in its own table
		}
	}
	unix.Close(p.recv)
	if running == 0 {
		unix.Close(p.send)
		return nil, errors.New("no spawner could start (out of file descriptors)")
	}
	return p, nil
}

// isolation is what a starting spawner tells startPool: its own fd of the
// receiving end, and whether its table is private (then the copy left in
// superd's table is startPool's to close).
type isolation struct {
	recv    int
	private bool
	tid     int
}

// stop ends the spawners once they have finished what was sent; it does not
// wait for them.
func (p *spawnPool) stop() {
	for _, j := range p.waiting {
		j.c.closeOwned()
		j.c.dropStderr()
	}
	p.waiting = nil
	// A spawner's recvmsg sees EOF once the loop's end is closed and the
	// queue is empty.
	unix.Close(p.send)
}

// submit hands j to the pool. Called on the loop only.
func (p *spawnPool) submit(j *spawnJob) {
	if p.inFlight >= maxInFlight || len(p.waiting) > 0 {
		p.waiting = append(p.waiting, j)
		return
	}
	p.send1(j)
}

// idle says whether no spawn is in flight or waiting.
func (p *spawnPool) idle() bool { return p.inFlight == 0 && len(p.waiting) == 0 }

// next sends the oldest waiting job, if any; the loop calls it for each
// result that comes back.
func (p *spawnPool) next() {
	if len(p.waiting) == 0 || p.inFlight >= maxInFlight {
		return
	}
	j := p.waiting[0]
	p.waiting[0] = nil
	p.waiting = p.waiting[1:]
	if len(p.waiting) == 0 {
		p.waiting = nil
	}
	p.send1(j)
}

// send1 sends one job's files and number, then closes the loop's copies of
// the files it owned: from here on the message holds them.
func (p *spawnPool) send1(j *spawnJob) {
	p.nextID++
	j.id = p.nextID
	// The message: job number, then for each child fd the index of its
	// file among the distinct files passed.
	var distinct []int
	msg := make([]byte, 8, 8+len(j.files))
	binary.LittleEndian.PutUint64(msg, j.id)
	for _, fd := range j.files {
		idx := -1
		for k, d := range distinct {
			if d == fd {
				idx = k
				break
			}
		}
		if idx < 0 {
			idx = len(distinct)
			distinct = append(distinct, fd)
		}
		msg = append(msg, byte(idx))
	}
	p.mu.Lock()
	p.jobs[j.id] = j
	p.mu.Unlock()
	p.inFlight++
	err := unix.Sendmsg(p.send, msg, unix.UnixRights(distinct...), nil, unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL)
	if err != nil {
		p.mu.Lock()
		delete(p.jobs, j.id)
		p.mu.Unlock()
		if err == unix.EAGAIN && p.inFlight > 1 {
			// The socket's buffer is smaller than maxInFlight assumes:
			// wait for a result to make room.
			p.inFlight--
			p.waiting = append([]*spawnJob{j}, p.waiting...)
			return
		}
		// Reported like a failed fork, through the loop's queue like
		// any result (the loop's copies are closed below either way).
		p.post(j, spawnResult{started: time.Now(), err: os.NewSyscallError("sendmsg", err)})
	}
	j.c.closeOwned()
}

// spawner is one spawner's life. It never unlocks its thread: the thread's
// table is its own, and the runtime ends the thread when the goroutine ends.
func (p *spawnPool) spawner(isolated chan<- isolation, private bool) {
	runtime.LockOSThread()
	// Each spawner reads from a descriptor of its own, which it closes
	// when it ends, whichever table it lives in.
	recv, err := unix.FcntlInt(uintptr(p.recv), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		isolated <- isolation{recv: -1}
		return
	}
	defer unix.Close(recv)
	// On the process's main thread a private table would also be what
	// /proc/PID/fd shows and what pidfd_getfd and others see: keep sharing
	// (superd keeps its main goroutine there, so this happens in tests).
	if private && unix.Gettid() == unix.Getpid() {
		private = false
	}
	if private {
		switch err := isolate(recv); {
		case err == errNotIsolated:
			private = false
		case err != nil:
			// The table is private but still holds copies of superd's
			// sockets; ending the goroutine ends the thread and its
			// table with it.
			isolated <- isolation{recv: -1}
			return
		}
	}
	isolated <- isolation{recv: recv, private: private, tid: unix.Gettid()}

	buf := make([]byte, 8+maxSpawnFiles)
	oob := make([]byte, unix.CmsgSpace(4*maxSpawnFiles))
	var files, got []int
	for failures := 0; ; {
		n, oobn, flags, _, err := unix.Recvmsg(recv, buf, oob, unix.MSG_CMSG_CLOEXEC)
		got = receivedFDs(got[:0], oob[:oobn])
		switch {
		case err == nil && n == 0:
			return // end of file: the pool was stopped
		case err != nil:
			// EINTR, or a transient shortage (ENOMEM, ENOBUFS): the
			// message stays queued. Anything persistent would spin, so
			// give up after many failures in a row.
			if failures++; failures > 1000 {
				return
			}
			continue
		}
		failures = 0
		if n < 8 {
			closeAll(got)
			continue // not one of the loop's messages
		}
		id := binary.LittleEndian.Uint64(buf)
		p.mu.Lock()
		j := p.jobs[id]
		delete(p.jobs, id)
		p.mu.Unlock()
		if j == nil {
			closeAll(got) // no job of the loop's: nothing counts it
			continue
		}
		files = files[:0]
		for _, idx := range buf[8:n] {
			if int(idx) < len(got) {
				files = append(files, got[idx])
			}
		}
		var r spawnResult
		if flags&(unix.MSG_CTRUNC|unix.MSG_TRUNC) != 0 || len(files) != n-8 {
			r.err = syscall.EBADMSG
		} else {
			r.pid, r.err = j.spec.StartPid(files, j.env)
		}
		r.started = time.Now()
		closeAll(got)
		if !p.post(j, r) {
			// The loop has ended: nobody will wait for this child, or
			// close its stderr pipe.
			if r.err == nil {
				unix.Kill(r.pid, unix.SIGKILL)
				var ws unix.WaitStatus
				unix.Wait4(r.pid, &ws, 0, nil)
			}
			j.c.dropStderr()
		}
	}
}

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// receivedFDs appends to fds the descriptors of the SCM_RIGHTS messages in
// oob, the ancillary data of a recvmsg. It is x/sys's
// ParseSocketControlMessage and ParseUnixRights without their two
// allocations per message (a spawn's hand-over is one message); a
// malformed header ends it with what came before, which the caller then
// closes like the rest.
func receivedFDs(fds []int, oob []byte) []int {
	for len(oob) >= unix.CmsgLen(0) {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		if int64(h.Len) < int64(unix.CmsgLen(0)) || uint64(h.Len) > uint64(len(oob)) {
			break
		}
		if h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_RIGHTS {
			for data := oob[unix.CmsgLen(0):h.Len]; len(data) >= 4; data = data[4:] {
				fds = append(fds, int(*(*int32)(unsafe.Pointer(&data[0]))))
			}
		}
		// The next header starts where this one's space ends, aligned.
		next := unix.CmsgSpace(int(h.Len) - unix.CmsgLen(0))
		if next > len(oob) {
			break
		}
		oob = oob[next:]
	}
	return fds
}

// errNotIsolated says isolate left the thread sharing superd's table.
var errNotIsolated = errors.New("fd table not isolated")

// isolate gives the calling (locked) thread a private fd table and closes
// in it every fd from 3 up except keep and the event-notification fds
// (epoll instances, eventfds) that the Go runtime and the loop may use
// from any thread: what is left is a handful of entries. If it cannot even
// list the fds it leaves the table shared (errNotIsolated); an error after
// the unshare means the private table still holds copies of superd's
// sockets, and the caller must end the thread.
func isolate(keep int) error {
	// Opened before the unshare, read after it: a directory of
	// /proc/thread-self/fd lists the table of the thread reading it.
	dir, err := unix.Open("/proc/thread-self/fd", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return errNotIsolated
	}
	if err := unix.Unshare(unix.CLONE_FILES); err != nil {
		unix.Close(dir)
		return errNotIsolated
	}
	defer unix.Close(dir)
	var fds []int
	buf := make([]byte, 4096)
	for {
		n, err := unix.ReadDirent(dir, buf)
		if err != nil {
			return os.NewSyscallError("getdents64", err)
		}
		if n <= 0 {
			break
		}
		var names []string
		_, _, names = syscall.ParseDirent(buf[:n], -1, names)
		for _, name := range names {
			if fd, err := strconv.Atoi(name); err == nil && fd > 2 && fd != keep && fd != dir {
				fds = append(fds, fd)
			}
		}
	}
	link := make([]byte, 64)
	for _, fd := range fds {
		n, err := unix.Readlink("/proc/thread-self/fd/"+strconv.Itoa(fd), link)
		if err == nil {
			switch string(link[:n]) {
			case "anon_inode:[eventpoll]", "anon_inode:[eventfd]":
				continue
			}
		}
		unix.Close(fd)
	}
	return nil
}
