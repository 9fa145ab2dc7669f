// Package noipv6 lets a test process see what a kernel without IPv6
// (booted with ipv6.disable=1) shows it: socket(AF_INET6, ...) fails with
// EAFNOSUPPORT. No such kernel runs here, and a kernel's IPv6 cannot be
// switched off per network namespace, so a seccomp filter stands in for
// it. The filter stays with the process and whatever it executes, so a
// test installs it in a child process of its own, never in itself.
package noipv6

import (
	"errors"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Deny makes every later socket(AF_INET6, ...) of this process, all its
// threads, and every program it executes fail with EAFNOSUPPORT.
func Deny() error {
	var arch uint32
	switch runtime.GOARCH {
	case "amd64":
		arch = unix.AUDIT_ARCH_X86_64
	case "arm64":
		arch = unix.AUDIT_ARCH_AARCH64
	default:
		return errors.New("noipv6: no filter for " + runtime.GOARCH)
	}
	const (
		ld  = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
		jeq = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		ret = unix.BPF_RET | unix.BPF_K
	)
	// struct seccomp_data: nr at 0, arch at 4, args[0] at 16 (its low
	// half, on these little-endian machines). A jump's offsets count the
	// instructions skipped when true and when false.
	filter := []unix.SockFilter{
		{Code: ld, K: 4},
		{Code: jeq, K: arch, Jt: 0, Jf: 5},
		{Code: ld, K: 0},
		{Code: jeq, K: unix.SYS_SOCKET, Jt: 0, Jf: 3},
		{Code: ld, K: 16},
		{Code: jeq, K: unix.AF_INET6, Jt: 0, Jf: 1},
		{Code: ret, K: unix.SECCOMP_RET_ERRNO | uint32(unix.EAFNOSUPPORT)},
		{Code: ret, K: unix.SECCOMP_RET_ALLOW},
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	// no_new_privs is a thread's: the thread that sets it must install
	// the filter (TSYNC then gives both to every thread).
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return err
	}
	_, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER,
		unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&prog)))
	runtime.KeepAlive(filter)
	if errno != 0 {
		return errno
	}
	return nil
}
