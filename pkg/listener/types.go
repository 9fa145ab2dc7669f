package listener

import (
	"net/netip"
	"time"
)

// Kind is the socket type of an address: stream, datagram or seqpacket.
type Kind int

// Socket kinds.
const (
	Stream Kind = iota + 1
	Datagram
	SeqPacket
)

// Family is the address family of an address.
type Family int

// Address families.
const (
	IPv4 Family = iota + 1
	IPv6
	Unix
)

// Address is one parsed `listen` entry.
//
// For IP families, IP and Port are set (IP may carry a zone for link-local
// addresses; an IPv4-mapped literal is stored as plain IPv4). DualStack is
// true for `tcp://:PORT` and `tcp://[::]:PORT` (likewise udp), which bind
// [::] and accept IPv4 too unless Options.IPv6Only is set; every other IPv6
// socket, `tcp6://:PORT` included, is IPv6-only. For Unix, Path is
// the file system path or, when Abstract is true, the abstract name without
// the leading '@'.
type Address struct {
	Family    Family
	Kind      Kind
	IP        netip.Addr
	Port      uint16
	DualStack bool
	Path      string
	Abstract  bool
}

// Options are the socket options of a service (SPEC §2.1 `socket:`). The
// zero value of each field means "leave the kernel default", except OwnerUID
// and OwnerGID, where 0 is root and NoOwner (-1) means unset: whoever builds
// an Options (the config package) must set both to NoOwner unless `owner` or
// `group` is configured, or Validate rejects it for every non-UNIX socket.
// Options is comparable so that (Address, Options) can key a socket across
// reloads.
type Options struct {
	Backlog         int
	IPv6Only        bool
	ReusePort       bool
	FreeBind        bool
	Transparent     bool
	BindToDevice    string
	KeepAlive       bool
	KeepAliveTime   time.Duration
	KeepAliveIntvl  time.Duration
	KeepAliveCount  int
	NoDelay         bool
	DeferAccept     time.Duration
	ReceiveBuffer   int
	SendBuffer      int
	Mark            int
	IPTOS           int
	IPTTL           int
	Priority        int
	Broadcast       bool
	PassCredentials bool
	// FileMode is the permission of a UNIX socket file; 0 means 0666, so
	// that any local user may connect unless the configuration narrows it.
	FileMode uint32
	// OwnerUID and OwnerGID own a UNIX socket file; NoOwner leaves it as
	// created (owned by superd's user).
	OwnerUID int
	OwnerGID int
}

// NoOwner is the OwnerUID or OwnerGID that leaves a socket file's owner as
// created; it is -1 because 0 is root, as chown(2) has it.
const NoOwner = -1

// DefaultBacklog is the listen(2) backlog when none is configured.
const DefaultBacklog = 4096
