package importer

import (
	"bytes"
	"errors"
	"flag"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"

	"github.com/superd/superd/pkg/config"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/importer")

// corpus is testdata/importer: one directory per case, each the root of a
// host's file system (see its README).
const corpus = "../../testdata/importer"

// rootFS reads a case of the corpus; each has its etc/services, a link to
// the corpus's copy of Debian's.
func rootFS(dir string) FS { return DirFS(filepath.Join(corpus, dir)) }

// hostAccounts is the host's user database, with any name it lacks made
// up: the corpus names users of other hosts (_tang), and the check is of
// the configuration, not of this host.
type hostAccounts struct{ config.SystemAccounts }

func (h hostAccounts) LookupUser(name string) (*user.User, error) {
	if u, err := h.SystemAccounts.LookupUser(name); err == nil {
		return u, nil
	}
	return &user.User{Username: name, Uid: "4242", Gid: "4242"}, nil
}

func (h hostAccounts) LookupGroup(name string) (*user.Group, error) {
	if g, err := h.SystemAccounts.LookupGroup(name); err == nil {
		return g, nil
	}
	return &user.Group{Name: name, Gid: "4242"}, nil
}

func (h hostAccounts) LookupGroupID(gid string) (*user.Group, error) {
	if g, err := h.SystemAccounts.LookupGroupID(gid); err == nil {
		return g, nil
	}
	return &user.Group{Name: "g" + gid, Gid: gid}, nil
}

// mustParse asserts that superd, run as root, accepts out.
func mustParse(t *testing.T, name string, out []byte) {
	t.Helper()
	if _, err := config.Parse(name, out, config.Options{AsRoot: true, Accounts: hostAccounts{}}); err != nil {
		t.Errorf("%s does not pass config.Parse:\n%v\n%s", name, err, out)
	}
}

func formatWarnings(ws []Warning) string {
	var b strings.Builder
	for _, w := range ws {
		b.WriteString(w.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// golden compares got with the file, or writes it under -update.
func golden(t *testing.T, file string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update rewrites it); got:\n%s", file, got)
	}
}

var goldenCases = []struct {
	name, kind, root, file string
}{
	{"Debian's xinetd with its xinetd.d", "xinetd", "debian-xinetd", "/etc/xinetd.conf"},
	{"xinetd's sample.conf", "xinetd", "xinetd-examples", "/sample.conf"},
	{"xinetd's empty.conf template", "xinetd", "xinetd-examples", "/empty.conf"},
	{"tang-xinetd's service", "xinetd", "tang-xinetd", "/etc/xinetd.d/tangdx"},
	{"GNU rush's xinetd example", "xinetd", "rush", "/rush.xinetd"},
	{"every xinetd attribute", "xinetd", "xinetd-every-attribute", "/etc/xinetd.conf"},
	{"openbsd-inetd's inetd.conf", "inetd", "openbsd-inetd", "/etc/inetd.conf"},
	{"inetd.conf as Debian packages fill it", "inetd", "debian-inetd", "/etc/inetd.conf"},
	{"GNU rush's inetutils-inetd example", "inetd", "rush", "/rush.inetutils-inetd"},
	{"every inetd form", "inetd", "inetd-every-form", "/etc/inetd.conf"},
}

func TestGolden(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			run := Xinetd
			if tc.kind == "inetd" {
				run = Inetd
			}
			res, err := run(tc.file, rootFS(tc.root))
			if err != nil {
				t.Fatal(err)
			}
			base := filepath.Join(corpus, tc.root, filepath.FromSlash(tc.file))
			golden(t, base+".golden.yaml", res.YAML)
			golden(t, base+".warnings", []byte(formatWarnings(res.Warnings)))
			mustParse(t, base+".golden.yaml", res.YAML)
			for _, w := range res.Warnings {
				if strings.Contains(w.Msg, "does not pass superd check") {
					t.Errorf("self-check: %s", w)
				}
				if w.File == "" || w.Line < 1 {
					t.Errorf("warning without a position: %#v", w)
				}
			}
		})
	}
}

func TestMissingFileIsAnError(t *testing.T) {
	for _, run := range []func(string, FS) (Result, error){Xinetd, Inetd} {
		if _, err := run("/nonexistent.conf", rootFS("debian-xinetd")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("error %v, want ErrNotExist", err)
		}
	}
}
