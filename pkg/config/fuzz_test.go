package config

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/superd/superd/pkg/listener"
)

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(fixtures, "*.yaml"))
	more, _ := filepath.Glob(filepath.Join(fixtures, "*", "*.yaml"))
	deeper, _ := filepath.Glob(filepath.Join(fixtures, "*", "*", "*.yaml"))
	for _, name := range slices.Concat(files, more, deeper) {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, tc := range errorCases {
		f.Add([]byte(tc.src))
	}
	for _, s := range []string{
		"",
		"services:\n  a: {listen: \"tcp://:1\", internal: echo}\n",
		"services:\n  a: {listen: [\"udp://:1\", \"udp6://[::1]:2\"], exec: [/bin/a], pass: listen_fds}\n",
		"defaults: &d {umask: \"022\"}\nservices:\n  a: {listen: \"unix:///run/a\", exec: [/bin/a], user: alice}\n  b: *d\n",
		"services:\n  a:\n    <<: {listen: \"tcp://:1\"}\n",
		"a: &a [*a]\n",
		"services: {a: {listen: \"tcp://:1\", redirect: \"[::1]:80\", socket: {keepalive: true, keepalive_count: 3}}}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.yaml", data, testOptions())
		if err != nil {
			checkErrors(t, err)
			return
		}
		checkConfig(t, cfg)
	})
}

// checkErrors asserts what every rejection promises: Errors, each with a
// position in the file and a message, in order.
func checkErrors(t *testing.T, err error) {
	var es Errors
	if !errors.As(err, &es) || len(es) == 0 {
		t.Fatalf("error %T is not a non-empty Errors: %v", err, err)
	}
	for i, e := range es {
		if e.Pos.File != "fuzz.yaml" || e.Pos.Line < 1 || e.Pos.Col < 1 || e.Msg == "" {
			t.Errorf("bad error %#v", e)
		}
		if i > 0 && compareErrors(es[i-1], e) >= 0 {
			t.Errorf("errors out of order or repeated: %v then %v", es[i-1], e)
		}
	}
}

// checkConfig asserts the invariants the rest of superd relies on without
// checking again.
func checkConfig(t *testing.T, cfg *Config) {
	if cfg.Log.Level == "" || cfg.Log.Format == "" {
		t.Errorf("log not defaulted: %+v", cfg.Log)
	}
	for i, s := range cfg.Services {
		if i > 0 && cfg.Services[i-1].Name >= s.Name {
			t.Errorf("services out of order: %s then %s", cfg.Services[i-1].Name, s.Name)
		}
		if err := checkService(s); err != nil {
			t.Errorf("service %q: %v\n%+v", s.Name, err, *s)
		}
	}
}

func checkService(s *Service) error {
	if !serviceName.MatchString(s.Name) {
		return errors.New("invalid name")
	}
	if len(s.Sockets) == 0 {
		return errors.New("no sockets")
	}
	runs := 0
	for _, set := range []bool{len(s.Exec) > 0, s.Internal != "", s.Redirect != ""} {
		if set {
			runs++
		}
	}
	if runs != 1 {
		return fmt.Errorf("%d of exec, internal, redirect set", runs)
	}
	if len(s.Exec) > 0 && !path.IsAbs(s.Exec[0]) {
		return errors.New("relative exec path")
	}
	if s.Mode != Accept && s.Mode != Wait || s.Pass != PassStdio && s.Pass != PassListenFDs ||
		s.Stderr < StderrLog || s.Stderr > StderrDiscard {
		return fmt.Errorf("mode %v pass %v stderr %v", s.Mode, s.Pass, s.Stderr)
	}
	for _, sock := range s.Sockets {
		if s.Mode == Accept && sock.Address.Kind == listener.Datagram {
			return errors.New("datagram socket in accept mode")
		}
		if s.Redirect != "" && sock.Address.Kind != listener.Stream {
			return errors.New("redirect on a non-stream socket")
		}
		if err := sock.Options.Validate(sock.Address); err != nil {
			return fmt.Errorf("socket %s: %v", sock.Address, err)
		}
		if !validFDName(sock.FDName) {
			return fmt.Errorf("fd name %q", sock.FDName)
		}
	}
	if len(s.Exec) > 0 {
		if s.Mode == Wait && s.Pass == PassStdio && len(s.Sockets) != 1 {
			return errors.New("wait mode stdio with several sockets")
		}
		if !slices.Contains(s.Env, "SUPERD_SERVICE="+s.Name) || !slices.ContainsFunc(s.Env, func(v string) bool { return strings.HasPrefix(v, "PATH=") }) {
			return fmt.Errorf("env %q", s.Env)
		}
		if !slices.IsSorted(s.Env) {
			return errors.New("env not sorted")
		}
		if s.Mode == Wait && (len(s.Allow) > 0 || len(s.Deny) > 0 || s.MaxPerSource != 0 || s.MaxDuration != 0) {
			return errors.New("accept-mode limits on a wait-mode exec service")
		}
	} else if s.Credential != nil || s.Env != nil || s.Stderr != StderrLog {
		return errors.New("process settings on a service without a process")
	}
	if s.Internal != "" && s.Mode == Wait && s.Sockets[0].Address.Kind == listener.Stream {
		return errors.New("internal stream service in wait mode")
	}
	if s.Umask > 0o777 || s.Nice < -20 || s.Nice > 19 || s.StopTimeout <= 0 || s.StopSignal <= 0 ||
		s.MaxInstances < 0 || s.MaxPerSource < 0 || s.PerSourcePrefix6 < 1 || s.PerSourcePrefix6 > 128 || s.MaxDuration < 0 {
		return errors.New("a number out of range")
	}
	if !path.IsAbs(s.WorkingDirectory) {
		return errors.New("relative working directory")
	}
	if rl := s.RateLimit; rl != nil && (rl.Max < 1 || rl.Per <= 0 || rl.Pause <= 0) {
		return fmt.Errorf("rate limit %+v", *rl)
	}
	for _, p := range slices.Concat(s.Allow, s.Deny) {
		if !p.IsValid() || p != p.Masked() || p.Addr().Is4In6() {
			return fmt.Errorf("prefix %v", p)
		}
	}
	return nil
}

func BenchmarkLoad(b *testing.B) {
	var src strings.Builder
	src.WriteString("defaults:\n  max_instances: 10\n  socket: {no_delay: true}\nservices:\n")
	for i := range 1000 {
		fmt.Fprintf(&src, "  svc%d:\n    listen: [tcp://127.0.0.1:%d, \"tcp://[::1]:%d\"]\n", i, 10000+i, 10000+i)
		switch i % 3 {
		case 0:
			fmt.Fprintf(&src, "    exec: [/usr/sbin/svc%d, -v]\n    user: nobody\n    env: {N: \"%d\"}\n", i, i)
		case 1:
			src.WriteString("    internal: echo\n    allow: [10.0.0.0/8, \"2001:db8::/32\"]\n")
		default:
			src.WriteString("    redirect: 127.0.0.1:80\n    rate_limit: {max: 10, per: 1s}\n")
		}
	}
	file := filepath.Join(b.TempDir(), "superd.yaml")
	if err := os.WriteFile(file, []byte(src.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(src.Len()))
	b.ReportAllocs()
	for b.Loop() {
		cfg, err := Load(file, testOptions())
		if err != nil {
			b.Fatal(err)
		}
		if len(cfg.Services) != 1000 {
			b.Fatalf("%d services", len(cfg.Services))
		}
	}
}
