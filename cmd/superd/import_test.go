package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// importCorpus is the importer's test corpus: one host root per directory.
const importCorpus = "../../testdata/importer"

var warningLine = regexp.MustCompile(`^/\S+:\d+: warning: \S.*$`)

func TestImportUsageErrorsExit1(t *testing.T) {
	for _, args := range [][]string{
		{"import"},
		{"import", "xinetd"},
		{"import", "systemd", "/etc/xinetd.conf"},
		{"import", "xinetd", "/a", "/b"},
		{"import", "--frobnicate", "xinetd", "/etc/xinetd.conf"},
	} {
		code, out, errs := superd(t, args...)
		if code != 1 || out != "" || !strings.Contains(errs, "superd import") {
			t.Errorf("superd %v: exit %d, stdout %q, stderr %q; want exit 1 and the usage", args, code, out, errs)
		}
	}
}

func TestImportUnreadableOrUnparseableInputExits1(t *testing.T) {
	dir := t.TempDir()
	bad := writeFile(t, dir, "xinetd.conf", "# fine\nservice echo\nport = 7\n")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"import", "xinetd", filepath.Join(dir, "missing.conf")}, "no such file"},
		{[]string{"import", "inetd", filepath.Join(dir, "missing.conf")}, "no such file"},
		{[]string{"import", "xinetd", bad}, bad + ":3: expected a line holding only '{'"},
		{[]string{"import", "inetd", bad}, bad + ":2: expected SERVICE SOCKET_TYPE"},
	} {
		code, out, errs := superd(t, tc.args...)
		if code != 1 || out != "" || !strings.Contains(errs, tc.want) {
			t.Errorf("superd %v: exit %d, stdout %q, stderr %q; want exit 1 and %q", tc.args, code, out, errs, tc.want)
		}
	}
}

// TestImportDebianConfigsPassCheck converts the configurations Debian's
// xinetd and inetd packages ship, under --root, and checks the result with
// `superd check`: exit 0 with warnings, each a FILE:LINE: warning: line.
func TestImportDebianConfigsPassCheck(t *testing.T) {
	for _, tc := range []struct{ kind, root, file string }{
		{"xinetd", "debian-xinetd", "/etc/xinetd.conf"},
		{"inetd", "debian-inetd", "/etc/inetd.conf"},
		{"xinetd", "xinetd-every-attribute", "/etc/xinetd.conf"},
	} {
		t.Run(tc.root, func(t *testing.T) {
			root := filepath.Join(importCorpus, tc.root)
			code, out, errs := superd(t, "import", "--root", root, tc.kind, tc.file)
			if code != 0 {
				t.Fatalf("exit %d\n%s", code, errs)
			}
			golden, err := os.ReadFile(filepath.Join(root, tc.file+".golden.yaml"))
			if err != nil || out != string(golden) {
				t.Errorf("stdout differs from %s.golden.yaml (%v):\n%s", tc.file, err, out)
			}
			for _, l := range strings.Split(strings.TrimSuffix(errs, "\n"), "\n") {
				if l != "" && !warningLine.MatchString(l) {
					t.Errorf("stderr line %q is not FILE:LINE: warning: MESSAGE", l)
				}
			}
			if tc.root == "xinetd-every-attribute" {
				return // names users and groups of other hosts
			}
			cfg := writeFile(t, t.TempDir(), "superd.yaml", out)
			if code, cout, cerrs := superd(t, "check", "-c", cfg); code != 0 {
				t.Errorf("superd check: exit %d\n%s%s\n%s", code, cout, cerrs, out)
			}
		})
	}
}

func TestImportFlagsMayFollowTheKind(t *testing.T) {
	root := filepath.Join(importCorpus, "debian-inetd")
	var out, errs bytes.Buffer
	if err := importCmd([]string{"inetd", "/etc/inetd.conf", "--root", root}, &out, &errs); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "argv0: /usr/sbin/in.fingerd") {
		t.Errorf("unexpected output:\n%s", out.String())
	}
}

// TestImportXinetdRoundTrip imports an xinetd configuration of a real
// program, /bin/cat, runs superd on the result and talks to it.
func TestImportXinetdRoundTrip(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the imported service runs as nobody, which needs root")
	}
	dir := worldDir(t)
	port, echoPort := freePort(t), freePort(t)
	admin := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	xconf := writeFile(t, dir, "xinetd.conf", fmt.Sprintf(`# An xinetd.conf as a host might have it.
defaults
{
	log_type	= SYSLOG daemon info
	instances	= 10
}

service cat
{
	type		= UNLISTED
	socket_type	= stream
	protocol	= tcp
	wait		= no
	port		= %d
	bind		= 127.0.0.1
	user		= nobody
	server		= /bin/cat
}

service echo
{
	type		= INTERNAL UNLISTED
	id		= echo-stream
	socket_type	= stream
	wait		= no
	port		= %d
	bind		= 127.0.0.1
}
`, port, echoPort))
	var out, errs bytes.Buffer
	if err := importCmd([]string{"xinetd", xconf}, &out, &errs); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"  cat:\n", "exec: [/bin/cat]", "user: nobody", "internal: echo", "max_instances: 10"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("imported configuration lacks %q:\n%s", want, out.String())
		}
	}
	if !strings.Contains(errs.String(), xconf+":4: warning: defaults: log_type") {
		t.Errorf("no warning for log_type:\n%s", errs.String())
	}
	cfg := writeFile(t, dir, "superd.yaml", out.String()+fmt.Sprintf("admin: {listen: %q}\n", admin))
	r := startSuperd(t, cfg, admin)

	talk := func(port int, msg string) (string, error) {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			return "", err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, msg); err != nil {
			return "", err
		}
		c.(*net.TCPConn).CloseWrite()
		b, err := io.ReadAll(c)
		return string(b), err
	}
	for i := 0; i < 3; i++ {
		msg := fmt.Sprintf("round trip %d\n", i)
		got, err := talk(port, msg)
		if err != nil || got != msg {
			t.Errorf("cat service: read %q, %v; want %q", got, err, msg)
		}
	}
	// The xinetd built-in echo becomes superd's internal echo.
	if got, err := talk(echoPort, "ping\n"); err != nil || got != "ping\n" {
		t.Errorf("echo service: read %q, %v", got, err)
	}
	if code := r.stop(t); code != 0 {
		t.Errorf("exit code %d", code)
	}
}
