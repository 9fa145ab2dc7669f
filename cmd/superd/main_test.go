package main

// End-to-end tests: the real superd binary, built once, run as a separate
// process on loopback ports, driven by real clients.

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/superd/superd/internal/noipv6"
	"github.com/superd/superd/internal/testport"
	"github.com/superd/superd/pkg/config"
	"github.com/superd/superd/pkg/listener"
)

var superdBin string

func TestMain(m *testing.M) {
	if os.Getenv(execWithoutIPv6) != "" {
		// This binary stands between a test and superd: it takes IPv6
		// away, then becomes superd (os.Args[1:]).
		os.Unsetenv(execWithoutIPv6)
		if err := noipv6.Deny(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		err := syscall.Exec(os.Args[1], os.Args[1:], os.Environ())
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	dir, err := os.MkdirTemp("", "superd-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	superdBin = filepath.Join(dir, "superd")
	build := exec.Command("go", "build", "-o", superdBin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building superd: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// waitUntil polls cond every 10 ms until it holds or timeout passes, and
// reports whether it held; the caller says what failing means.
func waitUntil(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// freePort is a loopback port free over TCP and UDP (testport.Free).
func freePort(t *testing.T) int {
	t.Helper()
	return testport.Free(t)
}

// worldDir is a temporary directory that children running as nobody can
// traverse (t.TempDir's parent is private to root).
func worldDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "superd-test-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func writeFile(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	replaceFile(t, p, []byte(text), 0o644)
	return p
}

// replaceFile puts content at path as a package manager replaces a binary
// and as an administrator should replace a configuration before a SIGHUP:
// written beside it, then renamed over it. (A running binary stays
// intact; a reload that reads a file os.WriteFile is still writing sees a
// truncated configuration — often a valid one with services missing, as a
// flaky reload test once found.)
func replaceFile(t *testing.T, path string, content []byte, perm os.FileMode) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, content, perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// superd runs the binary with args and returns its exit code and output.
func superd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(superdBin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

func TestCheckAcceptsTheShippedConfigs(t *testing.T) {
	files, _ := filepath.Glob("../../configs/*.yaml")
	if len(files) == 0 {
		t.Fatal("no configs/*.yaml")
	}
	deployed, _ := filepath.Glob("../../deploy/etc/superd/*.yaml")
	included, _ := filepath.Glob("../../deploy/etc/superd/conf.d/*.yaml")
	if len(deployed) == 0 || len(included) == 0 {
		t.Fatal("no example /etc/superd tree in deploy/")
	}
	files = append(append(files, deployed...), included...)
	for _, f := range files {
		code, out, errs := superd(t, "check", "-c", f)
		if code != 0 {
			t.Errorf("superd check %s: exit %d\n%s%s", f, code, out, errs)
		}
	}
}

// A program missing here is a warning, not an error: the configuration may
// be for another host.
func TestCheckWarnsOfAProgramThatCannotRunHere(t *testing.T) {
	dir := t.TempDir()
	f := writeFile(t, dir, "superd.yaml", `services:
  gone:
    listen: tcp://127.0.0.1:7
    user: root
    exec: [/nonexistent/prog]
  later:
    listen: tcp://127.0.0.1:8
    user: root
    exec: [/nonexistent/prog]
    disabled: true
  here:
    listen: tcp://127.0.0.1:9
    user: root
    exec: [/bin/true]
  folder:
    listen: tcp://127.0.0.1:10
    user: root
    exec: [/usr/bin]
`)
	code, out, errs := superd(t, "check", "-c", f)
	want := []string{
		"warning: " + f + ":2:3: services.gone.exec: /nonexistent/prog cannot be run here: no such file or directory\n",
		"warning: " + f + ":15:3: services.folder.exec: /usr/bin cannot be run here: not a regular file\n",
	}
	if code != 0 || !strings.Contains(out, "ok (4 services)") || !strings.Contains(errs, want[0]) || !strings.Contains(errs, want[1]) {
		t.Errorf("check: exit %d, stdout %q, stderr %q; want 0, ok, and %q", code, out, errs, want)
	}
	if strings.Count(errs, ".exec:") != 2 {
		t.Errorf("check warns of a disabled service's or a present program:\n%s", errs)
	}
}

func TestCheckPrintsEveryErrorWithPositionAndExits1(t *testing.T) {
	dir := t.TempDir()
	f := writeFile(t, dir, "bad.yaml", `services:
  tftp:
    listen: udp://127.0.0.1:6969
    mode: accept
    exec: [in.tftpd]
  other:
    listen: tcp://127.0.0.1:7
    exec: [/bin/cat]
    bogus: 1
`)
	code, _, errs := superd(t, "check", "-c", f)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	lines := strings.Split(strings.TrimSpace(errs), "\n")
	re := regexp.MustCompile(`^` + regexp.QuoteMeta(f) + `:(\d+):(\d+): services\.[a-z]+\.[a-z_0-9]+(\[\d+\])?: .+`)
	if len(lines) < 3 {
		t.Fatalf("want at least 3 errors (mode, exec path, unknown key), got:\n%s", errs)
	}
	for _, l := range lines {
		if !re.MatchString(l) {
			t.Errorf("error line %q is not FILE:LINE:COL: KEY: message", l)
		}
	}
	for _, want := range []string{":4:", ":5:", ":9:"} {
		if !strings.Contains(errs, f+want) {
			t.Errorf("no error at line %s in:\n%s", want, errs)
		}
	}
}

func TestUsageErrorsExit1(t *testing.T) {
	for _, args := range [][]string{{}, {"frobnicate"}, {"check", "-x"}} {
		if code, _, _ := superd(t, args...); code != 1 {
			t.Errorf("superd %v: exit %d, want 1", args, code)
		}
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := superd(t, "version")
	if code != 0 || !strings.HasPrefix(out, "superd ") || !strings.Contains(out, "go1.") {
		t.Errorf("version: exit %d, %q", code, out)
	}
	if code, _, _ := superd(t, "version", "extra"); code != 1 {
		t.Errorf("version extra: exit %d, want 1", code)
	}
}

// Asking a command for help is not a mistake: usage on stdout, exit 0.
func TestHelpAfterACommandExits0(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"run", "--help"}, {"check", "-h"}, {"status", "--help"}, {"import", "--help"}, {"import", "xinetd", "-h"}, {"version", "--help"}} {
		code, out, errs := superd(t, args...)
		if code != 0 || !strings.Contains(out, "superd check [-c FILE]") || errs != "" {
			t.Errorf("superd %v: exit %d, stdout %q, stderr %q; want 0 and the usage on stdout alone", args, code, out, errs)
		}
	}
}

// A superd that is not root cannot run children as anyone else: user is
// ignored, as xinetd ignores it, and check and the log say so. Its children
// run as superd's own user, through the launcher too.
func TestNotRootIgnoresUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("running superd as nobody for the test needs root")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody here")
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)
	asNobody := func(cmd *exec.Cmd) *exec.Cmd {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}}
		return cmd
	}
	dir := worldDir(t)
	bin := copyBinary(t, dir)
	plain, launched := fmt.Sprintf("127.0.0.1:%d", freePort(t)), fmt.Sprintf("127.0.0.1:%d", freePort(t))
	admin := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg := writeFile(t, dir, "superd.yaml", fmt.Sprintf(`admin: {listen: "%s"}
services:
  plain:
    listen: tcp://%s
    user: root
    exec: [/usr/bin/id, -u]
  launched:
    listen: tcp://%s
    user: root
    umask: "077"
    exec: [/usr/bin/id, -u]
  own:
    listen: tcp://127.0.0.1:%d
    user: nobody
    exec: [/usr/bin/id, -u]
  grouped:
    listen: tcp://127.0.0.1:%d
    user: nobody
    groups: [root]
    exec: [/usr/bin/id, -u]
`, admin, plain, launched, freePort(t), freePort(t)))

	var out, errs bytes.Buffer
	check := asNobody(exec.Command(bin, "check", "-c", cfg))
	check.Stdout, check.Stderr = &out, &errs
	if err := check.Run(); err != nil {
		t.Fatalf("check as nobody: %v\n%s%s", err, &out, &errs)
	}
	for _, key := range []string{"plain.user: root", "launched.user: root", "grouped.groups: [0]"} {
		if !strings.Contains(errs.String(), "warning: "+cfg+":") || !strings.Contains(errs.String(), "services."+key+" ignored: superd may not switch users") {
			t.Errorf("check as nobody says nothing of services.%s:\n%s", key, &errs)
		}
	}
	if strings.Contains(errs.String(), "services.own.") {
		t.Errorf("check warns of a user that is superd's own:\n%s", &errs)
	}

	r := startCommand(t, asNobody(exec.Command(bin, "run", "-c", cfg)), admin)
	for _, addr := range []string{plain, launched} {
		if got := readConn(t, addr); got != nobody.Uid+"\n" {
			t.Errorf("the child at %s runs as uid %q, want superd's own %s", addr, got, nobody.Uid)
		}
	}
	if !strings.Contains(r.stderr.String(), "configuration ignored") {
		t.Errorf("the log does not say user is ignored:\n%s", r.stderr.String())
	}
	if code := r.stop(t); code != 0 {
		t.Errorf("exit %d", code)
	}

	// A service account given CAP_SETUID and CAP_SETGID (systemd's
	// AmbientCapabilities=) switches users as root does, and check is
	// silent.
	withCaps := func(cmd *exec.Cmd) *exec.Cmd {
		asNobody(cmd)
		cmd.SysProcAttr.AmbientCaps = []uintptr{unix.CAP_SETUID, unix.CAP_SETGID, unix.CAP_NET_BIND_SERVICE}
		return cmd
	}
	out.Reset()
	errs.Reset()
	check = withCaps(exec.Command(bin, "check", "-c", cfg))
	check.Stdout, check.Stderr = &out, &errs
	if err := check.Run(); err != nil || strings.Contains(errs.String(), "ignored") {
		t.Errorf("check as nobody with CAP_SETUID and CAP_SETGID: %v\n%s%s", err, &out, &errs)
	}
	r = startCommand(t, withCaps(exec.Command(bin, "run", "-c", cfg)), admin)
	if got := readConn(t, plain); got != "0\n" {
		t.Errorf("with CAP_SETUID, user: root's child runs as uid %q, want 0", got)
	}
	if code := r.stop(t); code != 0 {
		t.Errorf("exit %d", code)
	}
}

// running is a superd process started by a test.
type running struct {
	cmd    *exec.Cmd
	stderr *logFile
	exited chan error
}

// logFile collects a process's output in a file. Unlike a pipe, it lets
// cmd.Wait return while a process the child started (a live upgrade's new
// superd) still holds the same stderr, and it reads safely while written.
type logFile struct{ f *os.File }

func newLogFile(t *testing.T) *logFile {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "log-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &logFile{f: f}
}

func (l *logFile) String() string {
	b, _ := os.ReadFile(l.f.Name())
	return string(b)
}

// startSuperd runs `superd run -c cfg` and waits until its admin listener
// answers /healthz.
func startSuperd(t *testing.T, cfg, admin string) *running {
	t.Helper()
	return startCommand(t, exec.Command(superdBin, "run", "-c", cfg), admin)
}

// startCommand is startSuperd for a command that ends up exec'ing superd
// (a shell that first moves itself into a cgroup, say).
func startCommand(t *testing.T, cmd *exec.Cmd, admin string) *running {
	t.Helper()
	r := &running{cmd: cmd, stderr: newLogFile(t), exited: make(chan error, 1)}
	r.cmd.Stderr = r.stderr.f
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.exited <- r.cmd.Wait() }()
	t.Cleanup(func() {
		r.cmd.Process.Signal(syscall.SIGKILL)
		<-r.exited
		r.exited <- nil
		if t.Failed() {
			t.Logf("superd stderr:\n%s", r.stderr.String())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	client := http.Client{Timeout: 2 * time.Second}
	for {
		// Exited first: a superd that could not bind admin exits at
		// once, and whatever holds the port may answer /healthz.
		select {
		case err := <-r.exited:
			r.exited <- err
			t.Fatalf("superd exited early: %v\n%s", err, r.stderr.String())
		default:
		}
		resp, err := client.Get("http://" + admin + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("superd did not become healthy\n%s", r.stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stop sends SIGTERM and returns the exit code.
func (r *running) stop(t *testing.T) int {
	t.Helper()
	r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-r.exited:
		r.exited <- err
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(30 * time.Second):
		t.Fatal("superd did not exit within 30s of SIGTERM")
		return -1
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s\n%s", url, resp.Status, b)
	}
	return string(b)
}

func userLine() string {
	if os.Geteuid() == 0 {
		return "    user: nobody\n"
	}
	return ""
}

func TestRunServesMetricsStatusAndStopsOnSIGTERM(t *testing.T) {
	dir := t.TempDir()
	port, admin := freePort(t), fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg := writeFile(t, dir, "superd.yaml", fmt.Sprintf(`
admin: {listen: "%s"}
log: {format: json}
services:
  hello:
    listen: tcp://127.0.0.1:%d
    exec: [/bin/sh, -c, 'echo "hi $REMOTE_ADDR"']
%s`, admin, port, userLine()))
	r := startSuperd(t, cfg, admin)

	for i := 0; i < 3; i++ {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		b, _ := io.ReadAll(c)
		c.Close()
		if string(b) != "hi 127.0.0.1\n" {
			t.Errorf("client %d read %q", i, b)
		}
	}
	var metrics string
	deadline := time.Now().Add(10 * time.Second)
	for {
		metrics = get(t, "http://"+admin+"/metrics")
		if strings.Contains(metrics, `superd_child_exits_total{outcome="success",service="hello"} 3`) || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, want := range []string{
		`superd_activations_total{service="hello"} 3`,
		`superd_connections_accepted_total{service="hello"} 3`,
		`superd_instances{service="hello"} 0`,
		`superd_child_exits_total{outcome="success",service="hello"} 3`,
		`superd_service_up{service="hello"} 1`,
		`go_goroutines `,
		`process_open_fds `,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	code, out, errs := superd(t, "status", "--addr", admin)
	if code != 0 || !regexp.MustCompile(`(?m)^hello\s+accept\s+tcp4?://127\.0\.0\.1:\d+\s+listening\s+0\s+3\s*$`).MatchString(out) {
		t.Errorf("superd status: exit %d\n%s%s", code, out, errs)
	}
	if code := r.stop(t); code != 0 {
		t.Errorf("exit code after SIGTERM = %d, want 0", code)
	}
	// JSON logs: one activation line per connection.
	if n := strings.Count(r.stderr.String(), `"msg":"activation"`); n != 3 {
		t.Errorf("%d activation log lines, want 3", n)
	}
}

func TestRunExits2WhenTheAdminListenerCannotBind(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir := t.TempDir()
	cfg := writeFile(t, dir, "superd.yaml", fmt.Sprintf(`
admin: {listen: "%s"}
services:
  hello:
    listen: tcp://127.0.0.1:%d
    exec: [/bin/true]
%s`, busy.Addr(), freePort(t), userLine()))
	code, _, errs := superd(t, "run", "-c", cfg)
	if code != 2 || !strings.Contains(errs, "admin listener") {
		t.Errorf("exit %d, want 2; stderr:\n%s", code, errs)
	}
}

func TestStatusWithoutSuperdIsAClearError(t *testing.T) {
	code, _, errs := superd(t, "status", "--addr", fmt.Sprintf("127.0.0.1:%d", freePort(t)))
	if code != 2 || !strings.Contains(errs, "is superd running?") {
		t.Errorf("exit %d, stderr %q", code, errs)
	}
}

// TestGitDaemonInetd drives a real inetd-style program from Debian, `git
// daemon --inetd`, with its real client.
func TestGitDaemonInetd(t *testing.T) {
	gitDaemon := "/usr/lib/git-core/git-daemon"
	if _, err := os.Stat(gitDaemon); err != nil {
		t.Fatalf("%s missing: `make test-deps` installs git", gitDaemon)
	}
	dir := worldDir(t)
	repo := filepath.Join(dir, "srv", "project.git")
	work := filepath.Join(dir, "work")
	git := func(wd string, args ...string) {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = wd
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.invalid",
			"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.invalid", "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	os.MkdirAll(work, 0o755)
	os.MkdirAll(filepath.Dir(repo), 0o755)
	git(work, "init", "-q", "-b", "main")
	writeFile(t, work, "README", "served by superd\n")
	git(work, "add", "README")
	git(work, "commit", "-q", "-m", "first")
	git(dir, "clone", "-q", "--bare", work, repo)
	// Owned by nobody, the user git daemon runs as below: git refuses
	// to serve a repository of another owner ("dubious ownership").
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && os.Geteuid() == 0 {
			os.Lchown(p, 65534, 65534)
		}
		return nil
	})

	port, admin := freePort(t), fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg := writeFile(t, dir, "superd.yaml", fmt.Sprintf(`
admin: {listen: "%s"}
services:
  git:
    listen: tcp://127.0.0.1:%d
    exec: [%s, --inetd, --export-all, --base-path=%s]
%s`, admin, port, gitDaemon, filepath.Join(dir, "srv"), userLine()))
	r := startSuperd(t, cfg, admin)

	clone := filepath.Join(dir, "clone")
	git(dir, "clone", "-q", fmt.Sprintf("git://127.0.0.1:%d/project.git", port), clone)
	b, err := os.ReadFile(filepath.Join(clone, "README"))
	if err != nil || string(b) != "served by superd\n" {
		t.Errorf("cloned README = %q, %v", b, err)
	}
	if code := r.stop(t); code != 0 {
		t.Errorf("exit code %d", code)
	}
	sc := bufio.NewScanner(strings.NewReader(r.stderr.String()))
	activations := 0
	for sc.Scan() {
		if strings.Contains(sc.Text(), "activation") && strings.Contains(sc.Text(), `"service": "git"`) {
			activations++
		}
	}
	if activations < 1 {
		t.Errorf("no activation of the git service logged:\n%s", r.stderr.String())
	}
}

// TestDemoConfigAnswersItsReadmeExamples runs configs/demo.yaml — what
// `make run` serves — and tries each service as README.md shows, with Go
// clients in place of nc, socat and curl. It uses the demo's fixed ports.
func TestDemoConfigAnswersItsReadmeExamples(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the demo's children run as nobody, which needs root")
	}
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Skip("the demo's wait-mode services are python3 programs")
	}
	// The demo as shipped, on ports no one else holds: a `make run` on
	// the same machine keeps the documented ones.
	demo, err := os.ReadFile("../../configs/demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	admin := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	greet, shout, web := freePort(t), freePort(t), freePort(t)
	text := strings.NewReplacer("127.0.0.1:9750", admin, ":7001", fmt.Sprintf(":%d", greet),
		":7002", fmt.Sprintf(":%d", shout), ":7080", fmt.Sprintf(":%d", web)).Replace(string(demo))
	if strings.Count(text, fmt.Sprintf(":%d", greet)) != 2 || !strings.Contains(text, admin) {
		t.Fatalf("configs/demo.yaml no longer has the ports this test moves:\n%s", text)
	}
	r := startSuperd(t, writeFile(t, worldDir(t), "demo.yaml", text), admin)

	greeters := []string{fmt.Sprintf("127.0.0.1:%d", greet)}
	if testport.IPv6Loopback() {
		greeters = append(greeters, fmt.Sprintf("[::1]:%d", greet))
	}
	for _, addr := range greeters {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		b, _ := io.ReadAll(c)
		c.Close()
		host, _, _ := net.SplitHostPort(addr)
		if !strings.HasPrefix(string(b), "hello "+host+":") || !strings.Contains(string(b), "this is greet") {
			t.Errorf("greet via %s: %q", addr, b)
		}
	}

	u, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", shout))
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	u.SetDeadline(time.Now().Add(15 * time.Second))
	u.Write([]byte("hello\n"))
	buf := make([]byte, 64)
	if n, err := u.Read(buf); err != nil || string(buf[:n]) != "HELLO\n" {
		t.Errorf("shout answered %q, %v", buf[:n], err)
	}

	body := get(t, fmt.Sprintf("http://127.0.0.1:%d/", web))
	if !strings.Contains(body, "LISTEN_FDS=1 LISTEN_FDNAMES=http") {
		t.Errorf("web answered %q", body)
	}
	if code := r.stop(t); code != 0 {
		t.Errorf("exit code %d", code)
	}
}

// TestSystemdSocketMatchesTheDeployConfig reads every ListenStream= and
// ListenDatagram= of deploy/superd.socket the way systemd.socket(5) says
// systemd binds it and looks for a listen with that very address in the
// shipped conf.d: an inherited socket superd finds no listen for is closed,
// and the service then cannot bind the port systemd holds.
func TestSystemdSocketMatchesTheDeployConfig(t *testing.T) {
	unit, err := os.ReadFile("../../deploy/superd.socket")
	if err != nil {
		t.Fatal(err)
	}
	listens := map[string]bool{}
	files, _ := filepath.Glob("../../deploy/etc/superd/conf.d/*.yaml")
	for _, f := range files {
		cfg, err := config.Load(f, config.Options{})
		if err != nil {
			t.Fatal(err)
		}
		for _, svc := range cfg.Services {
			// A disabled service takes no inherited socket.
			for _, sc := range svc.Sockets {
				if !svc.Disabled {
					listens[sc.Address.String()] = true
				}
			}
		}
	}
	dualStack := true // BindIPv6Only=default follows net.ipv6.bindv6only, 0 unless changed
	var binds [][2]string
	for _, line := range strings.Split(string(unit), "\n") {
		key, value, ok := strings.Cut(strings.TrimSpace(line), "=")
		switch {
		case !ok:
		case key == "BindIPv6Only":
			dualStack = value != "ipv6-only"
		case key == "ListenStream":
			binds = append(binds, [2]string{"tcp", value})
		case key == "ListenDatagram":
			binds = append(binds, [2]string{"udp", value})
		}

	}
	if len(binds) == 0 {
		t.Fatal("superd.socket listens on nothing")
	}
	for _, b := range binds {
		// A port alone is [::]:PORT; an IPv6 wildcard is dual-stack
		// unless BindIPv6Only=ipv6-only.
		host, port, err := net.SplitHostPort(b[1])
		if err != nil {
			host, port = "::", b[1]
		}
		scheme := b[0]
		switch ip := net.ParseIP(host); {
		case ip == nil:
			t.Errorf("%s=%s: not an address superd.socket should use", b[0], b[1])
			continue
		case ip.To4() != nil:
			scheme += "4"
		case !(ip.IsUnspecified() && dualStack):
			scheme += "6"
		}
		if ip := net.ParseIP(host); ip.IsUnspecified() {
			host = ""
		}
		want, err := listener.ParseAddress(scheme + "://" + net.JoinHostPort(host, port))
		if err != nil {
			t.Fatalf("%s=%s: %v", b[0], b[1], err)
		}
		if !listens[want.String()] {
			t.Errorf("systemd binds %s=%s as %s, which no listen in deploy/etc/superd/conf.d names (they name %v)", b[0], b[1], want, listens)
		}
	}
}

// TestSystemdUnitVerifies runs systemd-analyze verify on deploy's units,
// where systemd is installed.
func TestSystemdUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed here")
	}
	dir := t.TempDir()
	for _, name := range []string{"superd.service", "superd.socket"} {
		b, err := os.ReadFile(filepath.Join("../../deploy", name))
		if err != nil {
			t.Fatal(err)
		}
		// verify wants the programs to exist: point at the built binary.
		text := strings.ReplaceAll(string(b), "/usr/sbin/superd", superdBin)
		writeFile(t, dir, name, text)
	}
	out, err := exec.Command(analyze, "verify", filepath.Join(dir, "superd.service"), filepath.Join(dir, "superd.socket")).CombinedOutput()
	if err != nil {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// execWithoutIPv6, set for this test binary, makes it exec superd with
// IPv6 taken away (TestMain).
const execWithoutIPv6 = "SUPERD_TEST_EXEC_WITHOUT_IPV6"

// TestBarePortsServeIPv4OnAKernelWithoutIPv6 runs superd where
// socket(AF_INET6) fails, as on a kernel booted with ipv6.disable=1: a
// service listening on a bare port (tcp://:PORT, as the demo's do) must
// still serve, over IPv4, as systemd's ListenStream=PORT does there.
func TestBarePortsServeIPv4OnAKernelWithoutIPv6(t *testing.T) {
	probe := exec.Command(os.Args[0], "/bin/true")
	probe.Env = append(os.Environ(), execWithoutIPv6+"=1")
	if out, err := probe.CombinedOutput(); err != nil {
		t.Skipf("a seccomp filter cannot be installed here: %v %s", err, out)
	}
	port, admin := freePort(t), fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg := writeFile(t, t.TempDir(), "superd.yaml", fmt.Sprintf(`
admin: {listen: "%s"}
services:
  echo-tcp:
    listen: tcp://:%d
    internal: echo
  echo-udp:
    listen: udp://[::]:%d
    internal: echo
`, admin, port, port))
	cmd := exec.Command(os.Args[0], superdBin, "run", "-c", cfg)
	cmd.Env = append(os.Environ(), execWithoutIPv6+"=1")
	r := startCommand(t, cmd, admin)
	for _, network := range []string{"tcp", "udp"} {
		c, err := net.DialTimeout(network, fmt.Sprintf("127.0.0.1:%d", port), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write([]byte("ping\n")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 16)
		n, err := c.Read(buf)
		c.Close()
		if err != nil || string(buf[:n]) != "ping\n" {
			t.Errorf("%s echo: %q, %v", network, buf[:n], err)
		}
	}
	if got := strings.Count(r.stderr.String(), "this kernel has no IPv6: listening on IPv4 only"); got != 2 {
		t.Errorf("%d warnings that the bare ports listen on IPv4 only, want 2", got)
	}
}
