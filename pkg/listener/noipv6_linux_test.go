package listener

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/superd/superd/internal/noipv6"
)

// withoutIPv6 is set in the child process TestFamilylessWildcardIsIPv4OnAKernelWithoutIPv6
// runs itself in, where socket(AF_INET6) fails as on a kernel without IPv6.
const withoutIPv6 = "SUPERD_TEST_WITHOUT_IPV6"

func TestFamilylessWildcardIsIPv4OnAKernelWithoutIPv6(t *testing.T) {
	if os.Getenv(withoutIPv6) == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), withoutIPv6+"=1")
		out, err := cmd.CombinedOutput()
		switch {
		case strings.Contains(string(out), "--- SKIP"):
			t.Skipf("in the child:\n%s", out)
		case err != nil || !strings.Contains(string(out), "--- PASS"):
			t.Fatalf("child: %v\n%s", err, out)
		}
		return
	}
	if err := noipv6.Deny(); err != nil {
		t.Skipf("cannot install the seccomp filter: %v", err)
	}
	if _, err := unix.Socket(unix.AF_INET6, unix.SOCK_STREAM, 0); !errors.Is(err, unix.EAFNOSUPPORT) {
		t.Fatalf("socket(AF_INET6) after the filter: %v, want EAFNOSUPPORT", err)
	}
	for _, listen := range []string{"tcp://:1", "udp://:1", "tcp://[::]:1"} {
		a := mustParse(t, listen)
		a.Port = 0 // the kernel picks a free one
		fd := openT(t, a, unset())
		got := localT(t, fd)
		if got.Family != IPv4 || !got.IP.IsUnspecified() || got.Kind != a.Kind {
			t.Errorf("%s is bound to %s, want the IPv4 wildcard", listen, got)
		}
		// A socket handed over (systemd, live upgrade) is matched by Key.
		a.Port = got.Port
		if Key(got, unset()) != Key(a, unset()) {
			t.Errorf("%s: Key %q of the bound socket, %q of the configured address", listen, Key(got, unset()), Key(a, unset()))
		}
		exchange(t, fd, "127.0.0.1")
	}
	// ipv6_only asks for IPv6 alone: nothing to fall back to.
	a := mustParse(t, "tcp://:1")
	a.Port = 0
	_, err := Open(a, with(func(o *Options) { o.IPv6Only = true }))
	if !errors.Is(err, unix.EAFNOSUPPORT) {
		t.Errorf("ipv6_only without IPv6: %v, want EAFNOSUPPORT", err)
	}
}
