package importer

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/superd/superd/pkg/config"
)

// memFS is a file system in memory: files by absolute name, directories
// implied by them.
type memFS map[string][]byte

func (m memFS) ReadFile(name string) ([]byte, error) {
	if b, ok := m[path.Clean(name)]; ok {
		return b, nil
	}
	return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
}

func (m memFS) ReadDir(name string) ([]fs.DirEntry, error) {
	dir := path.Clean(name) + "/"
	var out []fs.DirEntry
	for f := range m {
		if rest, ok := strings.CutPrefix(f, dir); ok && !strings.Contains(rest, "/") {
			out = append(out, memEntry(rest))
		}
	}
	if out == nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	slices.SortFunc(out, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return out, nil
}

type memEntry string

func (e memEntry) Name() string               { return string(e) }
func (e memEntry) IsDir() bool                { return false }
func (e memEntry) Type() fs.FileMode          { return 0 }
func (e memEntry) Info() (fs.FileInfo, error) { return memInfo(e), nil }

type memInfo string

func (i memInfo) Name() string       { return string(i) }
func (i memInfo) Size() int64        { return 0 }
func (i memInfo) Mode() fs.FileMode  { return 0o644 }
func (i memInfo) ModTime() time.Time { return time.Time{} }
func (i memInfo) IsDir() bool        { return false }
func (i memInfo) Sys() any           { return nil }

// fuzzFS holds the fuzzed file as the main configuration, beside Debian's
// /etc/services and an included directory.
func fuzzFS(f *testing.F, main string, data []byte) memFS {
	services, err := os.ReadFile(filepath.Join(corpus, "services"))
	if err != nil {
		f.Fatal(err)
	}
	return memFS{
		main:                  data,
		"/etc/services":       services,
		"/etc/xinetd.d/echo":  []byte("service echo\n{\n type = INTERNAL\n socket_type = stream\n wait = no\n}\n"),
		"/etc/xinetd.d/x.bak": []byte("not read\n"),
	}
}

// seeds adds every corpus file of the kind.
func seeds(f *testing.F, kind string) {
	for _, tc := range goldenCases {
		if tc.kind != kind {
			continue
		}
		data, err := os.ReadFile(filepath.Join(corpus, tc.root, filepath.FromSlash(tc.file)))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
}

// checkImport asserts what every import promises: a SyntaxError with a
// position, or YAML that superd accepts and warnings with positions.
func checkImport(t *testing.T, res Result, err error) {
	if err != nil {
		var se *SyntaxError
		// The file may be one the fuzzed file includes.
		if !errors.As(err, &se) || se.File == "" || se.Line < 1 || se.Msg == "" {
			t.Fatalf("error %T %v is not a SyntaxError with a position", err, err)
		}
		return
	}
	if _, err := config.Parse("fuzz.yaml", res.YAML, config.Options{AsRoot: true, Accounts: anyAccounts{}}); err != nil {
		t.Fatalf("output does not pass config.Parse: %v\n%s", err, res.YAML)
	}
	for _, w := range res.Warnings {
		if w.File == "" || w.Line < 1 || w.Msg == "" {
			t.Fatalf("warning without a position: %#v", w)
		}
		if strings.Contains(w.Msg, "does not pass superd check") {
			t.Fatalf("self-check: %s\n%s", w, res.YAML)
		}
	}
}

func FuzzXinetd(f *testing.F) {
	seeds(f, "xinetd")
	for _, s := range []string{
		"",
		"includedir /etc/xinetd.d\n",
		"include /etc/xinetd.conf\n",
		"service echo\n{\n type = INTERNAL\n socket_type = dgram\n wait = yes\n only_from = 10.0.{1,2}\n}\n",
		"defaults\n{\n only_from = 0.0.0.0\n}\nservice x\n{\n type = UNLISTED\n port = 1\n socket_type = stream\n wait = no\n user = 0\n server = /bin/x\n only_from -= 0.0.0.0\n}\n",
	} {
		f.Add([]byte(s))
	}
	const main = "/etc/xinetd.conf"
	fsys := fuzzFS(f, main, nil)
	f.Fuzz(func(t *testing.T, data []byte) {
		fsys := maps(fsys)
		fsys[main] = data
		res, err := Xinetd(main, fsys)
		checkImport(t, res, err)
	})
}

func FuzzInetd(f *testing.F) {
	seeds(f, "inetd")
	for _, s := range []string{
		"",
		"echo stream tcp nowait root internal\n",
		"127.0.0.1:\n8000 dgram udp wait.10 1:2 /bin/x x y\n\tz\n",
		"/run/x stream unix nowait nobody /bin/x\n#<off># a b c d e f\n",
	} {
		f.Add([]byte(s))
	}
	const main = "/etc/inetd.conf"
	fsys := fuzzFS(f, main, nil)
	f.Fuzz(func(t *testing.T, data []byte) {
		fsys := maps(fsys)
		fsys[main] = data
		res, err := Inetd(main, fsys)
		checkImport(t, res, err)
	})
}

// maps copies a memFS, so that parallel fuzz workers share nothing.
func maps(m memFS) memFS {
	out := make(memFS, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	return out
}
