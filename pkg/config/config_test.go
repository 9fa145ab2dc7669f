package config

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/superd/superd/pkg/listener"
)

const fixtures = "../../testdata/config"

func addr(t *testing.T, s string) listener.Address {
	t.Helper()
	a, err := listener.ParseAddress(s)
	if err != nil {
		t.Fatalf("ParseAddress(%q): %v", s, err)
	}
	return a
}

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

func service(cfg *Config, name string) *Service {
	for _, s := range cfg.Services {
		if s.Name == name {
			return s
		}
	}
	return nil
}

func TestFullExampleDecodesEveryKey(t *testing.T) {
	file := filepath.Join(fixtures, "full.yaml")
	cfg, err := Load(file, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	at := func(line, col int32) Position { return Position{File: file, Line: line, Col: col} }

	tcpOpts := listener.Options{
		Backlog: 128, ReusePort: true, FreeBind: true, Transparent: true, BindToDevice: "lo",
		KeepAlive: true, KeepAliveTime: time.Minute, KeepAliveIntvl: 10 * time.Second, KeepAliveCount: 5,
		NoDelay: true, DeferAccept: 5 * time.Second, ReceiveBuffer: 64 << 10, SendBuffer: 128 << 10,
		Mark: 42, IPTOS: 16, IPTTL: 64, Priority: 3,
		OwnerUID: listener.NoOwner, OwnerGID: listener.NoOwner,
	}
	fileOpts := listener.Options{Backlog: listener.DefaultBacklog, FileMode: 0o660, OwnerUID: 33, OwnerGID: 33}
	dgramFileOpts := fileOpts
	dgramFileOpts.Backlog = 0 // datagram sockets do not listen
	want := &Config{
		File:  file,
		Log:   Log{Level: "debug", Format: "json"},
		Admin: Admin{Listen: "[::1]:9751"},
		Services: []*Service{
			{
				Name: "daytime", Pos: at(14, 3),
				Description: "RFC 867 daytime through an external program",
				Sockets: []Socket{
					{Address: addr(t, "tcp://:13"), Options: tcpOpts, FDName: "daytime-tcp"},
					{Address: addr(t, "tcp4://127.0.0.2:1313"), Options: tcpOpts, FDName: "daytime-tcp"},
				},
				Exec:   []string{"/usr/sbin/in.daytimed", "-v"},
				Argv0:  "in.daytimed",
				Mode:   Accept,
				Pass:   PassStdio,
				Stderr: StderrSocket,
				Credential: &Credential{
					User: "alice", UID: 1000, GID: 33, Groups: []uint32{5, 44},
				},
				WorkingDirectory: "/srv/daytime",
				Umask:            0o027,
				Nice:             5,
				Env: []string{
					"DEBUG=1", "GREETING=hello world", "LANG=C.UTF-8", "PATH=/opt/daytime/bin",
					"SUPERD_SERVICE=daytime", "TZ=UTC",
				},
				Rlimits: []Rlimit{
					{unix.RLIMIT_AS, "as", 1 << 30},
					{unix.RLIMIT_CORE, "core", 0},
					{unix.RLIMIT_CPU, "cpu", 10},
					{unix.RLIMIT_DATA, "data", 512 << 20},
					{unix.RLIMIT_FSIZE, "fsize", 10 << 20},
					{unix.RLIMIT_MEMLOCK, "memlock", unix.RLIM_INFINITY},
					{unix.RLIMIT_NOFILE, "nofile", 1024},
					{unix.RLIMIT_NPROC, "nproc", 64},
					{unix.RLIMIT_STACK, "stack", 8 << 20},
				},
				MaxDuration:      90 * time.Second,
				StopSignal:       syscall.SIGHUP,
				StopTimeout:      3 * time.Second,
				MaxInstances:     0,
				MaxPerSource:     4,
				PerSourcePrefix6: 56,
				RateLimit:        &RateLimit{Max: 100, Per: time.Second, Pause: 30 * time.Second},
				Allow:            prefixes("10.0.0.0/8", "192.168.1.0/24", "2001:db8::1/128", "192.0.2.7/32"),
				Deny:             prefixes("10.1.2.3/32", "2001:db8::/32"),
				AccessTimes:      []TimeWindow{{8 * 60, 18*60 + 30}, {22 * 60, 2 * 60}},
			},
			{
				Name: "echo", Pos: at(99, 3), Disabled: true,
				Sockets: []Socket{{
					Address: addr(t, "tcp://127.0.0.1:7"),
					Options: listener.Options{Backlog: listener.DefaultBacklog, NoDelay: true, OwnerUID: -1, OwnerGID: -1},
					FDName:  "echo",
				}},
				Internal: "echo", Mode: Accept, Pass: PassStdio, Stderr: StderrLog,
				WorkingDirectory: "/", Umask: 0o022, StopSignal: syscall.SIGTERM, StopTimeout: 10 * time.Second,
				MaxInstances: 50, PerSourcePrefix6: 64,
			},
			{
				Name: "fwd", Pos: at(104, 3),
				Sockets: []Socket{{
					Address: addr(t, "tcp://[::]:8080"),
					Options: listener.Options{Backlog: listener.DefaultBacklog, IPv6Only: true, OwnerUID: -1, OwnerGID: -1},
					FDName:  "fwd",
				}},
				Redirect: "backend.example:80", Mode: Accept, Pass: PassStdio, Stderr: StderrLog,
				WorkingDirectory: "/", Umask: 0o022, StopSignal: syscall.SIGTERM, StopTimeout: 10 * time.Second,
				MaxInstances: 50, PerSourcePrefix6: 64,
			},
			{
				Name: "tftp", Pos: at(76, 3),
				Description: "datagram service, so wait mode by default",
				Sockets: []Socket{{
					Address: addr(t, "udp4://0.0.0.0:69"),
					Options: listener.Options{Broadcast: true, ReceiveBuffer: 1 << 20, OwnerUID: -1, OwnerGID: -1},
					FDName:  "tftp",
				}},
				Exec: []string{"/usr/sbin/in.tftpd", "--secure", "/srv/tftp"},
				Mode: Wait, Pass: PassStdio, Stderr: StderrLog,
				Credential:       &Credential{User: "nobody", UID: 65534, GID: 65534, Groups: []uint32{65534}},
				WorkingDirectory: "/", Umask: 0o022,
				Env:        []string{DefaultPath, "SUPERD_SERVICE=tftp"},
				StopSignal: syscall.SIGTERM, StopTimeout: 5 * time.Second,
				MaxInstances: 50, PerSourcePrefix6: 64,
			},
			{
				Name: "xd", Pos: at(85, 3),
				Sockets: []Socket{
					{Address: addr(t, "unix:///run/superd/x.sock"), Options: fileOpts, FDName: "xd"},
					{Address: addr(t, "unixpacket:///run/superd/y.sock"), Options: fileOpts, FDName: "xd"},
					{Address: addr(t, "unixgram:///run/superd/z.sock"), Options: dgramFileOpts, FDName: "xd"},
				},
				Exec: []string{"/usr/libexec/xd"},
				Mode: Wait, Pass: PassListenFDs, Stderr: StderrDiscard,
				Credential:       &Credential{User: "1234", UID: 1234, GID: 5},
				WorkingDirectory: "/", Umask: 0o022,
				Env:        []string{DefaultPath, "SUPERD_SERVICE=xd"},
				StopSignal: syscall.SIGINT, StopTimeout: 5 * time.Second,
				MaxInstances: 50, PerSourcePrefix6: 64,
			},
		},
	}
	if len(cfg.Services) != len(want.Services) {
		t.Fatalf("got %d services, want %d", len(cfg.Services), len(want.Services))
	}
	for i := range want.Services {
		if got, want := cfg.Services[i], want.Services[i]; !reflect.DeepEqual(got, want) {
			t.Errorf("service %s:\n got %+v\nwant %+v", want.Name, *got, *want)
			diffFields(t, *got, *want)
		}
	}
	if cfg.File != want.File || cfg.Log != want.Log || cfg.Admin != want.Admin {
		t.Errorf("got %q %+v %+v, want %q %+v %+v", cfg.File, cfg.Log, cfg.Admin, want.File, want.Log, want.Admin)
	}
}

// diffFields names the fields that differ, which a %+v of a whole Service
// makes hard to see.
func diffFields(t *testing.T, got, want Service) {
	t.Helper()
	g, w := reflect.ValueOf(got), reflect.ValueOf(want)
	for i := range g.NumField() {
		if !reflect.DeepEqual(g.Field(i).Interface(), w.Field(i).Interface()) {
			t.Errorf("  %s: got %#v, want %#v", g.Type().Field(i).Name, g.Field(i).Interface(), w.Field(i).Interface())
		}
	}
}

func TestSpecExampleLoads(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(fixtures, "spec-example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := mustParseFile(t, "spec-example.yaml", data, testOptions())
	s := service(cfg, "daytime")
	if s == nil || s.Mode != Accept || s.Credential.UID != 65534 || !s.Sockets[0].Address.DualStack {
		t.Errorf("daytime = %+v", s)
	}
}

func mustParseFile(t *testing.T, name string, data []byte, opts Options) *Config {
	t.Helper()
	cfg, err := Parse(name, data, opts)
	if err != nil {
		t.Fatalf("Parse:\n%v", err)
	}
	return cfg
}

func TestDefaults(t *testing.T) {
	tests := []struct {
		name  string
		src   string
		check func(t *testing.T, cfg *Config)
	}{
		{
			name: "an empty file is a valid configuration with every default",
			src:  "",
			check: func(t *testing.T, cfg *Config) {
				want := &Config{File: "superd.yaml", Log: Log{"info", "console"}, Admin: Admin{DefaultAdminListen}, Services: []*Service{}}
				if !reflect.DeepEqual(cfg, want) {
					t.Errorf("got %+v, want %+v", cfg, want)
				}
			},
		},
		{
			name: "an empty admin listen disables the admin listener",
			src:  "admin: {listen: \"\"}\nlog:\nservices:\n",
			check: func(t *testing.T, cfg *Config) {
				if cfg.Admin.Listen != "" {
					t.Errorf("admin listen = %q", cfg.Admin.Listen)
				}
			},
		},
		{
			name: "a minimal exec service gets every service default",
			src:  "services:\n  d:\n    listen: tcp://:13\n    exec: [/bin/d]\n",
			check: func(t *testing.T, cfg *Config) {
				want := &Service{
					Name: "d", Pos: Position{"superd.yaml", 2, 3},
					Sockets: []Socket{{Address: cfg.Services[0].Sockets[0].Address,
						Options: listener.Options{Backlog: 4096, OwnerUID: -1, OwnerGID: -1}, FDName: "d"}},
					Exec: []string{"/bin/d"}, Mode: Accept, Pass: PassStdio, Stderr: StderrLog,
					WorkingDirectory: "/", Umask: 0o022,
					Env:        []string{DefaultPath, "SUPERD_SERVICE=d"},
					StopSignal: syscall.SIGTERM, StopTimeout: 10 * time.Second,
					MaxInstances: 256, PerSourcePrefix6: 64,
				}
				if got := cfg.Services[0]; !reflect.DeepEqual(got, want) {
					diffFields(t, *got, *want)
				}
			},
		},
		{
			name: "defaults apply key by key and a service's own socket map replaces the default one whole",
			src: `defaults:
  max_instances: 7
  umask: "077"
  socket: {backlog: 16, keepalive: true}
services:
  a:
    listen: tcp://:1
    exec: [/bin/a]
  b:
    listen: tcp://:2
    exec: [/bin/b]
    umask: "002"
    socket: {no_delay: true}
`,
			check: func(t *testing.T, cfg *Config) {
				a, b := service(cfg, "a"), service(cfg, "b")
				if a.MaxInstances != 7 || a.Umask != 0o077 || a.Sockets[0].Options.Backlog != 16 || !a.Sockets[0].Options.KeepAlive {
					t.Errorf("a = %+v", a)
				}
				o := b.Sockets[0].Options
				if b.MaxInstances != 7 || b.Umask != 0o002 || o.Backlog != 4096 || o.KeepAlive || !o.NoDelay {
					t.Errorf("b = %+v %+v", b, o)
				}
			},
		},
		{
			name: "default socket options are skipped on sockets they cannot apply to",
			src: `defaults:
  socket: {no_delay: true, file_mode: "0600", pass_credentials: true}
services:
  tcp: {listen: "tcp://:1", internal: echo}
  udp: {listen: "udp://:1", internal: echo}
  unix: {listen: "unix:///run/u.sock", internal: echo}
`,
			check: func(t *testing.T, cfg *Config) {
				tcp, udp, ux := service(cfg, "tcp").Sockets[0].Options, service(cfg, "udp").Sockets[0].Options, service(cfg, "unix").Sockets[0].Options
				if !tcp.NoDelay || tcp.FileMode != 0 || tcp.PassCredentials {
					t.Errorf("tcp = %+v", tcp)
				}
				if udp.NoDelay || udp.FileMode != 0 || udp.Backlog != 0 {
					t.Errorf("udp = %+v", udp)
				}
				if ux.NoDelay || ux.FileMode != 0o600 || !ux.PassCredentials {
					t.Errorf("unix = %+v", ux)
				}
			},
		},
		{
			name: "process defaults are not applied to internal and redirect services",
			src: `defaults:
  user: nobody
  umask: "077"
  stop_timeout: 1s
  pass: listen_fds
  mode: wait
services:
  echo: {listen: "tcp://:7", internal: echo}
  fwd: {listen: "tcp://:8", redirect: "127.0.0.1:9"}
  x: {listen: "tcp://:9", exec: [/bin/x]}
`,
			check: func(t *testing.T, cfg *Config) {
				for _, name := range []string{"echo", "fwd"} {
					s := service(cfg, name)
					if s.Credential != nil || s.Umask != 0o022 || s.StopTimeout != 10*time.Second || s.Pass != PassStdio || s.Mode != Accept || s.Env != nil {
						t.Errorf("%s = %+v", name, s)
					}
				}
				x := service(cfg, "x")
				if x.Credential == nil || x.Umask != 0o077 || x.StopTimeout != time.Second || x.Pass != PassListenFDs || x.Mode != Wait {
					t.Errorf("x = %+v", x)
				}
			},
		},
		{
			name: "a default mode that does not fit a service's sockets is not applied",
			src: `defaults:
  mode: accept
services:
  tftp: {listen: "udp://:69", exec: [/bin/tftpd]}
`,
			check: func(t *testing.T, cfg *Config) {
				if m := cfg.Services[0].Mode; m != Wait {
					t.Errorf("mode = %v", m)
				}
			},
		},
		{
			name: "datagram sockets default to wait mode and stream sockets to accept",
			src: `services:
  u: {listen: "udp://:1", exec: [/bin/u]}
  t: {listen: "tcp://:1", exec: [/bin/t]}
  s: {listen: "unixpacket:///run/s", exec: [/bin/s]}
  m: {listen: ["tcp://:2", "udp://:2"], exec: [/bin/m], pass: listen_fds}
  ie: {listen: "udp://:7", internal: echo}
`,
			check: func(t *testing.T, cfg *Config) {
				want := map[string]Mode{"u": Wait, "t": Accept, "s": Accept, "m": Wait, "ie": Wait}
				for name, m := range want {
					if got := service(cfg, name).Mode; got != m {
						t.Errorf("%s: mode %v, want %v", name, got, m)
					}
				}
			},
		},
		{
			name: "services are sorted by name",
			src: `services:
  zeta: {listen: "tcp://:3", internal: echo}
  alpha: {listen: "tcp://:1", internal: echo}
  mid.dle-1: {listen: "tcp://:2", internal: echo}
`,
			check: func(t *testing.T, cfg *Config) {
				var names []string
				for _, s := range cfg.Services {
					names = append(names, s.Name)
				}
				if want := []string{"alpha", "mid.dle-1", "zeta"}; !slices.Equal(names, want) {
					t.Errorf("names = %v, want %v", names, want)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.check(t, mustParse(t, tc.src, testOptions()))
		})
	}
}

func TestValues(t *testing.T) {
	// Each row is one service key with its value and what it must decode
	// to, on an exec service listening on tcp://:1.
	tests := []struct {
		name  string
		keys  string
		check func(s *Service) bool
	}{
		{"a quoted umask is octal", `umask: "022"`, func(s *Service) bool { return s.Umask == 0o022 }},
		{"a four-digit umask is octal", `umask: "0027"`, func(s *Service) bool { return s.Umask == 0o027 }},
		{"an unquoted umask is read as octal too", `umask: 027`, func(s *Service) bool { return s.Umask == 0o027 }},
		{"an unquoted umask without a leading zero is octal", `umask: 77`, func(s *Service) bool { return s.Umask == 0o077 }},
		{"a 0o umask is octal", `umask: 0o7`, func(s *Service) bool { return s.Umask == 0o007 }},
		{"a zero umask is allowed", `umask: 0`, func(s *Service) bool { return s.Umask == 0 }},
		{"a negative nice is allowed", `nice: -20`, func(s *Service) bool { return s.Nice == -20 }},
		{"the highest nice", `nice: 19`, func(s *Service) bool { return s.Nice == 19 }},
		{"the widest umask", `umask: "0777"`, func(s *Service) bool { return s.Umask == 0o777 }},
		{"the longest IPv6 source prefix", `{max_per_source: 1, per_source_prefix6: 128}`, func(s *Service) bool { return s.PerSourcePrefix6 == 128 }},
		// The socket options at the top of their ranges, each in a field
		// no wider than it must be.
		{"the top of every socket number", `socket: {mark: 4294967295, ip_tos: 255, ip_ttl: 255, backlog: 2147483647, priority: 2147483647, receive_buffer: 1073741823, keepalive: true, keepalive_count: 127}`, func(s *Service) bool {
			o := s.Sockets[0].Options
			return o.Mark == math.MaxUint32 && o.IPTOS == 255 && o.IPTTL == 255 && o.Backlog == math.MaxInt32 &&
				o.Priority == math.MaxInt32 && o.ReceiveBuffer == 1<<30-1 && o.KeepAliveCount == 127
		}},
		{"a signal name without SIG works", `stop_signal: hup`, func(s *Service) bool { return s.StopSignal == syscall.SIGHUP }},
		{"a signal name with SIG works", `stop_signal: SIGUSR1`, func(s *Service) bool { return s.StopSignal == syscall.SIGUSR1 }},
		{"a realtime signal number works", `stop_signal: 40`, func(s *Service) bool { return s.StopSignal == 40 }},
		{"a size in K is a power of 1024", `rlimits: {stack: 8K}`, func(s *Service) bool { return s.Rlimits[0].Value == 8192 }},
		{"a size in lowercase g is a power of 1024", `rlimits: {as: 2g}`, func(s *Service) bool { return s.Rlimits[0].Value == 2<<30 }},
		{"unlimited is RLIM_INFINITY", `rlimits: {core: unlimited}`, func(s *Service) bool { return s.Rlimits[0].Value == unix.RLIM_INFINITY }},
		{"a bare IPv4 address is a /32", `allow: 192.0.2.1`, func(s *Service) bool { return s.Allow[0] == netip.MustParsePrefix("192.0.2.1/32") }},
		{"a bare IPv6 address is a /128", `deny: ["::1"]`, func(s *Service) bool { return s.Deny[0] == netip.MustParsePrefix("::1/128") }},
		{"an IPv4-mapped address is unmapped", `allow: ["::ffff:10.0.0.1"]`, func(s *Service) bool { return s.Allow[0] == netip.MustParsePrefix("10.0.0.1/32") }},
		{"a prefix with host bits is masked", `allow: [10.1.2.3/8]`, func(s *Service) bool { return s.Allow[0] == netip.MustParsePrefix("10.0.0.0/8") }},
		{"an empty allow list allows everyone", `allow: []`, func(s *Service) bool { return s.Allow == nil }},
		{"a time window may wrap past midnight", `access_times: "23:30-0:15"`, func(s *Service) bool { return s.AccessTimes[0] == TimeWindow{23*60 + 30, 15} }},
		{"rate_limit pause defaults to per", `rate_limit: {max: 5, per: 2s}`, func(s *Service) bool { return *s.RateLimit == RateLimit{5, 2 * time.Second, 2 * time.Second} }},
		{"pass_env PATH replaces the default PATH", `pass_env: [PATH, LANG]`, func(s *Service) bool {
			return slices.Equal(s.Env, []string{"LANG=C.UTF-8", "PATH=/opt/bin:/usr/bin", "SUPERD_SERVICE=x"})
		}},
		{"pass_env of an unset variable sets nothing", `pass_env: NOPE`, func(s *Service) bool {
			return slices.Equal(s.Env, []string{DefaultPath, "SUPERD_SERVICE=x"})
		}},
		{"env wins over pass_env", `{pass_env: [TZ], env: {TZ: Europe/Paris, EMPTY: ""}}`, func(s *Service) bool {
			return slices.Equal(s.Env, []string{"EMPTY=", DefaultPath, "SUPERD_SERVICE=x", "TZ=Europe/Paris"})
		}},
		{"a user's primary group and groups come from the database", `user: alice`, func(s *Service) bool {
			return reflect.DeepEqual(s.Credential, &Credential{User: "alice", UID: 1000, GID: 1000, Groups: []uint32{1000, 5, 44}})
		}},
		{"a numeric user in the database is resolved", `user: 33`, func(s *Service) bool {
			return reflect.DeepEqual(s.Credential, &Credential{User: "www-data", UID: 33, GID: 33, Groups: []uint32{33}})
		}},
		{"explicit groups replace the database's, and an empty list clears them", `{user: alice, groups: []}`, func(s *Service) bool {
			return reflect.DeepEqual(s.Credential, &Credential{User: "alice", UID: 1000, GID: 1000})
		}},
		{"a numeric group outside the database is kept as a gid", `{user: root, group: 4242}`, func(s *Service) bool {
			return reflect.DeepEqual(s.Credential, &Credential{User: "root", UID: 0, GID: 4242, Groups: []uint32{0}})
		}},
		{"fd_name overrides the service name", `socket: {fd_name: My.Name_1}`, func(s *Service) bool { return s.Sockets[0].FDName == "My.Name_1" }},
		{"a working directory is cleaned", `working_directory: /srv//x/../y/`, func(s *Service) bool { return s.WorkingDirectory == "/srv/y" }},
		{"a disabled service is still returned", `disabled: true`, func(s *Service) bool { return s.Disabled }},
		{"listen_fds in accept mode is allowed", `pass: listen_fds`, func(s *Service) bool { return s.Pass == PassListenFDs && s.Mode == Accept }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src := "services:\n  x:\n    listen: tcp://:1\n    exec: [/bin/x]\n    " + tc.keys + "\n"
			if strings.HasPrefix(tc.keys, "{") {
				src = "services:\n  x: {listen: \"tcp://:1\", exec: [/bin/x], " + strings.TrimSuffix(strings.TrimPrefix(tc.keys, "{"), "}") + "}\n"
			}
			s := mustParse(t, src, testOptions()).Services[0]
			if !tc.check(s) {
				t.Errorf("%s decoded to %+v", tc.keys, *s)
			}
		})
	}
}

func TestAddressChecks(t *testing.T) {
	tests := []struct {
		name string
		src  string
	}{
		{"ipv6_only lets an IPv4 wildcard share the port of [::]", `services:
  v4: {listen: "tcp://0.0.0.0:13", internal: daytime}
  v6: {listen: "tcp://:13", internal: daytime, socket: {ipv6_only: true}}
`},
		{"TCP and UDP on the same port do not conflict", `services:
  t: {listen: "tcp://:37", internal: time}
  u: {listen: "udp://:37", internal: time}
`},
		{"two services may share an address with reuse_port on both", `services:
  a: {listen: "tcp://:80", internal: echo, socket: {reuse_port: true}}
  b: {listen: "tcp://:80", internal: echo, socket: {reuse_port: true}}
`},
		{"a disabled service does not hold its address", `services:
  a: {listen: "tcp://:80", internal: echo}
  b: {listen: "tcp://:80", internal: echo, disabled: true}
  c: {listen: "tcp4://0.0.0.0:80", internal: echo, disabled: true}
`},
		{"a tcp6 [::] socket is not dual-stack", `services:
  a: {listen: "tcp6://[::]:5", internal: echo}
  b: {listen: "tcp4://0.0.0.0:5", internal: echo}
`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			mustParse(t, tc.src, testOptions())
		})
	}
}

// memFS serves Parse's include hooks from memory.
type memFS map[string]string

func (m memFS) options() Options {
	o := testOptions()
	o.Glob = func(pattern string) ([]string, error) {
		var out []string
		for name := range m {
			if ok, _ := filepath.Match(pattern, name); ok {
				out = append(out, name)
			}
		}
		slices.Sort(out)
		return out, nil
	}
	o.ReadFile = func(name string) ([]byte, error) {
		if s, ok := m[name]; ok {
			return []byte(s), nil
		}
		return nil, &os.PathError{Op: "open", Path: name, Err: os.ErrNotExist}
	}
	return o
}

func TestIncludes(t *testing.T) {
	t.Run("relative globs are read from the including file's directory", func(t *testing.T) {
		cfg, err := Load(filepath.Join(fixtures, "include", "superd.yaml"), testOptions())
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, s := range cfg.Services {
			names = append(names, s.Name)
		}
		if want := []string{"daytime", "echo", "time"}; !slices.Equal(names, want) {
			t.Fatalf("services = %v, want %v", names, want)
		}
		d := service(cfg, "daytime")
		if d.Pos.File != filepath.Join(fixtures, "include", "conf.d", "daytime.yaml") || d.Credential == nil || d.Credential.User != "nobody" {
			t.Errorf("daytime = %+v", d)
		}
		if tm := service(cfg, "time"); tm.Mode != Wait || len(tm.Sockets) != 2 {
			t.Errorf("time = %+v", tm)
		}
	})
	t.Run("a service defined in two files is an error naming both", func(t *testing.T) {
		dir := filepath.Join(fixtures, "include-dup")
		_, err := Load(filepath.Join(dir, "superd.yaml"), testOptions())
		want := filepath.Join(dir, "conf.d", "echo.yaml") + `:5:3: services.echo: service "echo" is already defined at ` + filepath.Join(dir, "superd.yaml") + ":3:3"
		if err == nil || err.Error() != want {
			t.Errorf("err = %v\nwant %s", err, want)
		}
	})
	t.Run("an included file holds only services", func(t *testing.T) {
		dir := filepath.Join(fixtures, "include-bad")
		_, err := Load(filepath.Join(dir, "superd.yaml"), testOptions())
		bad := filepath.Join(dir, "conf.d", "bad.yaml")
		want := bad + ":1:1: log: not allowed in an included file, which holds only services:\n" +
			bad + `:7:5: services.echo.max_instance: unknown key; did you mean "max_instances"?`
		if err == nil || err.Error() != want {
			t.Errorf("err = %v\nwant %s", err, want)
		}
	})
	t.Run("errors in included files are reported with their file", func(t *testing.T) {
		fs := memFS{
			"/etc/superd/conf.d/a.yaml": "services:\n  a: {listen: \"tcp://:1\", internal: echo}\n",
			"/etc/superd/conf.d/b.yaml": "services:\n  b: {listen: \"tcp://:1\", internal: echo}\n  c: [\n",
		}
		_, err := Parse("/etc/superd/superd.yaml", []byte("include: [conf.d/*.yaml, /nowhere/*.yaml]\n"), fs.options())
		want := "/etc/superd/conf.d/b.yaml:3:1: YAML syntax error: did not find expected node content"
		if err == nil || err.Error() != want {
			t.Errorf("err = %v\nwant %s", err, want)
		}
	})
	t.Run("the same address in two included files is an error naming both", func(t *testing.T) {
		fs := memFS{
			"/etc/superd/conf.d/a.yaml": "services:\n  a: {listen: \"tcp://:1\", internal: echo}\n",
			"/etc/superd/conf.d/b.yaml": "services:\n  b: {listen: \"tcp://:1\", internal: echo}\n",
		}
		_, err := Parse("/etc/superd/superd.yaml", []byte("include: conf.d/*.yaml\n"), fs.options())
		want := "/etc/superd/conf.d/b.yaml:2:15: services.b.listen: tcp://[::]:1 is also bound by services.a.listen at /etc/superd/conf.d/a.yaml:2:15; two services can share an address only with socket: {reuse_port: true} in both"
		if err == nil || err.Error() != want {
			t.Errorf("err = %v\nwant %s", err, want)
		}
	})
	t.Run("Parse follows no include without a Glob hook", func(t *testing.T) {
		opts := testOptions()
		opts.ReadFile = func(name string) ([]byte, error) {
			t.Errorf("Parse read %s", name)
			return nil, errors.New("no")
		}
		mustParseFile(t, "/etc/superd/superd.yaml", []byte("include: [conf.d/*.yaml]\n"), opts)
	})
	t.Run("a file including itself is read once", func(t *testing.T) {
		fs := memFS{"/etc/superd/superd.yaml": "include: ['*.yaml']\nservices:\n  a: {listen: \"tcp://:1\", internal: echo}\n"}
		cfg := mustParseFile(t, "/etc/superd/superd.yaml", []byte(fs["/etc/superd/superd.yaml"]), fs.options())
		if len(cfg.Services) != 1 {
			t.Errorf("services = %d", len(cfg.Services))
		}
	})
}

func TestLoadReportsAnUnreadableFileAsIs(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "missing.yaml"), testOptions())
	var es Errors
	if !errors.Is(err, os.ErrNotExist) || errors.As(err, &es) {
		t.Errorf("err = %#v", err)
	}
}

func TestSeveralErrorsAreAllReportedInFileOrder(t *testing.T) {
	src := `services:
  b:
    listen: tcp://:1
    exec: [b]
    umask: "9"
  a:
    listen: "udp://:1"
    exec: [/bin/a]
    mode: accept
    nice: 99
defaults:
  stop_timeout: -1s
log: {level: loud}
`
	got := errorLines(t, src, testOptions())
	want := []string{
		`superd.yaml:4:12: services.b.exec[0]: program path "b" must be absolute (superd does not search PATH)`,
		`superd.yaml:5:12: services.b.umask: invalid octal number "9": use the digits 0 to 7, e.g. "022"`,
		`superd.yaml:9:5: services.a.mode: accept mode needs stream or seqpacket sockets, but udp://[::]:1 is a datagram socket; datagram sockets are served in wait mode`,
		`superd.yaml:10:11: services.a.nice: must be between -20 and 19, got 99`,
		`superd.yaml:12:17: defaults.stop_timeout: must be more than 0, got -1s`,
		`superd.yaml:13:14: log.level: must be debug, info, warn or error, got "loud"`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestErrorFormat(t *testing.T) {
	es := Errors{
		{Pos: Position{"b.yaml", 1, 1}, Key: "services.x", Msg: "m1"},
		{Pos: Position{"a.yaml", 10, 2}, Key: "", Msg: "syntax"},
		{Pos: Position{"a.yaml", 9, 5}, Key: "log.level", Msg: "m2"},
		{Pos: Position{"a.yaml", 9, 5}, Key: "log.level", Msg: "m2"},
	}.sorted()
	want := "a.yaml:9:5: log.level: m2\na.yaml:10:2: syntax\nb.yaml:1:1: services.x: m1"
	if got := es.Error(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestLoopbackFixtureLoadsWithTheSystemDatabases(t *testing.T) {
	cfg, err := Load(filepath.Join(fixtures, "loopback.yaml"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Services) != 6 || cfg.Admin.Listen != "" {
		t.Errorf("got %d services, admin %q", len(cfg.Services), cfg.Admin.Listen)
	}
}

// A user named by many services has its groups looked up once: the group
// database is read in full for each lookup.
func TestGroupListIsLookedUpOncePerUser(t *testing.T) {
	var lists int
	opts := testOptions()
	opts.Accounts = countingAccounts{groupLists: &lists}
	var b strings.Builder
	b.WriteString("defaults: {user: alice}\nservices:\n")
	for i := 0; i < 50; i++ {
		fmt.Fprintf(&b, "  s%d: {listen: \"tcp://127.0.0.1:%d\", exec: [/bin/true]}\n", i, 2000+i)
	}
	b.WriteString("  other: {listen: \"tcp://127.0.0.1:1999\", exec: [/bin/true], user: daemon}\n")
	cfg, err := Parse("many.yaml", []byte(b.String()), opts)
	if err != nil {
		t.Fatal(err)
	}
	if lists != 2 {
		t.Errorf("group lists looked up %d times for 2 users, want 2", lists)
	}
	for _, sc := range cfg.Services {
		want := []uint32{1000, 5, 44}
		if sc.Name == "other" {
			want = []uint32{1} // daemon is in its own group only
		}
		if got := sc.Credential.Groups; !slices.Equal(got, want) {
			t.Errorf("%s: groups = %v, want %v", sc.Name, got, want)
		}
	}
}

// Services that run as the same user, group and groups share one
// Credential (10,000 services as one user: 1.5 MB less RSS); any
// difference gets its own.
func TestServicesOfOneUserShareACredential(t *testing.T) {
	cfg, err := Parse("share.yaml", []byte(`
defaults: {user: alice}
services:
  a: {listen: "tcp://127.0.0.1:2001", exec: [/bin/true]}
  b: {listen: "tcp://127.0.0.1:2002", exec: [/bin/true]}
  c: {listen: "tcp://127.0.0.1:2003", exec: [/bin/true], groups: []}
  d: {listen: "tcp://127.0.0.1:2004", exec: [/bin/true], user: daemon}
`), testOptions())
	if err != nil {
		t.Fatal(err)
	}
	by := map[string]*Credential{}
	for _, sc := range cfg.Services {
		by[sc.Name] = sc.Credential
	}
	if by["a"] == nil || by["a"] != by["b"] {
		t.Errorf("a and b, both alice: credentials %p and %p, want one shared", by["a"], by["b"])
	}
	if by["c"] == by["a"] || by["d"] == by["a"] || by["c"] == nil || by["d"] == nil {
		t.Errorf("c (alice, no groups) and d (daemon) must not share a's credential: %+v %+v %+v", *by["a"], by["c"], by["d"])
	}
	if len(by["c"].Groups) != 0 || by["d"].User != "daemon" {
		t.Errorf("c: %+v, d: %+v", *by["c"], *by["d"])
	}
}

// Exec and Env share one array (pack): each must stay a slice of its own,
// so that a caller appending to one cannot change the other, and the
// strings must read as written.
func TestPackedServiceSlicesStayApart(t *testing.T) {
	cfg := mustParse(t, `
services:
  web:
    description: serves pages
    listen: ["tcp://127.0.0.1:2001", "unix:///run/web.sock"]
    exec: [/usr/bin/web, --port, "80"]
    argv0: webd
    env: {A: "1"}
    working_directory: /srv
`, testOptions())
	s := service(cfg, "web")
	wantExec := []string{"/usr/bin/web", "--port", "80"}
	wantEnv := []string{"A=1", DefaultPath, "SUPERD_SERVICE=web"}
	if !slices.Equal(s.Exec, wantExec) || !slices.Equal(s.Env, wantEnv) {
		t.Fatalf("exec %q env %q, want %q and %q", s.Exec, s.Env, wantExec, wantEnv)
	}
	if cap(s.Exec) != len(s.Exec) {
		t.Errorf("cap(Exec) = %d, want %d: an append would write into Env", cap(s.Exec), len(s.Exec))
	}
	_ = append(s.Exec, "--extra")
	_ = append(s.Env, "B=2")
	if !slices.Equal(s.Env, wantEnv) || !slices.Equal(s.Exec, wantExec) {
		t.Errorf("after appends: exec %q env %q", s.Exec, s.Env)
	}
	got := []string{s.Name, s.Description, s.Argv0, s.WorkingDirectory, s.Sockets[0].FDName, s.Sockets[1].Address.Path}
	want := []string{"web", "serves pages", "webd", "/srv", "web", "/run/web.sock"}
	if !slices.Equal(got, want) {
		t.Errorf("strings %q, want %q", got, want)
	}
}
