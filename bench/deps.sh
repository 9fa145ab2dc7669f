#!/bin/sh
# Installs or unpacks the peers `make bench` measures superd against, each
# only when missing. Run from the repository root (make bench-deps).
#
#   xinetd, ucspi-tcp (tcpserver)  apt-get install
#   openbsd-inetd                  apt-get download + dpkg -x into bench/.peers/
#                                  (it conflicts with xinetd as a package)
#   systemd-socket-activate        the host's, if on PATH; else the systemd and
#                                  libsystemd-shared packages unpacked into
#                                  bench/.peers/systemd (runs standalone with
#                                  LD_LIBRARY_PATH, which the driver sets)
#   gcc + static libc              apt-get install gcc libc6-dev
set -eu

PEERS=bench/.peers
mkdir -p "$PEERS"
updated=""
apt_update() {
	if [ -z "$updated" ]; then
		apt-get update -qq
		updated=1
	fi
}
apt_install() {
	echo "bench-deps: installing $*"
	apt_update
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
# unpack PKG DIR: the package's files under DIR, without installing it.
unpack() {
	pkg=$1 dir=$2
	echo "bench-deps: unpacking $pkg into $dir"
	apt_update
	tmp=$(mktemp -d)
	chmod 755 "$tmp" # apt downloads as _apt
	(cd "$tmp" && apt-get download -qq "$pkg" >/dev/null)
	mkdir -p "$dir"
	dpkg -x "$tmp"/"$pkg"_*.deb "$dir"
	rm -rf "$tmp"
}

need=""
command -v gcc >/dev/null 2>&1 || need="$need gcc"
[ -e /usr/lib/x86_64-linux-gnu/libc.a ] || [ -e /usr/lib/aarch64-linux-gnu/libc.a ] || need="$need libc6-dev"

# xinetd's Debian postinst starts the system's xinetd where policy-rc.d
# allows it; the benchmark never uses that one (it runs its own xinetd with
# its own config file), so one started by this install is stopped again.
xinetd_before=""
if ! command -v xinetd >/dev/null 2>&1 && [ ! -x /usr/sbin/xinetd ]; then
	need="$need xinetd"
	xinetd_before=absent
fi
command -v tcpserver >/dev/null 2>&1 || [ -x /usr/bin/tcpserver ] || need="$need ucspi-tcp"
if [ -n "$need" ]; then
	# shellcheck disable=SC2086
	apt_install $need
fi
if [ "$xinetd_before" = absent ] && [ -s /run/xinetd.pid ]; then
	pid=$(cat /run/xinetd.pid)
	if [ -n "$pid" ] && [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = xinetd ]; then
		echo "bench-deps: stopping the system xinetd the install started (pid $pid)"
		kill "$pid"
	fi
fi

# openbsd-inetd: unpacked, never installed.
if [ ! -x "$PEERS/openbsd-inetd/usr/sbin/inetd" ]; then
	unpack openbsd-inetd "$PEERS/openbsd-inetd"
fi
# Its shared libraries are ordinary packages that conflict with nothing.
libs=""
for l in libbsd0 libevent-2.1-7 libwrap0 libtirpc3 libsystemd0; do
	dpkg -s "$l" >/dev/null 2>&1 || libs="$libs $l"
done
if [ -n "$libs" ]; then
	# shellcheck disable=SC2086
	apt_install $libs
fi

# systemd-socket-activate: the host's when there is one.
if ! command -v systemd-socket-activate >/dev/null 2>&1 &&
	[ ! -x "$PEERS/systemd/usr/bin/systemd-socket-activate" ]; then
	unpack systemd "$PEERS/systemd"
	unpack libsystemd-shared "$PEERS/systemd"
fi

echo "bench-deps: ok"
