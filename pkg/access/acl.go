package access

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
)

// verdict is what a prefix says about the addresses it contains.
type verdict uint8

const (
	none  verdict = iota // a branching node of the trie, no entry of its own
	allow                // an allow entry
	deny                 // a deny entry, or the same prefix in both lists
)

// ACL is an allow/deny list of prefixes. The most specific matching entry
// (the longest prefix) wins across both lists; the same prefix in both lists
// is denied. An address no entry matches is allowed only when the allow list
// is empty. IPv4 prefixes match IPv4 sources only and IPv6 prefixes IPv6
// sources only; an IPv4-mapped source is an IPv4 one.
//
// An ACL is immutable once built and safe for concurrent use. The nil *ACL
// allows everything.
type ACL struct {
	// nodes is a path-compressed binary trie per address family, flattened
	// in depth-first order; nodes[0] is unused so that child 0 means none.
	nodes    []node
	root     [2]int32 // index in nodes of the IPv4 and IPv6 roots; 0: empty
	hasAllow bool     // an allow list is set: an unmatched source is refused
}

// node is one prefix of the trie: key masked to bits, IPv4 keys held in the
// top 32 bits.
type node struct {
	key   u128
	child [2]int32 // by the bit after the prefix; 0: none
	bits  uint8
	v     verdict
}

const (
	fam4 = 0
	fam6 = 1
)

// NewACL builds the ACL of a service's allow and deny lists. Entries need
// not be masked; IPv4-mapped prefixes of /96 or longer are taken as the IPv4
// prefix they map, zones are dropped and invalid prefixes match nothing. An
// allow list of only invalid prefixes is still set: it refuses every source.
func NewACL(allowed, denied []netip.Prefix) *ACL {
	b := &builder{}
	for _, p := range allowed {
		b.add(p, allow)
	}
	for _, p := range denied {
		b.add(p, deny)
	}
	a := &ACL{hasAllow: len(allowed) > 0, nodes: make([]node, 1, 1+b.count)}
	for f, r := range b.root {
		if r != nil {
			a.root[f] = a.flatten(r)
		}
	}
	return a
}

// Allowed reports whether a connection from ip may go ahead. It does not
// allocate. An invalid address (such as the peer of a UNIX socket) matches
// no entry.
func (a *ACL) Allowed(ip netip.Addr) bool {
	if a == nil {
		return true
	}
	var v verdict
	if key, f, ok := addrKey(ip); ok {
		v = a.lookup(a.root[f], key)
	}
	switch v {
	case allow:
		return true
	case deny:
		return false
	}
	return !a.hasAllow
}

// lookup walks the trie from root along key and returns the verdict of the
// deepest, and so longest, entry that contains key.
func (a *ACL) lookup(root int32, key u128) verdict {
	best := none
	for i := root; i != 0; {
		n := &a.nodes[i]
		if key.mask(int(n.bits)) != n.key {
			break
		}
		if n.v != none {
			best = n.v
		}
		if int(n.bits) == 128 {
			break
		}
		i = n.child[key.bit(int(n.bits))]
	}
	return best
}

// flatten copies the subtree at b into a.nodes, parent before children, and
// returns its index.
func (a *ACL) flatten(b *buildNode) int32 {
	i := int32(len(a.nodes))
	a.nodes = append(a.nodes, node{key: b.key, bits: b.bits, v: b.v})
	for c, child := range b.child {
		if child != nil {
			ci := a.flatten(child)
			a.nodes[i].child[c] = ci
		}
	}
	return i
}

// addrKey turns a source address into its trie key and family, IPv4-mapped
// as IPv4; ok is false for an invalid address.
func addrKey(ip netip.Addr) (key u128, fam int, ok bool) {
	ip = ip.Unmap()
	switch {
	case ip.Is4():
		return key4(ip), fam4, true
	case ip.Is6():
		return key6(ip), fam6, true
	}
	return u128{}, 0, false
}

func key4(ip netip.Addr) u128 {
	b := ip.As4()
	return u128{hi: uint64(binary.BigEndian.Uint32(b[:])) << 32}
}

func key6(ip netip.Addr) u128 {
	b := ip.As16()
	return u128{hi: binary.BigEndian.Uint64(b[:8]), lo: binary.BigEndian.Uint64(b[8:])}
}

// buildNode is a trie node while NewACL inserts entries.
type buildNode struct {
	key   u128
	child [2]*buildNode
	bits  uint8
	v     verdict
}

// builder inserts prefixes into one trie per family.
type builder struct {
	root  [2]*buildNode
	count int // nodes made
}

// add inserts p with verdict v; the same prefix twice keeps the stronger
// verdict, deny over allow.
func (b *builder) add(p netip.Prefix, v verdict) {
	if !p.IsValid() {
		return
	}
	addr, n := p.Addr().WithZone(""), p.Bits()
	if addr.Is4In6() && n >= 96 {
		addr, n = addr.Unmap(), n-96
	}
	// A mapped prefix shorter than /96 stays IPv6 (config refuses it): it
	// matches the IPv6 sources it contains, never an IPv4 one.
	key, fam := key6(addr), fam6
	if addr.Is4() {
		key, fam = key4(addr), fam4
	}
	key = key.mask(n)
	ref := &b.root[fam]
	for {
		cur := *ref
		if cur == nil {
			*ref = b.leaf(key, n, v)
			return
		}
		common := min(key.common(cur.key), int(cur.bits), n)
		switch {
		case common == int(cur.bits) && common == n: // the same prefix
			cur.v = max(cur.v, v)
			return
		case common == int(cur.bits): // cur contains the new prefix: go down
			ref = &cur.child[key.bit(common)]
		case common == n: // the new prefix contains cur: put it above
			nn := b.leaf(key, n, v)
			nn.child[cur.key.bit(common)] = cur
			*ref = nn
			return
		default: // they part at bit common: a branching node holds both
			fork := b.leaf(key.mask(common), common, none)
			fork.child[cur.key.bit(common)] = cur
			fork.child[key.bit(common)] = b.leaf(key, n, v)
			*ref = fork
			return
		}
	}
}

func (b *builder) leaf(key u128, n int, v verdict) *buildNode {
	b.count++
	return &buildNode{key: key, bits: uint8(n), v: v}
}

// u128 is an address as a 128-bit big-endian number; an IPv4 address sits
// in the top 32 bits so that prefix lengths count from the same end.
type u128 struct{ hi, lo uint64 }

// mask keeps the first n bits (0 <= n <= 128).
func (u u128) mask(n int) u128 {
	// A shift by 64 or more yields 0 in Go, which makes both edges work.
	hi := ^(^uint64(0) >> uint(min(n, 64)))
	lo := uint64(0)
	if n > 64 {
		lo = ^(^uint64(0) >> uint(n-64))
	}
	return u128{u.hi & hi, u.lo & lo}
}

// bit returns bit i (0 is the most significant) for 0 <= i < 128.
func (u u128) bit(i int) int {
	if i < 64 {
		return int(u.hi>>(63-uint(i))) & 1
	}
	return int(u.lo>>(127-uint(i))) & 1
}

// common returns the number of leading bits u and v share.
func (u u128) common(v u128) int {
	if x := u.hi ^ v.hi; x != 0 {
		return bits.LeadingZeros64(x)
	}
	return 64 + bits.LeadingZeros64(u.lo^v.lo)
}
