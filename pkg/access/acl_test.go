package access

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
)

func prefixes(t testing.TB, ss ...string) []netip.Prefix {
	t.Helper()
	var out []netip.Prefix
	for _, s := range ss {
		if !strings.Contains(s, "/") {
			a := netip.MustParseAddr(s)
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func TestACLAllowed(t *testing.T) {
	t.Parallel()
	overlapping := struct{ allow, deny []string }{
		allow: []string{"10.0.0.0/8", "10.1.2.3/32"},
		deny:  []string{"10.1.0.0/16"},
	}
	tests := []struct {
		name        string
		allow, deny []string
		src         string
		want        bool
	}{
		{"with no lists every IPv4 source is allowed", nil, nil, "192.0.2.1", true},
		{"with no lists every IPv6 source is allowed", nil, nil, "2001:db8::1", true},
		{"an IPv4 source inside the allow list is allowed", []string{"192.0.2.0/24"}, nil, "192.0.2.77", true},
		{"an IPv4 source outside the allow list is refused", []string{"192.0.2.0/24"}, nil, "192.0.3.1", false},
		{"an IPv6 source inside the allow list is allowed", []string{"2001:db8::/32"}, nil, "2001:db8:1::5", true},
		{"an IPv6 source outside the allow list is refused", []string{"2001:db8::/32"}, nil, "2001:db9::5", false},
		{"an IPv6 source is refused by an IPv4-only allow list", []string{"0.0.0.0/0"}, nil, "::1", false},
		{"an IPv4 source is refused by an IPv6-only allow list", []string{"::/0"}, nil, "127.0.0.1", false},
		{"an IPv4-mapped source matches an IPv4 allow entry", []string{"192.0.2.0/24"}, nil, "::ffff:192.0.2.9", true},
		{"an IPv4-mapped source matches an IPv4 deny entry", nil, []string{"192.0.2.0/24"}, "::ffff:192.0.2.9", false},
		{"an IPv4-mapped source does not match ::/0", nil, []string{"::/0"}, "::ffff:192.0.2.9", true},
		{"an IPv4-mapped allow entry matches an IPv4 source", []string{"::ffff:192.0.2.0/120"}, nil, "192.0.2.9", true},
		{"an IPv4-mapped allow entry matches an IPv4-mapped source", []string{"::ffff:192.0.2.0/120"}, nil, "::ffff:192.0.2.9", true},
		{"a source zone is ignored", nil, []string{"fe80::/10"}, "fe80::1%eth0", false},
		{"a source zone is ignored by the allow list", []string{"fe80::1/128"}, nil, "fe80::1%eth0", true},
		{"in overlapping prefixes the /8 allows the rest of 10/8", overlapping.allow, overlapping.deny, "10.2.0.1", true},
		{"in overlapping prefixes the /16 deny beats the /8 allow", overlapping.allow, overlapping.deny, "10.1.9.9", false},
		{"in overlapping prefixes the /32 allow beats the /16 deny", overlapping.allow, overlapping.deny, "10.1.2.3", true},
		{"in overlapping prefixes a neighbour of the /32 is denied", overlapping.allow, overlapping.deny, "10.1.2.4", false},
		{"in overlapping prefixes a source outside them all is refused", overlapping.allow, overlapping.deny, "11.0.0.1", false},
		{"the same prefix in both lists is denied", []string{"10.0.0.0/8"}, []string{"10.0.0.0/8"}, "10.3.3.3", false},
		{"the same address in both lists is denied", []string{"::1"}, []string{"::1"}, "::1", false},
		{"a tie between unmasked entries is denied", []string{"10.9.9.9/8"}, []string{"10.0.0.0/8"}, "10.3.3.3", false},
		{"a tie does not affect a more specific allow", []string{"10.0.0.0/8", "10.3.0.0/16"}, []string{"10.0.0.0/8"}, "10.3.3.3", true},
		{"allow-only lets its own source in", []string{"127.0.0.2"}, nil, "127.0.0.2", true},
		{"allow-only keeps its neighbour out", []string{"127.0.0.2"}, nil, "127.0.0.3", false},
		{"deny-only keeps its own source out", nil, []string{"127.0.0.2"}, "127.0.0.2", false},
		{"deny-only lets its neighbour in", nil, []string{"127.0.0.2"}, "127.0.0.3", true},
		{"deny 0.0.0.0/0 refuses every IPv4 source", nil, []string{"0.0.0.0/0"}, "203.0.113.1", false},
		{"deny 0.0.0.0/0 leaves IPv6 sources alone", nil, []string{"0.0.0.0/0"}, "2001:db8::1", true},
		{"deny ::/0 refuses every IPv6 source", nil, []string{"::/0"}, "2001:db8::1", false},
		{"allow 0.0.0.0/0 lets every IPv4 source in", []string{"0.0.0.0/0"}, nil, "203.0.113.1", true},
		{"a /0 allow loses to a longer deny", []string{"0.0.0.0/0"}, []string{"203.0.113.0/24"}, "203.0.113.1", false},
		{"a /0 deny loses to a longer allow", []string{"127.0.0.0/8"}, []string{"0.0.0.0/0"}, "127.0.0.1", true},
		{"a /0 in both lists is denied", []string{"::/0"}, []string{"::/0"}, "::1", false},
		{"an invalid source is allowed with no allow list", nil, []string{"0.0.0.0/0", "::/0"}, "", true},
		{"an invalid source is refused by an allow list", []string{"0.0.0.0/0", "::/0"}, nil, "", false},
		{"IPv6 prefixes split deep in the low half", []string{"2001:db8::/32", "2001:db8::1:0/112"}, []string{"2001:db8::/96"}, "2001:db8::1:5", true},
		{"IPv6 prefixes split deep in the low half, the /96 deny", []string{"2001:db8::/32", "2001:db8::1:0/112"}, []string{"2001:db8::/96"}, "2001:db8::2:5", false},
		{"IPv6 /128 entries next to each other", []string{"::1", "::3"}, []string{"::2"}, "::2", false},
		{"IPv6 /128 entries next to each other allow theirs", []string{"::1", "::3"}, []string{"::2"}, "::3", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			acl := NewACL(prefixes(t, tt.allow...), prefixes(t, tt.deny...))
			var src netip.Addr
			if tt.src != "" {
				src = netip.MustParseAddr(tt.src)
			}
			if got := acl.Allowed(src); got != tt.want {
				t.Errorf("allow %v deny %v: Allowed(%v) = %v, want %v", tt.allow, tt.deny, tt.src, got, tt.want)
			}
			if ref := naiveAllowed(prefixes(t, tt.allow...), prefixes(t, tt.deny...), src); ref != tt.want {
				t.Errorf("the reference disagrees with the table: %v", ref)
			}
		})
	}
}

func TestACLNilAndInvalidEntries(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		acl  *ACL
		want bool
	}{
		{"a nil ACL allows everything", nil, true},
		{"an empty ACL allows everything", NewACL(nil, nil), true},
		{"an invalid deny entry matches nothing", NewACL(nil, []netip.Prefix{{}}), true},
		{"an allow list of only invalid entries refuses everything", NewACL([]netip.Prefix{{}}, nil), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, s := range []string{"127.0.0.1", "::1"} {
				if got := tt.acl.Allowed(netip.MustParseAddr(s)); got != tt.want {
					t.Errorf("Allowed(%s) = %v, want %v", s, got, tt.want)
				}
			}
		})
	}
}

// naiveAllowed is the reference: it checks every entry and keeps the
// longest match, deny winning a tie.
func naiveAllowed(allowed, denied []netip.Prefix, ip netip.Addr) bool {
	ip = ip.Unmap().WithZone("")
	best, bestDeny := -1, false
	check := func(list []netip.Prefix, isDeny bool) {
		for _, p := range list {
			if !p.IsValid() {
				continue
			}
			a, n := p.Addr().WithZone(""), p.Bits()
			if a.Is4In6() && n >= 96 {
				a, n = a.Unmap(), n-96
			}
			p = netip.PrefixFrom(a, n)
			if !p.Contains(ip) {
				continue
			}
			if n > best || n == best && isDeny {
				best, bestDeny = n, isDeny
			}
		}
	}
	check(allowed, false)
	check(denied, true)
	if best >= 0 {
		return !bestDeny
	}
	return len(allowed) == 0
}

// fuzzAddr makes an address from fuzz bytes, leaning towards a few shared
// prefixes so that entries and sources overlap often.
func fuzzAddr(kind byte, b []byte) netip.Addr {
	var a16 [16]byte
	copy(a16[:], b)
	switch kind % 4 {
	case 0:
		return netip.AddrFrom4([4]byte{10, a16[0] % 4, a16[1] % 4, a16[2] % 4})
	case 1:
		return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: a16[0] % 4, 7: a16[1] % 2})
	case 2:
		return netip.AddrFrom16(netip.AddrFrom4([4]byte{10, a16[0] % 4, a16[1], a16[2]}).As16()) // mapped
	}
	if a16[15]%2 == 0 {
		return netip.AddrFrom4([4]byte(a16[:4]))
	}
	return netip.AddrFrom16(a16)
}

func FuzzACL(f *testing.F) {
	f.Add([]byte{0, 8, 1, 16, 2, 32}, []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19})
	f.Add([]byte{1, 0, 3, 128, 2, 96, 5, 120}, []byte("\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11"))
	f.Add([]byte{}, []byte{})
	f.Fuzz(func(t *testing.T, spec, data []byte) {
		// Each pair of spec bytes is one entry: kind and list, then length.
		var allowed, denied []netip.Prefix
		next := func() []byte {
			n := min(len(data), 16)
			b := data[:n]
			data = data[n:]
			return b
		}
		for i := 0; i+1 < len(spec) && i < 64; i += 2 {
			a := fuzzAddr(spec[i]>>1, next())
			n := int(spec[i+1]) % (a.BitLen() + 2) // sometimes too long: invalid
			p := netip.PrefixFrom(a, n)
			if spec[i]&1 == 0 {
				allowed = append(allowed, p)
			} else {
				denied = append(denied, p)
			}
		}
		acl := NewACL(allowed, denied)
		for i := 0; i < 8; i++ {
			b := next()
			kind := byte(i)
			if len(b) > 0 {
				kind = b[len(b)-1]
			}
			ip := fuzzAddr(kind, b)
			if i == 7 {
				ip = netip.Addr{}
			}
			if got, want := acl.Allowed(ip), naiveAllowed(allowed, denied, ip); got != want {
				t.Fatalf("allow %v deny %v: Allowed(%v) = %v, the reference says %v", allowed, denied, ip, got, want)
			}
		}
	})
}

// TestACLMatchesReferenceOnRandomLists covers what the fuzz target does, on
// every go test run.
func TestACLMatchesReferenceOnRandomLists(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 300 {
		var allowed, denied []netip.Prefix
		for range rng.IntN(40) {
			b := make([]byte, 16)
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
			a := fuzzAddr(byte(rng.IntN(4)), b)
			p := netip.PrefixFrom(a, rng.IntN(a.BitLen()+1))
			if rng.IntN(2) == 0 {
				allowed = append(allowed, p)
			} else {
				denied = append(denied, p)
			}
		}
		acl := NewACL(allowed, denied)
		for range 200 {
			b := make([]byte, 16)
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
			ip := fuzzAddr(byte(rng.IntN(4)), b)
			if got, want := acl.Allowed(ip), naiveAllowed(allowed, denied, ip); got != want {
				t.Fatalf("round %d: allow %v deny %v: Allowed(%v) = %v, the reference says %v", round, allowed, denied, ip, got, want)
			}
		}
	}
}

// benchACL builds n random prefixes, half IPv4 and half IPv6, a fifth of them
// deny entries, and sources half of which fall inside some entry.
func benchACL(n int) (*ACL, []netip.Addr) {
	rng := rand.New(rand.NewPCG(7, uint64(n)))
	var allowed, denied []netip.Prefix
	var srcs []netip.Addr
	for i := range n {
		var a netip.Addr
		var bits int
		if i%2 == 0 {
			a = netip.AddrFrom4([4]byte{byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32())})
			bits = 8 + rng.IntN(25)
		} else {
			var b [16]byte
			b[0], b[1] = 0x20, 0x01
			for j := 2; j < 16; j++ {
				b[j] = byte(rng.Uint32())
			}
			a = netip.AddrFrom16(b)
			bits = 16 + rng.IntN(113)
		}
		p := netip.PrefixFrom(a, bits).Masked()
		if i%5 == 0 {
			denied = append(denied, p)
		} else {
			allowed = append(allowed, p)
		}
		if len(srcs) < 512 {
			srcs = append(srcs, a)
		}
	}
	for i := 0; len(srcs) < 1024; i++ {
		if i%2 == 0 {
			srcs = append(srcs, netip.AddrFrom4([4]byte{byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32())}))
		} else {
			srcs = append(srcs, netip.AddrFrom16([16]byte{0x20, 0x01, 2: byte(rng.Uint32()), 15: byte(rng.Uint32())}))
		}
	}
	return NewACL(allowed, denied), srcs
}

func BenchmarkACLAllowed(b *testing.B) {
	for _, n := range []int{5, 5000} {
		b.Run(fmt.Sprintf("prefixes=%d", n), func(b *testing.B) {
			acl, srcs := benchACL(n)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				acl.Allowed(srcs[i&1023])
				i++
			}
		})
	}
}

func TestACLAllowedDoesNotAllocate(t *testing.T) {
	acl, srcs := benchACL(5000)
	mapped := netip.MustParseAddr("::ffff:10.1.2.3")
	zoned := netip.MustParseAddr("fe80::1%eth0")
	if n := testing.AllocsPerRun(100, func() {
		for _, ip := range srcs[:64] {
			acl.Allowed(ip)
		}
		acl.Allowed(mapped)
		acl.Allowed(zoned)
	}); n != 0 {
		t.Errorf("Allowed allocates %v times per run, want 0", n)
	}
}

func TestACLNestedPrefixesOfEveryLength(t *testing.T) {
	t.Parallel()
	// 2001:db8::/n for every n, allow on even n and deny on odd: the
	// longest one containing a source decides, however deep the chain.
	base := netip.MustParseAddr("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff")
	var allowed, denied []netip.Prefix
	for n := 0; n <= 128; n++ {
		p := netip.PrefixFrom(base, n).Masked()
		if n%2 == 0 {
			allowed = append(allowed, p)
		} else {
			denied = append(denied, p)
		}
	}
	acl := NewACL(allowed, denied)
	for n := 0; n <= 128; n++ {
		// Flip bit n of base: the source is in every prefix shorter than
		// n+1 and in none longer, so /n decides.
		b := base.As16()
		if n < 128 {
			b[n/8] ^= 0x80 >> (n % 8)
		}
		src := netip.AddrFrom16(b)
		if got, want := acl.Allowed(src), n%2 == 0; got != want {
			t.Errorf("Allowed(%v), decided by the /%d: %v, want %v", src, n, got, want)
		}
	}
}
