package listener

import (
	"net/netip"
	"time"
)

// Kind is the socket type of an address: stream, datagram or seqpacket.
type Kind uint8

// Socket kinds.
const (
	Stream Kind = iota + 1
	Datagram
	SeqPacket
)

// Family is the address family of an address.
type Family uint8

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
//
// The small fields come first, so that they share one word (a socket's
// configuration is kept for every configured service).
type Address struct {
	Family    Family
	Kind      Kind
	Port      uint16
	DualStack bool
	Abstract  bool
	IP        netip.Addr
	Path      string
}

// Options are the socket options of a service (SPEC §2.1 `socket:`). The
// zero value of each field means "leave the kernel default", except OwnerUID
// and OwnerGID, where 0 is root and NoOwner (-1) means unset: whoever builds
// an Options (the config package) must set both to NoOwner unless `owner` or
// `group` is configured, or Validate rejects it for every non-UNIX socket.
// Options is comparable so that (Address, Options) can key a socket across
// reloads.
type Options struct {
	BindToDevice   string
	KeepAliveTime  time.Duration
	KeepAliveIntvl time.Duration
	DeferAccept    time.Duration
	// OwnerUID and OwnerGID own a UNIX socket file; NoOwner leaves it as
	// created (owned by superd's user).
	OwnerUID int
	OwnerGID int
	// The numbers have the width of what the kernel takes (setsockopt's
	// int, SO_MARK's u32, a TOS or TTL byte): a configuration holds one
	// Options per socket, 10,000 at 10,000 services.
	Backlog       int32
	ReceiveBuffer int32
	SendBuffer    int32
	Priority      int32
	Mark          uint32
	// FileMode is the permission of a UNIX socket file; 0 means 0666, so
	// that any local user may connect unless the configuration narrows it.
	FileMode       uint32
	KeepAliveCount int16
	IPTOS          uint8
	IPTTL          uint8
	// The flags last, in the word the three above share with them.
	IPv6Only        bool
	ReusePort       bool
	FreeBind        bool
	Transparent     bool
	KeepAlive       bool
	NoDelay         bool
	Broadcast       bool
	PassCredentials bool
}

// NoOwner is the OwnerUID or OwnerGID that leaves a socket file's owner as
// created; it is -1 because 0 is root, as chown(2) has it.
const NoOwner = -1

// DefaultBacklog is the listen(2) backlog when none is configured.
const DefaultBacklog = 4096
