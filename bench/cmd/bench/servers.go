package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// workload is what a server is asked to serve: one or more services of the
// same kind on 127.0.0.1, each on its own port, each running the responder.
type workload struct {
	mode  string // "accept" or "wait"
	proto string // "tcp" or "udp"
	ports []int
	// extraFDs (floor only) makes it hold that many more open fds, as a
	// server with that many more sockets would.
	extraFDs int
}

// responderArgs is the responder's argv tail for the workload's kind.
func (w workload) responderArgs() []string {
	switch {
	case w.proto == "udp":
		return []string{"udp"}
	case w.mode == "wait":
		return []string{"accept"}
	}
	return nil
}

func (w workload) kind() string {
	if w.mode == "accept" {
		return "accept"
	}
	return w.proto + "-wait"
}

// server is one program under test.
type server struct {
	name string
	// kinds it can serve: "accept", "tcp-wait", "udp-wait".
	kinds []string
	// multi says it can serve many services from one process.
	multi bool
	// path is its binary; "" when not installed here.
	path string
	// env is added to its environment.
	env []string
	// argv writes whatever config it needs into dir and returns its
	// command line.
	argv func(e *bench, dir string, w workload) ([]string, error)
}

func (s *server) serves(kind string) bool {
	for _, k := range s.kinds {
		if k == kind {
			return true
		}
	}
	return false
}

// lookPath finds a binary on PATH or at one of the given paths.
func lookPath(name string, paths ...string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, p := range paths {
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// servers lists every server the driver knows, installed or not, in report
// order (the floor first).
func (e *bench) knownServers() []*server {
	peers := filepath.Join(e.root, "bench", ".peers")
	// make bench-kit copies the peers, with their libraries and loader,
	// under bench/.peers/kit for a machine where they are not installed:
	// with -kit its wrappers come first, else only where nothing else is.
	kit := func(name string, otherwise string) string {
		p := lookPath(filepath.Join(peers, "kit", "bin", name))
		if p != "" && (e.kit || otherwise == "") {
			return p
		}
		return otherwise
	}
	tcpserver := kit("tcpserver", lookPath("tcpserver", "/usr/bin/tcpserver"))
	xinetd := kit("xinetd", lookPath("xinetd", "/usr/sbin/xinetd"))
	inetd := kit("inetd", lookPath(filepath.Join(peers, "openbsd-inetd", "usr", "sbin", "inetd")))
	all := []*server{
		{
			name: "floor", kinds: []string{"accept", "tcp-wait", "udp-wait"},
			path: filepath.Join(e.build, "floor"),
			argv: func(e *bench, dir string, w workload) ([]string, error) {
				a := []string{filepath.Join(e.build, "floor")}
				if w.mode == "wait" {
					a = append(a, "-m", "wait")
				}
				if w.proto == "udp" {
					a = append(a, "-u")
				}
				if w.extraFDs > 0 {
					a = append(a, "-F", fmt.Sprint(w.extraFDs))
				}
				a = append(a, "127.0.0.1", fmt.Sprint(w.ports[0]), e.responder)
				return append(a, w.responderArgs()...), nil
			},
		},
		{
			// The floor with each child in its own session, as superd
			// (SPEC: setsid) and xinetd start theirs: what the contract
			// alone costs.
			name: "floor-setsid", kinds: []string{"accept"},
			path: filepath.Join(e.build, "floor"),
			argv: func(e *bench, dir string, w workload) ([]string, error) {
				return []string{filepath.Join(e.build, "floor"), "-s", "127.0.0.1", fmt.Sprint(w.ports[0]), e.responder}, nil
			},
		},
		{
			name: "superd", kinds: []string{"accept", "tcp-wait", "udp-wait"}, multi: true,
			path: e.superd,
			argv: func(e *bench, dir string, w workload) ([]string, error) {
				conf := filepath.Join(dir, "superd.yaml")
				if err := os.WriteFile(conf, []byte(e.superdConfig(w, e.superdLog)), 0o644); err != nil {
					return nil, err
				}
				return []string{e.superd, "run", "-c", conf}, nil
			},
		},
		{
			name: "tcpserver", kinds: []string{"accept"},
			path: tcpserver,
			argv: func(e *bench, dir string, w workload) ([]string, error) {
				// -c: children at once; -b: backlog; -H -R -l 0: no DNS,
				// no ident, no local name lookups.
				return []string{tcpserver, "-c", "1000000", "-b", "4096",
					"-H", "-R", "-l", "0", "127.0.0.1", fmt.Sprint(w.ports[0]), e.responder}, nil
			},
		},
		{
			name: "xinetd", kinds: []string{"accept", "tcp-wait", "udp-wait"}, multi: true,
			path: xinetd,
			argv: func(e *bench, dir string, w workload) ([]string, error) {
				conf := filepath.Join(dir, "xinetd.conf")
				if err := os.WriteFile(conf, []byte(e.xinetdConfig(w)), 0o644); err != nil {
					return nil, err
				}
				return []string{xinetd, "-dontfork", "-f", conf,
					"-filelog", filepath.Join(dir, "xinetd-own.log")}, nil
			},
		},
		{
			name: "openbsd-inetd", kinds: []string{"accept", "tcp-wait", "udp-wait"}, multi: true,
			path: inetd,
			argv: func(e *bench, dir string, w workload) ([]string, error) {
				conf := filepath.Join(dir, "inetd.conf")
				if err := os.WriteFile(conf, []byte(e.inetdConfig(w)), 0o644); err != nil {
					return nil, err
				}
				// -i: foreground; -q: backlog; -R: invocations a minute
				// before it stops a service for ten minutes.
				return []string{inetd, "-i", "-q", "4096", "-R", "100000000", conf}, nil
			},
		},
		{
			name: "systemd-socket-activate", kinds: []string{"accept"},
			argv: func(e *bench, dir string, w workload) ([]string, error) {
				return []string{e.ssaPath, "--accept", "--inetd",
					"-l", fmt.Sprintf("127.0.0.1:%d", w.ports[0]), e.responder}, nil
			},
		},
	}
	// systemd-socket-activate: the host's, or the one bench-deps unpacked
	// (its RUNPATH names the host's library directory, so point the loader
	// at the unpacked copy), or the kit's.
	ssa := all[len(all)-1]
	ssa.path = lookPath("systemd-socket-activate")
	if p := lookPath(filepath.Join(peers, "systemd", "usr", "bin", "systemd-socket-activate")); ssa.path == "" && p != "" {
		ssa.path = p
		libs, _ := filepath.Glob(filepath.Join(peers, "systemd", "usr", "lib", "*", "systemd"))
		ssa.env = []string{"LD_LIBRARY_PATH=" + strings.Join(libs, ":")}
	}
	if p := kit("systemd-socket-activate", ssa.path); p != ssa.path {
		ssa.path, ssa.env = p, nil
	}
	e.ssaPath = ssa.path
	if e.cores > 2 || e.multicore {
		workers := e.cores / 2
		if workers < 2 {
			workers = 2
		}
		all = append(all[:1], append([]*server{{
			name: fmt.Sprintf("floor-reuseport-x%d", workers), kinds: []string{"accept"},
			path: filepath.Join(e.build, "floor"),
			argv: func(e *bench, dir string, w workload) ([]string, error) {
				return []string{filepath.Join(e.build, "floor"), "-w", fmt.Sprint(workers),
					"127.0.0.1", fmt.Sprint(w.ports[0]), e.responder}, nil
			},
		}}, all[1:]...)...)
	}
	return all
}

// superdConfig is a superd configuration serving w with every limit off.
// logLevel is superd's log level ("info" is its default: one line per
// activation and one per exit).
func (e *bench) superdConfig(w workload, logLevel string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "log:\n  level: %s\n  format: console\nadmin:\n  listen: \"\"\nservices:\n", logLevel)
	for _, port := range w.ports {
		fmt.Fprintf(&b, "  b%d:\n    listen: %s://127.0.0.1:%d\n", port, w.proto, port)
		if w.mode == "wait" && w.proto == "tcp" {
			b.WriteString("    mode: wait\n")
		}
		args := append([]string{e.responder}, w.responderArgs()...)
		fmt.Fprintf(&b, "    exec: [%s]\n", strings.Join(args, ", "))
		if os.Geteuid() == 0 {
			b.WriteString("    user: root\n")
		}
		b.WriteString("    max_instances: 0\n")
	}
	return b.String()
}

// xinetdConfig is an xinetd configuration serving w with every limit off.
// Per-service logging is off (xinetd logs only what log_type names).
func (e *bench) xinetdConfig(w workload) string {
	var b strings.Builder
	b.WriteString("defaults\n{\n\tinstances = UNLIMITED\n\tper_source = UNLIMITED\n\tcps = 100000000 1\n}\n")
	for _, port := range w.ports {
		sockType, wait := "stream", "no"
		if w.proto == "udp" {
			sockType = "dgram"
		}
		if w.mode == "wait" {
			wait = "yes"
		}
		fmt.Fprintf(&b, "service b%d\n{\n\ttype = UNLISTED\n\tsocket_type = %s\n\tprotocol = %s\n\twait = %s\n",
			port, sockType, w.proto, wait)
		fmt.Fprintf(&b, "\tuser = %s\n\tserver = %s\n", currentUser(), e.responder)
		if a := w.responderArgs(); len(a) > 0 {
			fmt.Fprintf(&b, "\tserver_args = %s\n", strings.Join(a, " "))
		}
		fmt.Fprintf(&b, "\tport = %d\n\tbind = 127.0.0.1\n\tinstances = UNLIMITED\n}\n", port)
	}
	return b.String()
}

// inetdConfig is an openbsd-inetd configuration serving w; "nowait.N" and
// "wait.N" raise the per-minute invocation limit (default 256).
func (e *bench) inetdConfig(w workload) string {
	var b strings.Builder
	for _, port := range w.ports {
		sockType := "stream"
		if w.proto == "udp" {
			sockType = "dgram"
		}
		wait := "nowait"
		if w.mode == "wait" {
			wait = "wait"
		}
		args := append([]string{"responder"}, w.responderArgs()...)
		fmt.Fprintf(&b, "127.0.0.1:%d\t%s\t%s4\t%s.100000000\t%s\t%s\t%s\n",
			port, sockType, w.proto, wait, currentUser(), e.responder, strings.Join(args, " "))
	}
	return b.String()
}

func currentUser() string {
	if os.Geteuid() == 0 {
		return "root"
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "nobody"
}
