package importer

import (
	"cmp"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf8"
)

// Result is a converted configuration.
type Result struct {
	// YAML is a complete superd configuration file: a defaults section
	// with the old super-server's built-in behaviour and one service per
	// converted entry, sorted by name.
	YAML []byte
	// Warnings lists, in reading order, everything that could not be
	// converted as written.
	Warnings []Warning
}

// Warning is one attribute or entry that superd cannot express as the old
// configuration wrote it.
type Warning struct {
	File string
	Line int
	Msg  string
}

// String formats w as FILE:LINE: warning: MSG, the form `superd import`
// prints.
func (w Warning) String() string {
	return fmt.Sprintf("%s:%d: warning: %s", w.File, w.Line, w.Msg)
}

// SyntaxError is input that cannot be read as an xinetd or inetd
// configuration at all; nothing is converted.
type SyntaxError struct {
	File string
	Line int
	Msg  string
}

// Error formats e as FILE:LINE: MSG.
func (e *SyntaxError) Error() string {
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// FS is what an import reads: the configuration, the files and directories
// it includes, and /etc/services for port names (plus /etc/hosts.allow and
// /etc/hosts.deny, whose rules superd does not read and which are named in
// warnings). Names are slash-separated, as the configuration writes them.
type FS interface {
	ReadFile(name string) ([]byte, error)
	ReadDir(name string) ([]fs.DirEntry, error)
}

// HostFS reads the host's own files; relative names are relative to the
// working directory.
type HostFS struct{}

// ReadFile reads the named file.
func (HostFS) ReadFile(name string) ([]byte, error) { return os.ReadFile(name) }

// ReadDir lists the named directory, sorted by name.
func (HostFS) ReadDir(name string) ([]fs.DirEntry, error) { return os.ReadDir(name) }

// DirFS reads every name, absolute or relative, under the directory it
// names, as if that directory were "/": it converts the /etc of another
// host, copied or mounted somewhere else, including its /etc/services.
type DirFS string

func (d DirFS) path(name string) string {
	return filepath.Join(string(d), filepath.FromSlash(path.Clean("/"+name)))
}

// ReadFile reads the named file under d.
func (d DirFS) ReadFile(name string) ([]byte, error) { return os.ReadFile(d.path(name)) }

// ReadDir lists the named directory under d, sorted by name.
func (d DirFS) ReadDir(name string) ([]fs.DirEntry, error) { return os.ReadDir(d.path(name)) }

// warnings collects warnings in reading order: files are numbered as they
// are first read, and warnings sort by that number, then line.
type warnings struct {
	fileOrder map[string]int
	list      []Warning
}

func newWarnings() *warnings { return &warnings{fileOrder: map[string]int{}} }

func (w *warnings) file(name string) {
	if _, ok := w.fileOrder[name]; !ok {
		w.fileOrder[name] = len(w.fileOrder)
	}
}

func (w *warnings) add(file string, line int, format string, args ...any) {
	w.file(file)
	w.list = append(w.list, Warning{File: file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// sorted returns the warnings in reading order, each once.
func (w *warnings) sorted() []Warning {
	out := slices.Clone(w.list)
	slices.SortStableFunc(out, func(a, b Warning) int {
		return cmp.Or(cmp.Compare(w.fileOrder[a.File], w.fileOrder[b.File]), cmp.Compare(a.Line, b.Line))
	})
	// Equal warnings are adjacent only when also on the same line; drop
	// repeats there (a defaults line seen by many services).
	var uniq []Warning
	seen := map[Warning]bool{}
	for _, x := range out {
		if !seen[x] {
			seen[x] = true
			uniq = append(uniq, x)
		}
	}
	return uniq
}

// checkText refuses what cannot be a configuration file: a NUL byte or
// text that is not UTF-8 outside comments, which no value of superd's can
// carry.
func checkText(file string, lineNo int, line string) error {
	if strings.IndexByte(line, 0) >= 0 {
		return &SyntaxError{File: file, Line: lineNo, Msg: "contains a NUL byte: not a text file"}
	}
	if !utf8.ValidString(line) {
		return &SyntaxError{File: file, Line: lineNo, Msg: "is not UTF-8 text"}
	}
	return nil
}

// lines splits data into lines without their end of line (\n or \r\n).
func lines(data []byte) []string {
	s := strings.ReplaceAll(string(data), "\r\n", "\n")
	out := strings.Split(s, "\n")
	if len(out) > 0 && out[len(out)-1] == "" {
		out = out[:len(out)-1]
	}
	return out
}

// fields splits a line on spaces and tabs, as both super-servers do.
func fields(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '\t' || r == '\v' || r == '\f' || r == '\r' })
}

// wrapRules warns about each rule of /etc/hosts.allow and /etc/hosts.deny:
// xinetd (built with libwrap, as Debian's is) and inetd (with -l, or tcpd
// in the server field) applied them, superd does not read them.
func wrapRules(fsys FS, w *warnings) {
	for _, name := range []string{"/etc/hosts.allow", "/etc/hosts.deny"} {
		data, err := fsys.ReadFile(name)
		if err != nil {
			continue
		}
		for i, l := range lines(data) {
			l = strings.TrimSpace(l)
			if l == "" || l[0] == '#' {
				continue
			}
			w.add(name, i+1, "TCP wrappers rule not converted: superd does not read %s (tcpd, where it is the server, still does); write it as allow/deny in the services it concerns", path.Base(name))
		}
	}
}
