package access

import "net/netip"

// DefaultPrefix6 is the length IPv6 clients are grouped by when
// per_source_prefix6 is not set, as config.DefaultPerSourcePrefix6.
const DefaultPrefix6 = 64

// SourceCounter counts a service's running children per client address for
// max_per_source: an IPv4 address is its own key, an IPv6 address is grouped
// with the rest of its prefix (by default its /64, the usual size of one
// site's network), and an IPv4-mapped address counts as IPv4.
//
// A SourceCounter is not safe for concurrent use: the event loop owns it.
// Keys with no children left are deleted, so it holds one entry per source
// with a running child.
type SourceCounter struct {
	prefix6 int
	counts  map[netip.Prefix]int // owner: the event loop
}

// NewSourceCounter returns an empty counter that groups IPv6 addresses by
// their first prefix6 bits; a prefix6 outside 1..128 means DefaultPrefix6.
func NewSourceCounter(prefix6 int) *SourceCounter {
	if prefix6 < 1 || prefix6 > 128 {
		prefix6 = DefaultPrefix6
	}
	return &SourceCounter{prefix6: prefix6, counts: make(map[netip.Prefix]int)}
}

// Key returns the group of ip: its /32 for IPv4 (mapped or not), its prefix
// for IPv6, without zone. Every invalid address (such as the peer of a UNIX
// socket) has the same key, the zero Prefix. It does not allocate.
func (c *SourceCounter) Key(ip netip.Addr) netip.Prefix {
	ip = ip.Unmap()
	switch {
	case ip.Is4():
		return netip.PrefixFrom(ip, 32)
	case ip.Is6():
		p, _ := ip.WithZone("").Prefix(c.prefix6)
		return p
	}
	return netip.Prefix{}
}

// Inc counts one more child for key and returns the new count.
func (c *SourceCounter) Inc(key netip.Prefix) int {
	n := c.counts[key] + 1
	c.counts[key] = n
	return n
}

// Dec counts one child fewer for key, forgetting the key at zero; it never
// goes below zero, so an unknown key is left alone.
func (c *SourceCounter) Dec(key netip.Prefix) {
	switch n := c.counts[key]; {
	case n > 1:
		c.counts[key] = n - 1
	case n == 1:
		delete(c.counts, key)
	}
}

// Count returns the number of children counted for key.
func (c *SourceCounter) Count(key netip.Prefix) int { return c.counts[key] }

// Len returns the number of keys with at least one child.
func (c *SourceCounter) Len() int { return len(c.counts) }
