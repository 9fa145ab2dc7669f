package spawn

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/superd/superd/pkg/config"
)

// launchVerb is the hidden argv[1] with which superd re-executes itself as a
// launcher; MaybeLaunch recognises it.
const launchVerb = "__superd_launch"

// selfExe is what the launcher path executes: the running superd binary, even
// if the file on disk was replaced since (a child resolves it before exec, so
// it still names the parent's image).
const selfExe = "/proc/self/exe"

// processUmask is superd's own umask, read once: a service whose umask equals
// it needs no launcher for it.
var processUmask = func() int {
	m := unix.Umask(0o022)
	unix.Umask(m)
	return m
}()

// Spec is everything about starting a service's children that does not change
// between activations; it is built once per service (and per reload).
type Spec struct {
	path string
	argv []string
	// Env is the base environment of every child (config.Service.Env).
	env []string
	dir string
	// sys is copied per start; only PidFD differs between starts.
	sys syscall.SysProcAttr
	// launch is non-nil when the child must start through the launcher.
	launch *launchParams
}

// launchParams are the attributes the launcher applies before execve. They
// travel JSON-encoded in argv: the launcher is off the hot path.
type launchParams struct {
	Umask     int      `json:"umask"`
	Nice      int      `json:"nice,omitempty"`
	Rlimits   []rlimit `json:"rlimits,omitempty"`
	UID       *uint32  `json:"uid,omitempty"`
	GID       uint32   `json:"gid,omitempty"`
	Groups    []uint32 `json:"groups,omitempty"`
	ListenPID bool     `json:"listen_pid,omitempty"`
	// StatusFD is the write end of the pipe on which the launcher reports
	// why it could not start the program; close-on-exec, it closes
	// unwritten once the program runs (launchStatus).
	StatusFD int `json:"status_fd"`
}

type rlimit struct {
	Resource int    `json:"r"`
	Cur      uint64 `json:"c"`
	Max      uint64 `json:"m"`
}

// NewSpec precomputes how to start children of svc, which must be an exec
// service.
func NewSpec(svc *config.Service) *Spec {
	argv := append([]string(nil), svc.Exec...)
	if svc.Argv0 != "" {
		argv[0] = svc.Argv0
	}
	s := &Spec{
		path: svc.Exec[0],
		argv: argv,
		env:  svc.Env,
		dir:  svc.WorkingDirectory,
	}
	// The fork's chdir is skipped when the child would start there anyway.
	if wd, err := os.Getwd(); err == nil && wd == s.dir {
		s.dir = ""
	}
	// A session of its own keeps a terminal's signals to superd away from
	// children and lets a child's own job control work.
	s.sys.Setsid = true

	cred := credentialFor(svc.Credential)
	needLaunch := int(svc.Umask) != processUmask || svc.Nice != 0 || len(svc.Rlimits) > 0 ||
		svc.Pass == config.PassListenFDs
	if !needLaunch {
		s.sys.Credential = cred
		return s
	}
	p := &launchParams{Umask: int(svc.Umask), Nice: int(svc.Nice), ListenPID: svc.Pass == config.PassListenFDs}
	// The status pipe follows the child's other fds: stdin, stdout and
	// stderr, then the passed sockets (the connection, or the listening
	// sockets of wait mode).
	p.StatusFD = 3
	switch {
	case svc.Pass != config.PassListenFDs:
	case svc.Mode == config.Accept:
		p.StatusFD++
	default:
		p.StatusFD += len(svc.Sockets)
	}
	for _, r := range svc.Rlimits {
		p.Rlimits = append(p.Rlimits, rlimit{Resource: r.Resource, Cur: r.Value, Max: r.Value})
	}
	// Raising limits and lowering nice need privilege, so the launcher
	// drops credentials itself, after applying them.
	if cred != nil {
		uid := cred.Uid
		p.UID, p.GID, p.Groups = &uid, cred.Gid, cred.Groups
	}
	enc, err := json.Marshal(p)
	if err != nil {
		panic(err) // plain data: cannot fail
	}
	s.launch = p
	s.argv = append([]string{"superd-launch", launchVerb, string(enc), s.path}, argv...)
	s.path = selfExe
	return s
}

// credentialFor maps a resolved credential to Go's form. It returns nil when
// no switch is needed — the child would be what superd is anyway (a common
// `user: root`), which spares each spawn three syscalls — and without the
// privilege to switch (switchesUsers), where only superd's own user is
// possible and asking for another would fail setgroups or setuid.
func credentialFor(c *config.Credential) *syscall.Credential {
	if c == nil {
		return nil
	}
	if int(c.UID) == os.Geteuid() && int(c.GID) == os.Getegid() && sameGroups(c.Groups, c.GID) {
		return nil
	}
	if !switchesUsers() {
		// Without privilege the child can only be superd's own user:
		// user, group and groups are ignored, as xinetd ignores them
		// when not run as root (NotRootNotes says so at load).
		return nil
	}
	groups := c.Groups
	if groups == nil {
		// An empty Groups clears the supplementary groups, which is
		// what nil means in the configuration.
		groups = []uint32{}
	}
	return &syscall.Credential{Uid: c.UID, Gid: c.GID, Groups: groups}
}

// sameGroups says whether want are superd's supplementary groups, not
// counting the primary group gid (being in it already, a supplementary
// entry for it changes nothing: root's [0] is root's []).
func sameGroups(want []uint32, gid uint32) bool {
	have, err := os.Getgroups()
	if err != nil {
		return false
	}
	set := func(gs []uint32) map[uint32]bool {
		m := make(map[uint32]bool, len(gs))
		for _, g := range gs {
			if g != gid {
				m[g] = true
			}
		}
		return m
	}
	h := make([]uint32, len(have))
	for i, g := range have {
		h[i] = uint32(g)
	}
	a, b := set(h), set(want)
	if len(a) != len(b) {
		return false
	}
	for g := range b {
		if !a[g] {
			return false
		}
	}
	return true
}

// UsesLauncher reports whether children of this spec start through the
// launcher (one extra exec).
func (s *Spec) UsesLauncher() bool { return s.launch != nil }

// Start starts one child with files placed as its fds 0, 1, 2, 3... and env
// as its whole environment. It returns the child's pid and a pidfd (O_CLOEXEC)
// that becomes readable when the child exits. The caller keeps ownership of
// files.
func (s *Spec) Start(files []int, env []string) (pid, pidfd int, err error) {
	pidfd = -1
	pid, err = s.start(files, env, &pidfd)
	if err != nil {
		return 0, -1, err
	}
	if pidfd < 0 {
		// Kernels before 5.3 have no pidfds; superd needs them to wait
		// for children without a SIGCHLD handler.
		return pid, -1, fmt.Errorf("start %s: kernel returned no pidfd", s.displayPath())
	}
	return pid, pidfd, nil
}

// StartPid is Start without the pidfd, for a caller that opens one itself
// (pidfd_open) in another fd table than the calling thread's.
func (s *Spec) StartPid(files []int, env []string) (pid int, err error) {
	return s.start(files, env, nil)
}

func (s *Spec) start(files []int, env []string, pidfd *int) (int, error) {
	sys := s.sys
	sys.PidFD = pidfd
	fds := make([]uintptr, len(files), len(files)+1)
	for i, f := range files {
		fds[i] = uintptr(f)
	}
	var status [2]int
	if s.launch != nil {
		if len(files) != s.launch.StatusFD {
			return 0, fmt.Errorf("start %s: %d files for a launcher that expects %d", s.displayPath(), len(files), s.launch.StatusFD)
		}
		if err := unix.Pipe2(status[:], unix.O_CLOEXEC); err != nil {
			return 0, fmt.Errorf("start %s: %w", s.displayPath(), os.NewSyscallError("pipe2", err))
		}
		defer unix.Close(status[0])
		fds = append(fds, uintptr(status[1]))
	}
	pid, err := syscall.ForkExec(s.path, s.argv, &syscall.ProcAttr{
		Dir:   s.dir,
		Env:   env,
		Files: fds,
		Sys:   &sys,
	})
	if s.launch != nil {
		unix.Close(status[1])
	}
	if err != nil {
		return 0, fmt.Errorf("start %s: %w", s.displayPath(), err)
	}
	if s.launch != nil {
		if err := launchStatus(status[0], pid, pidfd); err != nil {
			return 0, fmt.Errorf("start %s: %w", s.displayPath(), err)
		}
	}
	return pid, nil
}

// launchStatus waits until the launcher pid has started the program (the
// status pipe r closes unwritten at its execve) or failed to (it writes
// why, then exits 127). A failed launcher is reaped here and its pidfd, if
// any, closed, so that it counts as a failed spawn, not as a child: the
// program never ran. The wait is the launcher's start-up, about a
// millisecond, which is why the loop hands launcher spawns to the pool.
func launchStatus(r, pid int, pidfd *int) error {
	var msg []byte
	buf := make([]byte, 512)
	for {
		n, err := unix.Read(r, buf)
		if err == unix.EINTR {
			continue
		}
		if n <= 0 {
			break // EOF: the program runs (or the launcher died; its exit tells)
		}
		msg = append(msg, buf[:n]...)
	}
	if len(msg) == 0 {
		return nil
	}
	// The launcher's report: its errno (4 bytes, native order: the same
	// binary wrote it), then what failed.
	var fail error = launchError{msg: string(msg)}
	if len(msg) >= 4 {
		fail = launchError{errno: syscall.Errno(binary.NativeEndian.Uint32(msg)), msg: string(msg[4:])}
	}
	var ws unix.WaitStatus
	for {
		if _, err := unix.Wait4(pid, &ws, 0, nil); err != unix.EINTR {
			break
		}
	}
	if pidfd != nil && *pidfd >= 0 {
		unix.Close(*pidfd)
		*pidfd = -1
	}
	return fail
}

// launchError is a launcher's failure as it reported it: errors.Is finds
// its errno (EAGAIN from setuid at RLIMIT_NPROC, ENOMEM...), as it would
// for a failed fork+exec.
type launchError struct {
	errno syscall.Errno
	msg   string
}

func (e launchError) Error() string { return e.msg }

func (e launchError) Unwrap() error {
	if e.errno == 0 {
		return nil
	}
	return e.errno
}

func (s *Spec) displayPath() string {
	if s.launch != nil {
		return s.argv[3]
	}
	return s.path
}

// CloseInheritedOnExec marks every fd from 3 up close-on-exec. superd calls
// it at startup: fds it inherited from whatever started it (a shell, a
// supervisor) would otherwise reach every child, and a child must get only
// the fds placed for it.
func CloseInheritedOnExec() error {
	err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	if err == nil {
		return nil
	}
	if err != unix.ENOSYS && err != unix.EINVAL {
		return os.NewSyscallError("close_range", err)
	}
	// Kernels before 5.11: walk /proc/self/fd.
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return err
	}
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			unix.CloseOnExec(fd)
		}
	}
	return nil
}

// MaybeLaunch runs the launcher and exits if this process was started as
// one; otherwise it returns at once. A program that starts children with
// Spec (superd itself, and test binaries that run a server in-process) calls
// it first thing in main or TestMain, since the launcher is that program's
// own image.
func MaybeLaunch() {
	if len(os.Args) < 2 || os.Args[1] != launchVerb {
		return
	}
	err := runLauncher(os.Args[2:])
	if !reportLaunch(err) {
		fmt.Fprintln(os.Stderr, "superd:", err)
	}
	os.Exit(127)
}

// statusFD is the launcher's status pipe once runLauncher has read its
// parameters, else -1.
var statusFD = -1

// reportLaunch writes the launcher's failure to superd through the status
// pipe; false if there is none to write to.
func reportLaunch(err error) bool {
	if statusFD < 0 {
		return false
	}
	var errno syscall.Errno
	errors.As(err, &errno)
	report := binary.NativeEndian.AppendUint32(nil, uint32(errno))
	_, werr := unix.Write(statusFD, append(report, err.Error()...))
	return werr == nil
}

// runLauncher is the launcher's whole life: args are os.Args[2:] of an
// invocation whose argv[1] is launchVerb. It applies the encoded attributes
// and replaces itself with the target; it returns only on failure, with the
// error to report (the caller exits 127, like a shell whose exec failed).
func runLauncher(args []string) error {
	if len(args) < 3 {
		return fmt.Errorf("launcher: want PARAMS PATH ARGV0 [ARG...]")
	}
	var p launchParams
	if err := json.Unmarshal([]byte(args[0]), &p); err != nil {
		return fmt.Errorf("launcher: bad parameters: %w", err)
	}
	if p.StatusFD > 2 {
		// Closed at the program's execve: superd then reads EOF.
		unix.CloseOnExec(p.StatusFD)
		statusFD = p.StatusFD
	}
	path, argv := args[1], args[2:]
	// Nice is per thread on Linux and execve keeps the calling thread's:
	// setpriority and execve must run on the same thread.
	runtime.LockOSThread()
	for _, r := range p.Rlimits {
		lim := unix.Rlimit{Cur: r.Cur, Max: r.Max}
		if err := unix.Setrlimit(r.Resource, &lim); err != nil {
			return os.NewSyscallError("setrlimit "+strconv.Itoa(r.Resource), err)
		}
	}
	if p.Nice != 0 {
		if err := unix.Setpriority(unix.PRIO_PROCESS, 0, p.Nice); err != nil {
			return os.NewSyscallError("setpriority", err)
		}
	}
	unix.Umask(p.Umask)
	if p.UID != nil {
		if err := syscall.Setgroups(intSlice(p.Groups)); err != nil {
			return os.NewSyscallError("setgroups", err)
		}
		if err := syscall.Setgid(int(p.GID)); err != nil {
			return os.NewSyscallError("setgid", err)
		}
		if err := syscall.Setuid(int(*p.UID)); err != nil {
			return os.NewSyscallError("setuid", err)
		}
	}
	env := os.Environ()
	if p.ListenPID {
		env = append(env, "LISTEN_PID="+strconv.Itoa(os.Getpid()))
	}
	err := syscall.Exec(path, argv, env)
	return fmt.Errorf("exec %s: %w", path, err)
}

func intSlice(u []uint32) []int {
	out := make([]int, len(u))
	for i, v := range u {
		out[i] = int(v)
	}
	return out
}

// switchesUsers says whether superd may run children as other users: it is
// root, or has CAP_SETUID and CAP_SETGID in its effective set (a service
// account given them, with systemd's AmbientCapabilities= say).
var switchesUsers = sync.OnceValue(func() bool {
	if os.Geteuid() == 0 {
		return true
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	const need = 1<<unix.CAP_SETUID | 1<<unix.CAP_SETGID
	return data[0].Effective&need == need
})

// NotRootNotes lists, for a superd that may not switch users (not root,
// without CAP_SETUID and CAP_SETGID), the services whose user, group or
// groups ask for another user or groups than superd's: they are ignored
// (credentialFor), and each note says which, at the service's
// file:line:col. Any other superd gets none.
func NotRootNotes(cfg *config.Config) []string {
	if switchesUsers() {
		return nil
	}
	euid, egid := os.Geteuid(), os.Getegid()
	var notes []string
	for _, svc := range cfg.Services {
		c := svc.Credential
		if c == nil {
			continue
		}
		var key, what string
		switch {
		case int(c.UID) != euid:
			key, what = "user", c.User
		case int(c.GID) != egid:
			key, what = "group", "gid "+strconv.Itoa(int(c.GID))
		case !sameGroups(c.Groups, c.GID):
			key, what = "groups", fmt.Sprint(c.Groups)
		default:
			continue
		}
		notes = append(notes, fmt.Sprintf("%s:%d:%d: services.%s.%s: %s ignored: superd may not switch users (it is not root and lacks CAP_SETUID and CAP_SETGID), so its children run as superd's own user (uid %d) and groups, as xinetd's do",
			svc.Pos.File, svc.Pos.Line, svc.Pos.Col, svc.Name, key, what, euid))
	}
	return notes
}
