package access

import (
	"net/netip"
	"testing"
)

func TestSourceCounterKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		prefix6 int
		a, b    string
		same    bool
		key     string
	}{
		{"two IPv4 addresses are apart", 64, "192.0.2.1", "192.0.2.2", false, "192.0.2.1/32"},
		{"an IPv4-mapped address counts with its IPv4 one", 64, "::ffff:192.0.2.1", "192.0.2.1", true, "192.0.2.1/32"},
		{"IPv6 addresses in one /64 count together", 64, "2001:db8:0:1::1", "2001:db8:0:1:ffff::2", true, "2001:db8:0:1::/64"},
		{"IPv6 addresses in two /64s are apart", 64, "2001:db8:0:1::1", "2001:db8:0:2::1", false, "2001:db8:0:1::/64"},
		{"with prefix6 128 every IPv6 address is apart", 128, "2001:db8::1", "2001:db8::2", false, "2001:db8::1/128"},
		{"with prefix6 128 an address counts with itself", 128, "2001:db8::1", "2001:db8::1", true, "2001:db8::1/128"},
		{"with prefix6 48 two /64s of one /48 count together", 48, "2001:db8:7:1::1", "2001:db8:7:2::1", true, "2001:db8:7::/48"},
		{"with prefix6 48 two /48s are apart", 48, "2001:db8:7::1", "2001:db8:8::1", false, "2001:db8:7::/48"},
		{"prefix6 does not group IPv4", 48, "192.0.2.1", "192.0.2.2", false, "192.0.2.1/32"},
		{"a zone is ignored", 64, "fe80::1%eth0", "fe80::2%eth1", true, "fe80::/64"},
		{"a prefix6 out of range means /64", 0, "2001:db8::1", "2001:db8::ffff:1", true, "2001:db8::/64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := NewSourceCounter(tt.prefix6)
			ka, kb := c.Key(netip.MustParseAddr(tt.a)), c.Key(netip.MustParseAddr(tt.b))
			if (ka == kb) != tt.same {
				t.Errorf("Key(%s) = %v, Key(%s) = %v: same = %v, want %v", tt.a, ka, tt.b, kb, ka == kb, tt.same)
			}
			if ka.String() != tt.key {
				t.Errorf("Key(%s) = %v, want %s", tt.a, ka, tt.key)
			}
		})
	}
}

func TestSourceCounterCounts(t *testing.T) {
	t.Parallel()
	c := NewSourceCounter(64)
	a := c.Key(netip.MustParseAddr("2001:db8::1"))
	b := c.Key(netip.MustParseAddr("2001:db8::2")) // the same /64
	other := c.Key(netip.MustParseAddr("192.0.2.1"))
	steps := []struct {
		name      string
		do        func() int
		count     int // of a after the step
		keys      int
		returnsTo int // what do returns, -1 for nothing
	}{
		{"an empty counter counts nothing", func() int { return -1 }, 0, 0, -1},
		{"the first child counts one", func() int { return c.Inc(a) }, 1, 1, 1},
		{"a child from the same /64 counts two", func() int { return c.Inc(b) }, 2, 1, 2},
		{"a child from another source is a second key", func() int { return c.Inc(other) }, 2, 2, 1},
		{"one child exiting counts down", func() int { c.Dec(a); return -1 }, 1, 2, -1},
		{"the last child exiting deletes the key", func() int { c.Dec(b); return -1 }, 0, 1, -1},
		{"a Dec at zero stays at zero", func() int { c.Dec(a); return -1 }, 0, 1, -1},
		{"the other source's last child deletes its key", func() int { c.Dec(other); return -1 }, 0, 0, -1},
		{"counting starts again from one", func() int { return c.Inc(a) }, 1, 1, 1},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if got := s.do(); got != s.returnsTo {
				t.Errorf("returned %d, want %d", got, s.returnsTo)
			}
			if got := c.Count(a); got != s.count {
				t.Errorf("Count = %d, want %d", got, s.count)
			}
			if got := c.Len(); got != s.keys {
				t.Errorf("Len = %d, want %d", got, s.keys)
			}
		})
	}
}

func TestSourceCounterDoesNotGrowWithoutBound(t *testing.T) {
	t.Parallel()
	c := NewSourceCounter(64)
	for i := range 100000 {
		k := c.Key(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}))
		c.Inc(k)
		c.Inc(k)
		c.Dec(k)
		c.Dec(k)
	}
	if c.Len() != 0 {
		t.Errorf("Len = %d after every child exited, want 0", c.Len())
	}
}

func BenchmarkSourceCounter(b *testing.B) {
	var srcs [1024]netip.Addr
	for i := range srcs {
		if i%2 == 0 {
			srcs[i] = netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
		} else {
			srcs[i] = netip.AddrFrom16([16]byte{0x20, 0x01, 6: byte(i >> 8), 7: byte(i), 15: 1})
		}
	}
	// busy: every source already has a child; one more comes and goes.
	// churn: each source's only child comes and goes, adding and deleting
	// its key every time, with 512 other sources holding a child.
	for _, churn := range []bool{false, true} {
		name := "busy"
		if churn {
			name = "churn"
		}
		b.Run(name, func(b *testing.B) {
			c := NewSourceCounter(64)
			for i, ip := range srcs {
				if !churn || i >= 512 {
					c.Inc(c.Key(ip))
				}
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				k := c.Key(srcs[i&511])
				if c.Count(k) < 8 {
					c.Inc(k)
				}
				c.Dec(k)
				i++
			}
		})
	}
}

func TestSourceCounterDoesNotAllocate(t *testing.T) {
	c := NewSourceCounter(64)
	ips := []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("::ffff:192.0.2.2")}
	for _, ip := range ips {
		c.Inc(c.Key(ip))
	}
	if n := testing.AllocsPerRun(100, func() {
		for _, ip := range ips {
			k := c.Key(ip)
			c.Inc(k)
			c.Count(k)
			c.Dec(k)
		}
	}); n != 0 {
		t.Errorf("Key, Inc, Count and Dec allocate %v times per run, want 0", n)
	}
}
