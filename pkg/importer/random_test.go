package importer

import (
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"testing"

	"github.com/superd/superd/pkg/config"
)

// xinetdVocabulary holds values for each attribute, valid and not, that
// random configurations combine: the fuzzers mutate bytes, these combine
// meanings.
var xinetdVocabulary = map[string][]string{
	"type":         {"INTERNAL", "UNLISTED", "INTERNAL UNLISTED", "RPC", "TCPMUX", "SPECIAL", "", "BOGUS"},
	"id":           {"echo-stream", "x", "X Y", "a.b", "echo-dgram"},
	"socket_type":  {"stream", "dgram", "raw", "seqpacket", "x"},
	"protocol":     {"tcp", "udp", "sctp"},
	"wait":         {"yes", "no", "maybe"},
	"port":         {"7", "0", "65535", "70000", "x", "9", "13"},
	"bind":         {"127.0.0.1", "::", "::1", "fe80::1%eth0", "fe80::1", "host.example", "::ffff:1.2.3.4", "0.0.0.0", "1.2.3.4%x"},
	"interface":    {"eth0", "127.0.0.2", "a/b"},
	"flags":        {"IPv4", "IPv6", "IPv4 IPv6", "NODELAY KEEPALIVE", "NAMEINARGS", "SENSOR", "DISABLE", "X"},
	"v6only":       {"yes", "no", "x"},
	"user":         {"root", "nobody", "0", "4294967295", "99999999999", "a b"},
	"group":        {"tty", "5", "4294967295"},
	"groups":       {"yes", "no", "x"},
	"server":       {"/bin/cat", "cat", "/usr/sbin/tcpd"},
	"server_args":  {"a b c", "", "/x y", "yes no ~ null"},
	"redirect":     {"1.2.3.4 80", "::1 http", "host 80", "h x", "1.2.3.4 0", "1.2.3.4 99999", "bad!host 80"},
	"env":          {"A=1", "B", "1A=2", "LISTEN_FDS=3", "PATH=/x", "A=1 A=2"},
	"passenv":      {"HOME", "1X", "SUPERD_SERVICE", ""},
	"instances":    {"0", "1", "UNLIMITED", "-1", "99999999999", "x"},
	"per_source":   {"0", "2", "UNLIMITED", "x"},
	"cps":          {"10 5", "0 0", "5 0", "x y", "99999999999 1", "1 99999999999"},
	"only_from":    {"", "10.0.0.0", "::", "localhost", "host", ".dom", "1.2.{3,4}", "1.{2", "10.1", "10.", "fe80::1%x", "0.0.0.0/0", "::ffff:0.0.0.0/96"},
	"no_access":    {"", "10.0.0.1", "::/0", "h"},
	"access_times": {"1:00-2:00", "0:00-23:59", "23:00-1:00", "x", "", "0:00-0:01 0:00-23:59"},
	"umask":        {"022", "0777", "1000", "x", "0"},
	"nice":         {"-30", "30", "0", "x", "-99999999999999999999"},
	"rlimit_as":    {"8M", "0", "UNLIMITED", "x", "99999999999999999999", "9223372036854775807K"},
	"rlimit_files": {"1K", "UNLIMITED", "0", "2097152"},
	"rlimit_cpu":   {"10", "1K"},
	"disable":      {"yes", "no", "x"},
}

// TestRandomXinetdConfigsPassCheck converts random combinations of
// attributes and holds every output to superd's validation.
func TestRandomXinetdConfigsPassCheck(t *testing.T) {
	keys := make([]string, 0, len(xinetdVocabulary))
	for k := range xinetdVocabulary {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	r := rand.New(rand.NewSource(1))
	pick := func(xs []string) string { return xs[r.Intn(len(xs))] }
	services, err := DirFS(corpus).ReadFile("/services")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2000; i++ {
		var b strings.Builder
		if r.Intn(3) == 0 {
			b.WriteString("defaults\n{\n")
			for j := 0; j < r.Intn(4); j++ {
				k := pick([]string{"only_from", "no_access", "instances", "per_source", "cps", "umask", "groups", "bind", "v6only", "passenv"})
				fmt.Fprintf(&b, "%s = %s\n", k, pick(xinetdVocabulary[k]))
			}
			b.WriteString("}\n")
		}
		for s := 0; s < 1+r.Intn(4); s++ {
			fmt.Fprintf(&b, "service %s\n{\n", pick([]string{"echo", "discard", "daytime", "ftp", "x", "chargen", "time", "tftp"}))
			for j := 0; j < r.Intn(12); j++ {
				k := keys[r.Intn(len(keys))]
				fmt.Fprintf(&b, "%s %s %s\n", k, pick([]string{"=", "=", "=", "+=", "-="}), pick(xinetdVocabulary[k]))
			}
			b.WriteString("}\n")
		}
		src := b.String()
		res, err := Xinetd("/x.conf", memFS{"/x.conf": []byte(src), "/etc/services": services})
		if err != nil {
			t.Fatalf("%v\n%s", err, src)
		}
		if _, err := config.Parse("r.yaml", res.YAML, config.Options{AsRoot: true, Accounts: anyAccounts{}}); err != nil {
			t.Fatalf("%v\ninput:\n%s\noutput:\n%s", err, src, res.YAML)
		}
	}
}

// TestRandomInetdConfigsPassCheck does the same for inetd.conf lines.
func TestRandomInetdConfigsPassCheck(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	pick := func(xs ...string) string { return xs[r.Intn(len(xs))] }
	services, err := DirFS(corpus).ReadFile("/services")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3000; i++ {
		var b strings.Builder
		for j := 0; j < 1+r.Intn(6); j++ {
			if r.Intn(8) == 0 {
				b.WriteString(pick("127.0.0.1:", "*:", "::1:", "fe80::1:", "fe80::1%lo:", "h:") + "\n")
				continue
			}
			fmt.Fprintf(&b, "%s%s%s %s %s %s %s %s %s\n",
				pick("", "", "", "#<off># "),
				pick("", "", "", "127.0.0.1:", "::1:", "[::1]:", "*:", "1.2.3.4,::1:", "0.0.0.0:", "::ffff:1.2.3.4:"),
				pick("echo", "discard", "ftp", "8080", "0", "70000", "/run/a.sock", "/run/b", "tftp", "talk", "x/1", "tcpmux/+a"),
				pick("stream", "dgram", "seqpacket", "raw"),
				pick("tcp", "udp", "tcp4", "tcp6", "udp6", "tcp46", "unix", "rpc/tcp", "tcp,sndbuf=1k", "udp,rcvbuf=2m,sndbuf=0", "tcp6only"),
				pick("wait", "nowait", "nowait.5", "wait.0", "nowait.99999999999", "wait.x"),
				pick("root", "nobody", "root.tty", "nobody:nogroup", "0", "1001", "4294967295", "a.b.c"),
				pick("internal", "/bin/cat", "cat", "/usr/sbin/tcpd"),
				pick("", "cat", "/usr/sbin/in.x -l", "a b c"))
		}
		src := b.String()
		res, err := Inetd("/i.conf", memFS{"/i.conf": []byte(src), "/etc/services": services})
		if err != nil {
			continue // a line with fewer than six fields, say
		}
		if _, err := config.Parse("r.yaml", res.YAML, config.Options{AsRoot: true, Accounts: anyAccounts{}}); err != nil {
			t.Fatalf("%v\ninput:\n%s\noutput:\n%s", err, src, res.YAML)
		}
	}
}
