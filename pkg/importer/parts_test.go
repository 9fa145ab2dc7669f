package importer

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/superd/superd/pkg/config"
)

func TestXinetdAddressForms(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []string
		form     addrForm
	}{
		{"a full address is itself", "192.0.2.1", []string{"192.0.2.1/32"}, formPrefixes},
		{"trailing zero bytes are wildcards", "128.138.12.0", []string{"128.138.12.0/24"}, formPrefixes},
		{"two zero bytes make a /16", "10.1.0.0", []string{"10.1.0.0/16"}, formPrefixes},
		{"0.0.0.0 is every IPv4 address", "0.0.0.0", []string{"0.0.0.0/0"}, formPrefixes},
		{"an IPv6 address is itself", "2001:db8::1", []string{"2001:db8::1/128"}, formPrefixes},
		{":: is every IPv6 address", "::", []string{"::/0"}, formPrefixes},
		{"a CIDR prefix is masked", "10.1.2.3/8", []string{"10.0.0.0/8"}, formPrefixes},
		{"an IPv6 prefix", "2001:db8::/32", []string{"2001:db8::/32"}, formPrefixes},
		{"an IPv4-mapped prefix becomes IPv4", "::ffff:10.0.0.0/104", []string{"10.0.0.0/8"}, formPrefixes},
		{"factorized last byte", "192.168.1.{1,2}", []string{"192.168.1.1/32", "192.168.1.2/32"}, formPrefixes},
		{"factorized third byte", "128.138.{200,201}", []string{"128.138.200.0/24", "128.138.201.0/24"}, formPrefixes},
		{"tcpd's trailing dot", "192.168.", []string{"192.168.0.0/16"}, formTCPD},
		{"localhost", "localhost", []string{"127.0.0.1/32", "::1/128"}, formLocalhost},
		{"a host name", "www.example.com", nil, formHost},
		{"a domain", ".example.com", nil, formDomain},
		{"a zone", "fe80::1%eth0", nil, formZone},
		{"a bad mask", "10.0.0.0/33", nil, formInvalid},
		{"a bad factorized address", "10.{1,2}.3", nil, formFactorizedBad},
		{"garbage", "%%%", nil, formInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, form := parseXinetdAddr(tc.in)
			var s []string
			for _, p := range got {
				s = append(s, p.String())
			}
			if !slices.Equal(s, tc.want) || form != tc.form {
				t.Errorf("parseXinetdAddr(%q) = %v, %v; want %v, %v", tc.in, s, form, tc.want, tc.form)
			}
		})
	}
}

func TestXinetdWindows(t *testing.T) {
	for _, tc := range []struct {
		in, want  string
		whole, ok bool
	}{
		{"8:00-17:00", "08:00-17:01", false, true},
		{"12:00-23:59", "12:00-00:00", false, true},
		{"0:00-23:59", "", true, true},
		{"17:00-8:00", "", false, false}, // xinetd refuses windows that wrap
		{"24:00-25:00", "", false, false},
		{"8-9", "", false, false},
	} {
		win, whole, ok := xinetdWindow(tc.in)
		if win != tc.want || whole != tc.whole || ok != tc.ok {
			t.Errorf("xinetdWindow(%q) = %q, %v, %v; want %q, %v, %v", tc.in, win, whole, ok, tc.want, tc.whole, tc.ok)
		}
	}
}

func TestXinetdSyntaxErrorsNameTheLine(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		line      int
		msg       string
	}{
		{"a stray word", "# c\nhello\n", 2, "expected service NAME"},
		{"a service without a brace", "service a\nport = 1\n", 2, "'{'"},
		{"an entry never closed", "service a\n{\nport = 1\n", 1, "not closed"},
		{"an attribute without operator", "service a\n{\nport 1\n}\n", 3, "ATTRIBUTE = VALUE"},
		{"a service without name", "service\n", 1, "needs a name"},
		{"a NUL byte", "service a\x00\n", 1, "NUL"},
		{"not UTF-8", "service \xff\n", 1, "UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Xinetd("/x.conf", memFS{"/x.conf": []byte(tc.src)})
			var se *SyntaxError
			if !errors.As(err, &se) || se.File != "/x.conf" || se.Line != tc.line || !strings.Contains(se.Msg, tc.msg) {
				t.Errorf("error %v; want /x.conf:%d: ...%s...", err, tc.line, tc.msg)
			}
		})
	}
}

func TestInetdSyntaxErrorsNameTheLine(t *testing.T) {
	for _, src := range []string{"echo stream tcp\n", "\n\n:echo stream tcp nowait root internal\n", ":\n"} {
		_, err := Inetd("/i.conf", memFS{"/i.conf": []byte(src)})
		var se *SyntaxError
		if !errors.As(err, &se) || se.Line < 1 {
			t.Errorf("%q: error %v, want a SyntaxError", src, err)
		}
	}
}

func TestXinetdDefaultsModifyServiceLists(t *testing.T) {
	// Defaults' lists reach the services read after them, where += and
	// -= change them; a service read before them keeps none.
	src := `service early
{
	type = UNLISTED
	port = 1001
	socket_type = stream
	wait = no
	user = nobody
	server = /bin/cat
}
defaults
{
	only_from = 10.0.0.0
	only_from = 192.0.2.1
	enabled = late
}
service late
{
	type = UNLISTED
	port = 1002
	socket_type = stream
	wait = no
	user = nobody
	server = /bin/cat
	only_from -= 10.0.0.0
	only_from += 198.51.100.0/24
}
`
	res, err := Xinetd("/x.conf", memFS{"/x.conf": []byte(src)})
	if err != nil {
		t.Fatal(err)
	}
	out := string(res.YAML)
	for _, want := range []string{
		"  early:\n    disabled: true # not in defaults' enabled\n",
		"  late:\n    listen: tcp://:1002\n",
		"allow: [192.0.2.1, 198.51.100.0/24]",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(out, "allow:") != 1 {
		t.Errorf("early got defaults read after it:\n%s", out)
	}
}

func TestXinetdIncludeLoopIsAWarning(t *testing.T) {
	fsys := memFS{
		"/etc/a.conf": []byte("include b.conf\n"),
		"/etc/b.conf": []byte("include /etc/a.conf\n"),
	}
	res, err := Xinetd("/etc/a.conf", fsys)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Warnings) != 1 || res.Warnings[0].File != "/etc/b.conf" || !strings.Contains(res.Warnings[0].Msg, "includes itself") {
		t.Errorf("warnings %v", res.Warnings)
	}
}

func TestNames(t *testing.T) {
	for in, want := range map[string]string{
		"echo-stream": "echo-stream", "FTP": "ftp", "my service": "my-service",
		"_x": "x", "...": "service", "tcpmux/+scp": "tcpmux--scp",
	} {
		if got := sanitizeName(in); got != want || !validName.MatchString(got) {
			t.Errorf("sanitizeName(%q) = %q, want %q", in, got, want)
		}
	}
	n := namer{}
	got := []string{n.name("a", "tcp"), n.name("a", "tcp"), n.name("a", "tcp"), n.name("a", "")}
	if want := []string{"a", "a-tcp", "a-tcp-2", "a-2"}; !slices.Equal(got, want) {
		t.Errorf("names %v, want %v", got, want)
	}
}

func TestWildcardV4(t *testing.T) {
	if p := wildcardV4(netip.MustParseAddr("10.0.0.0")); p.String() != "10.0.0.0/8" {
		t.Errorf("got %s", p)
	}
}

// TestEmitQuotesEveryString holds yaml.v3's quoting to what superd reads
// back: each string stays a string, whatever YAML would make of it plain.
func TestEmitQuotesEveryString(t *testing.T) {
	args := []string{"/bin/x", "yes", "no", "on", "off", "true", "null", "~", "0x10", "1e3", ".inf", "-", "- x",
		": x", "#x", "[x", "{x", "'", `"`, "*a", "&a", "!x", "%x", "@x", "`x", "a: b", "a #b", "", " x", "x ", "\\", "é", "\t"}
	s := &service{name: "x", file: "/f", line: 1, listen: []string{"tcp://:1"}, exec: args, argv0: "yes", user: "0",
		env: map[string]string{"A": "null", "B": "0777"}, passEnv: []string{"HOME"}, umask: "007"}
	out := emit([]string{"header: with colon #"}, &defaultsSection{}, []*service{s})
	cfg, err := config.Parse("q.yaml", out, config.Options{AsRoot: true, Accounts: anyAccounts{}})
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	got := cfg.Services[0]
	if !slices.Equal(got.Exec, args) || got.Argv0 != "yes" || !slices.Contains(got.Env, "A=null") || !slices.Contains(got.Env, "B=0777") || got.Umask != 0o007 {
		t.Errorf("read back %q, argv0 %q, env %q, umask %o from:\n%s", got.Exec, got.Argv0, got.Env, got.Umask, out)
	}
}

func TestXinetdDefaultsOfZeroDisableTheServicesTheyReach(t *testing.T) {
	src := "defaults\n{\n instances = UNLIMITED\n per_source = 0\n}\n" +
		"service echo\n{\n type = INTERNAL\n socket_type = stream\n wait = no\n}\n" +
		"service daytime\n{\n type = INTERNAL\n socket_type = stream\n wait = no\n per_source = 3\n}\n"
	res, err := Xinetd("/x.conf", memFS{"/x.conf": []byte(src), "/etc/services": []byte("echo 7/tcp\ndaytime 13/tcp\n")})
	if err != nil {
		t.Fatal(err)
	}
	out := string(res.YAML)
	for _, want := range []string{
		"  # from /x.conf:3 (instances = UNLIMITED)\n  max_instances: 0\n",
		"  daytime:\n    listen: tcp://:13\n    internal: daytime\n    max_per_source: 3\n",
		"  echo:\n    disabled: true # per_source = 0 in defaults\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// xinetd binds a service on 0.0.0.0 and another on 127.0.0.1 of the same
// port in turn, and the second bind fails: the later is imported disabled,
// and the output passes superd check (which refuses the pair).
func TestXinetdWildcardAndAddressOnOnePort(t *testing.T) {
	src := `service all
{
	type = UNLISTED
	port = 1003
	socket_type = stream
	wait = no
	user = nobody
	server = /bin/cat
	flags = IPv4
}
service local
{
	type = UNLISTED
	port = 1003
	socket_type = stream
	wait = no
	user = nobody
	server = /bin/cat
	bind = 127.0.0.1
}
`
	res, err := Xinetd("/x.conf", memFS{"/x.conf": []byte(src)})
	if err != nil {
		t.Fatal(err)
	}
	out := string(res.YAML)
	if !strings.Contains(out, "  all:\n    listen: tcp4://:1003\n") || !strings.Contains(out, "  local:\n    disabled: true") {
		t.Errorf("want all enabled and local disabled:\n%s", out)
	}
	warned := false
	for _, w := range res.Warnings {
		warned = warned || strings.Contains(w.String(), "local binds tcp4://127.0.0.1:1003, which all's tcp4://0.0.0.0:1003 (/x.conf:1) overlaps on the same port, and superd cannot bind both")
	}
	if !warned {
		t.Errorf("no warning names the overlap: %q", res.Warnings)
	}
}
