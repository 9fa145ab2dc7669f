package server

import (
	"bytes"
	"os"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// stderrOut is the stderr of a service's children under `stderr: log`: one
// UNIX stream socket pair per service, made at its first spawn, whose
// write end every child gets as fd 2 (as systemd connects a service's
// stderr to the journal). superd's read end has SO_PASSCRED, so each read
// carries the pid of the process that wrote the data, and the kernel never
// merges the writes of two processes into one read: lines stay attributed
// to their writer without a pipe per child. (A pipe per child cost a
// pipe2, an epoll registration and two closes per connection on the loop:
// 5-10 % of connections/s at one concurrent client.)
//
// The pair outlives its service object: a reload hands it to the service
// of the same name (service.adopt), and a service that goes away, or stops
// logging stderr, retires it: superd closes its copy of the write end and
// keeps reading until every child and grandchild has closed theirs.
type stderrOut struct {
	svc  *service // logs under this service; follows reloads
	r, w int      // w is -1 once retired
	// partial holds, per writer pid, the start of a line not yet ended.
	partial map[int32][]byte
}

// maxStderrLine bounds a buffered partial line: a child writing megabytes
// without a newline gets it logged in pieces.
const maxStderrLine = 4096

// maxStderrReads bounds the reads per readiness event: a child writing to
// stderr faster than superd logs must not keep the loop from everything
// else. The socket stays readable, so epoll comes back to it.
const maxStderrReads = 16

// maxStderrWriters bounds the partial lines kept: past it, all are logged
// as they are. Only processes that write without a newline and never exit
// as superd's children (grandchildren) can fill it.
const maxStderrWriters = 64

// stderrPair returns the pair whose write end a child of svc gets as its
// stderr under `stderr: log`, making it if the service has none.
func (svc *service) stderrPair(s *Server) (*stderrOut, error) {
	if o := svc.errOut; o != nil {
		return o, nil
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("socketpair", err)
	}
	o := &stderrOut{svc: svc, r: fds[0], w: fds[1]}
	// superd only reads its end and children only write theirs. Only
	// superd's end is non-blocking: the ends are separate open file
	// descriptions, so a child's stderr stays blocking.
	err = unix.SetsockoptInt(o.r, unix.SOL_SOCKET, unix.SO_PASSCRED, 1)
	if err == nil {
		err = unix.SetNonblock(o.r, true)
	}
	if err == nil {
		err = s.watch(o.r, unix.EPOLLIN, o)
	}
	if err != nil {
		unix.Close(o.r)
		unix.Close(o.w)
		return nil, err
	}
	unix.Shutdown(o.r, unix.SHUT_WR)
	s.stderrs[o] = struct{}{}
	svc.errOut = o
	return o, nil
}

func (o *stderrOut) ready(s *Server, _ uint32) {
	o.drain(s)
}

// drain reads (a bounded amount of) what the socket holds and logs
// complete lines. At end of file — every write end closed, or a child shut
// its end down — it logs the rest and closes the pair; the service makes a
// new one at its next spawn.
func (o *stderrOut) drain(s *Server) {
	if o.r < 0 {
		return
	}
	var buf [4096]byte
	var oob [64]byte // one SCM_CREDENTIALS message
	for i := 0; i < maxStderrReads; i++ {
		n, oobn, _, _, err := unix.Recvmsg(o.r, buf[:], oob[:], unix.MSG_CMSG_CLOEXEC)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return // EAGAIN: all read
		}
		if n == 0 {
			o.close(s)
			return
		}
		pid := writerPID(oob[:oobn])
		o.add(pid, buf[:n])
	}
}

// writerPID is the pid in a read's SCM_CREDENTIALS message, or 0.
func writerPID(oob []byte) int32 {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0
	}
	for i := range msgs {
		if cred, err := unix.ParseUnixCredentials(&msgs[i]); err == nil {
			return cred.Pid
		}
	}
	return 0
}

// add logs the complete lines of pid's data and keeps the rest.
func (o *stderrOut) add(pid int32, data []byte) {
	line := o.partial[pid]
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			line = append(line, data...)
			break
		}
		if len(line) > 0 {
			line = append(line, data[:i]...)
			o.log(pid, line)
			line = line[:0]
		} else {
			o.log(pid, data[:i])
		}
		data = data[i+1:]
	}
	for len(line) >= maxStderrLine {
		o.log(pid, line[:maxStderrLine])
		line = append(line[:0], line[maxStderrLine:]...)
	}
	switch {
	case len(line) > 0:
		if o.partial == nil {
			o.partial = make(map[int32][]byte)
		}
		o.partial[pid] = line
		if len(o.partial) > maxStderrWriters {
			o.flushAll()
		}
	case o.partial != nil:
		delete(o.partial, pid)
	}
}

// flush logs what pid wrote after its last newline: at its exit.
func (o *stderrOut) flush(pid int32) {
	if line := o.partial[pid]; len(line) > 0 {
		o.log(pid, line)
	}
	delete(o.partial, pid)
}

func (o *stderrOut) flushAll() {
	for pid := range o.partial {
		o.flush(pid)
	}
}

// log logs one line. The line is copied: zap.ByteString would keep a
// reference to the read buffer, which a core that encodes later (a test's
// observer) would see overwritten.
func (o *stderrOut) log(pid int32, line []byte) {
	o.svc.logger().Info("stderr", zap.Int("pid", int(pid)), zap.String("line", string(bytes.TrimRight(line, "\r"))))
}

// retire closes superd's copy of the write end: no new child gets it, and
// the pair closes once the last process holding it has.
func (o *stderrOut) retire() {
	if o.w >= 0 {
		unix.Close(o.w)
		o.w = -1
	}
	if o.svc.errOut == o {
		o.svc.errOut = nil
	}
}

// close logs what is left and closes both ends.
func (o *stderrOut) close(s *Server) {
	o.flushAll()
	o.retire()
	if o.r >= 0 {
		s.unwatch(o.r)
		unix.Close(o.r)
		o.r = -1
	}
	delete(s.stderrs, o)
}
