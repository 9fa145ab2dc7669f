package spawn

import (
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/superd/superd/pkg/config"
)

func TestMain(m *testing.M) {
	MaybeLaunch() // the launcher path re-executes this test binary
	os.Exit(m.Run())
}

func service(mod func(*config.Service)) *config.Service {
	s := &config.Service{
		Name:             "t",
		Exec:             []string{"/bin/true"},
		Mode:             config.Accept,
		Pass:             config.PassStdio,
		WorkingDirectory: "/",
		Umask:            uint16(processUmask),
		Env:              []string{config.DefaultPath},
	}
	if mod != nil {
		mod(s)
	}
	return s
}

func TestOnlyServicesThatNeedItUseTheLauncher(t *testing.T) {
	cases := []struct {
		name string
		mod  func(*config.Service)
		want bool
	}{
		{"a plain service is one fork+exec", nil, false},
		{"a user switch is done by the fork itself", func(s *config.Service) {
			s.Credential = &config.Credential{UID: 65534, GID: 65534}
		}, false},
		{"a umask other than superd's needs the launcher", func(s *config.Service) { s.Umask = uint16(processUmask ^ 0o007) }, true},
		{"a nice value needs the launcher", func(s *config.Service) { s.Nice = 5 }, true},
		{"rlimits need the launcher", func(s *config.Service) {
			s.Rlimits = []config.Rlimit{{Resource: unix.RLIMIT_CORE, Name: "core"}}
		}, true},
		{"listen_fds needs the launcher for LISTEN_PID", func(s *config.Service) { s.Pass = config.PassListenFDs }, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := NewSpec(service(tc.mod)).UsesLauncher(); got != tc.want {
				t.Errorf("UsesLauncher = %v, want %v", got, tc.want)
			}
		})
	}
}

// startAndWait starts spec's child with /dev/null as its fds and waits
// for it through its pidfd, as the loop does.
func startAndWait(tb testing.TB, spec *Spec, null int) unix.WaitStatus {
	return startAndWaitOn(tb, spec, []int{null, null, null})
}

// startAndWaitOn is startAndWait with files as the child's fds.
func startAndWaitOn(tb testing.TB, spec *Spec, files []int) unix.WaitStatus {
	pid, pidfd, err := spec.Start(files, []string{config.DefaultPath})
	if err != nil {
		tb.Fatal(err)
	}
	defer unix.Close(pidfd)
	pfd := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	if _, err := unix.Poll(pfd, 10000); err != nil || pfd[0].Revents == 0 {
		tb.Fatalf("pidfd never became readable: %v", err)
	}
	var ws unix.WaitStatus
	if _, err := unix.Wait4(pid, &ws, 0, nil); err != nil {
		tb.Fatal(err)
	}
	return ws
}

func TestStartReturnsAPidfdThatSignalsExit(t *testing.T) {
	null, err := unix.Open("/dev/null", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(null)
	for _, exe := range []string{"/bin/true", "/bin/false"} {
		ws := startAndWait(t, NewSpec(service(func(s *config.Service) { s.Exec = []string{exe} })), null)
		if want := exe == "/bin/false"; (ws.ExitStatus() != 0) != want {
			t.Errorf("%s exited %d", exe, ws.ExitStatus())
		}
	}
	if _, _, err := NewSpec(service(func(s *config.Service) { s.Exec = []string{"/nonexistent"} })).Start([]int{null, null, null}, nil); err == nil {
		t.Error("starting a missing program did not fail")
	}
}

// A launcher that cannot start the program reports it on the status pipe:
// Start fails with the launcher's errno, the launcher reaped, and no pidfd
// left open; a program it starts is Start's child as without it, with the
// status fd closed before the program's first instruction.
func TestLauncherReportsFailureWithItsErrno(t *testing.T) {
	null, err := unix.Open("/dev/null", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(null)
	launched := func(exe ...string) *Spec {
		spec := NewSpec(service(func(s *config.Service) { s.Exec, s.Nice = exe, 1 }))
		if !spec.UsesLauncher() {
			t.Fatal("nice: 1 does not use the launcher")
		}
		return spec
	}
	pidfd := -1
	pid, err := launched("/nonexistent/program").start([]int{null, null, null}, nil, &pidfd)
	if !errors.Is(err, syscall.ENOENT) || !strings.Contains(err.Error(), "exec /nonexistent/program") {
		t.Errorf("Start of a missing program through the launcher: %d, %v; want ENOENT, naming the program", pid, err)
	}
	if pidfd != -1 {
		t.Errorf("pidfd %d left open after a failed launch", pidfd)
	}
	var ws unix.WaitStatus
	if _, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil); err != unix.ECHILD {
		t.Errorf("a child is left after a failed launch (wait4: %v)", err)
	}
	// The status fd (3 here) is not the program's: ls of /proc/self/fd
	// through the launcher lists 0, 1, 2 and its own directory fd only
	// (once this process's inherited fds are close-on-exec, as superd
	// makes its own at start).
	if err := CloseInheritedOnExec(); err != nil {
		t.Fatal(err)
	}
	out, err := os.CreateTemp(t.TempDir(), "fds")
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	ws = startAndWaitOn(t, launched("/bin/ls", "/proc/self/fd"), []int{null, int(out.Fd()), null})
	listing, _ := os.ReadFile(out.Name())
	if ws.ExitStatus() != 0 || strings.Join(strings.Fields(string(listing)), " ") != "0 1 2 3" {
		t.Errorf("the program's fds: %q (exit %d), want 0 1 2 and ls's own 3", listing, ws.ExitStatus())
	}
}

// BenchmarkSpawn measures one activation's process start: the fast path
// (one vfork-style clone and execve) against the launcher path (one more
// execve of superd's own image).
func BenchmarkSpawn(b *testing.B) {
	null, err := unix.Open("/dev/null", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Close(null)
	for _, bc := range []struct {
		name string
		mod  func(*config.Service)
	}{
		{"fast", nil},
		{"launcher", func(s *config.Service) { s.Nice = 1 }},
	} {
		spec := NewSpec(service(bc.mod))
		b.Run(bc.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				startAndWait(b, spec, null)
			}
		})
	}
}
