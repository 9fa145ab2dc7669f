package listener

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// Kernel limits of the options Validate checks, so that `superd check`
// reports a value the kernel would refuse or silently clamp.
const (
	maxKeepAliveSecs  = 32767 // MAX_TCP_KEEPIDLE, MAX_TCP_KEEPINTVL
	maxKeepAliveCount = 127   // MAX_TCP_KEEPCNT
	maxBuffer         = math.MaxInt32 / 2
	maxInterfaceName  = 15 // IFNAMSIZ less the NUL
)

// Validate reports the first option of o that cannot apply to a, naming it
// by its YAML key ("no_delay does not apply to udp4 sockets (TCP only)"), or
// whose value the kernel would refuse or silently clamp. Options are checked
// in the order SPEC §2.1 lists them, so the same configuration always yields
// the same message. Validate does not look at the host (interfaces, users):
// that is Open's business, so that `superd check` runs anywhere.
func (o Options) Validate(a Address) error {
	if a.Network() == "" {
		return errors.New("invalid address")
	}
	ip, tcp, udp, unix := a.isIP(), a.isTCP(), a.isUDP(), a.Family == Unix

	if o.Backlog != 0 {
		if a.Kind == Datagram {
			return notFor("backlog", a, "stream and seqpacket sockets only")
		}
		if o.Backlog < 0 {
			return fmt.Errorf("backlog %d out of range: must be 1-%d", o.Backlog, math.MaxInt32)
		}
	}
	if o.IPv6Only && a.Family != IPv6 {
		return notFor("ipv6_only", a, "IPv6 sockets only")
	}
	if o.ReusePort && !ip {
		return notFor("reuse_port", a, "TCP and UDP only")
	}
	if o.FreeBind && !ip {
		return notFor("free_bind", a, "TCP and UDP only")
	}
	if o.Transparent && !ip {
		return notFor("transparent", a, "TCP and UDP only")
	}
	if o.BindToDevice != "" {
		if !ip {
			return notFor("bind_to_device", a, "TCP and UDP only")
		}
		if !validInterfaceName(o.BindToDevice) {
			return fmt.Errorf("bind_to_device %q is not an interface name", o.BindToDevice)
		}
	}
	if o.KeepAlive && !tcp {
		return notFor("keepalive", a, "TCP only")
	}
	if err := o.checkKeepAliveSecs("keepalive_time", o.KeepAliveTime, a); err != nil {
		return err
	}
	if err := o.checkKeepAliveSecs("keepalive_interval", o.KeepAliveIntvl, a); err != nil {
		return err
	}
	if o.KeepAliveCount != 0 {
		if err := o.needKeepAlive("keepalive_count", a); err != nil {
			return err
		}
		if o.KeepAliveCount < 1 || o.KeepAliveCount > maxKeepAliveCount {
			return fmt.Errorf("keepalive_count %d out of range: must be 1-%d", o.KeepAliveCount, maxKeepAliveCount)
		}
	}
	if o.NoDelay && !tcp {
		return notFor("no_delay", a, "TCP only")
	}
	if o.DeferAccept != 0 {
		if !tcp {
			return notFor("defer_accept", a, "TCP only")
		}
		if !wholeSeconds(o.DeferAccept, math.MaxInt32) {
			return fmt.Errorf("defer_accept must be a whole number of seconds from 1s to %ds (the kernel counts seconds), not %s", math.MaxInt32, o.DeferAccept)
		}
	}
	if o.ReceiveBuffer < 0 || o.ReceiveBuffer > maxBuffer {
		return fmt.Errorf("receive_buffer %d out of range: must be 1-%d", o.ReceiveBuffer, maxBuffer)
	}
	if o.SendBuffer < 0 || o.SendBuffer > maxBuffer {
		return fmt.Errorf("send_buffer %d out of range: must be 1-%d", o.SendBuffer, maxBuffer)
	}
	if o.IPTOS != 0 {
		if !ip {
			return notFor("ip_tos", a, "TCP and UDP only")
		}
	}
	if o.IPTTL != 0 {
		if !ip {
			return notFor("ip_ttl", a, "TCP and UDP only")
		}
	}
	if o.Priority < 0 {
		return fmt.Errorf("priority %d out of range: must be 1-%d", o.Priority, math.MaxInt32)
	}
	if o.Broadcast {
		if !udp {
			return notFor("broadcast", a, "UDP only")
		}
		if a.Family == IPv6 && (!a.DualStack || o.IPv6Only) {
			return errors.New("broadcast does not apply to IPv6-only sockets (IPv6 has no broadcast)")
		}
	}
	if o.PassCredentials && !unix {
		return notFor("pass_credentials", a, "UNIX sockets only")
	}
	if o.FileMode != 0 {
		if !a.isSocketFile() {
			return notFor("file_mode", a, "UNIX sockets with a path only")
		}
		if o.FileMode > 0o777 {
			return fmt.Errorf("file_mode %#o out of range: must be at most 0777", o.FileMode)
		}
	}
	if err := checkOwner("owner", o.OwnerUID, a); err != nil {
		return err
	}
	if err := checkOwner("group", o.OwnerGID, a); err != nil {
		return err
	}
	if a.Family == IPv6 && a.IP.IsLinkLocalUnicast() && a.IP.Zone() == "" && o.BindToDevice == "" {
		return fmt.Errorf("link-local address [%s] needs a zone, as in [%s%%eth0], or bind_to_device", a.IP, a.IP)
	}
	return nil
}

// notFor is the message of an option set on a socket it cannot apply to.
func notFor(key string, a Address, only string) error {
	what := a.Network()
	if a.Family == Unix && a.Abstract {
		what = "abstract " + what
	}
	return fmt.Errorf("%s does not apply to %s sockets (%s)", key, what, only)
}

func (o Options) needKeepAlive(key string, a Address) error {
	if !a.isTCP() {
		return notFor(key, a, "TCP only")
	}
	if !o.KeepAlive {
		return fmt.Errorf("%s is set but keepalive is not: set keepalive: true", key)
	}
	return nil
}

func (o Options) checkKeepAliveSecs(key string, d time.Duration, a Address) error {
	if d == 0 {
		return nil
	}
	if err := o.needKeepAlive(key, a); err != nil {
		return err
	}
	if !wholeSeconds(d, maxKeepAliveSecs) {
		return fmt.Errorf("%s must be a whole number of seconds from 1s to %ds (the kernel counts seconds), not %s", key, maxKeepAliveSecs, d)
	}
	return nil
}

// wholeSeconds reports whether d is 1s to max seconds with nothing below a
// second: the kernel would truncate the rest, and 0.5s would turn into "off".
func wholeSeconds(d time.Duration, max int64) bool {
	return d >= time.Second && d%time.Second == 0 && int64(d/time.Second) <= max
}

func checkOwner(key string, id int, a Address) error {
	if id == NoOwner {
		return nil
	}
	if !a.isSocketFile() {
		return notFor(key, a, "UNIX sockets with a path only")
	}
	if id < 0 || int64(id) > math.MaxUint32-1 {
		return fmt.Errorf("%s id %d out of range", key, id)
	}
	return nil
}

// validInterfaceName follows the kernel's dev_valid_name, so that a name the
// kernel can never have is reported by `superd check`, not at bind time.
func validInterfaceName(name string) bool {
	if name == "" || len(name) > maxInterfaceName || name == "." || name == ".." {
		return false
	}
	return !strings.ContainsAny(name, "/: \t\n\v\f\r")
}
