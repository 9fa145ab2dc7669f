#!/bin/sh
# make bench-kit: everything `make bench` runs, made runnable on a machine
# with no package registry, no compiler and no Go (the 16-core machine a
# session may be lent, which starts bare). Run from the repository root
# after make build and make bench-deps; then carry bin, bench/.build and
# bench/.peers and run there, from the repository root:
#
#   bench/.build/bench -kit -mode=multicore -only accept -budget 8m -out "$OUT"
#
#   bin/superd, bench/.build/{floor,responder,loadgen}  static already
#   bench/.build/bench                                   the driver, static
#   bench/.peers/kit/bin/NAME                            a wrapper that runs
#       bench/.peers/kit/real/NAME through the dynamic loader and libraries
#       copied into bench/.peers/kit/lib, so the peers need nothing of the
#       other machine's: xinetd, tcpserver, inetd (openbsd-inetd),
#       systemd-socket-activate. The driver runs them with -kit.
set -eu

KIT=bench/.peers/kit
GO=${GO:-go}
"$GO" run ./bench/cmd/bench -prepare
CGO_ENABLED=0 "$GO" build -o bench/.build/bench ./bench/cmd/bench

rm -rf "$KIT"
mkdir -p "$KIT/bin" "$KIT/real" "$KIT/lib"

# add NAME PATH: PATH's binary and the libraries ldd finds for it.
add() {
	name=$1 path=$2
	if [ -z "$path" ] || [ ! -x "$path" ]; then
		echo "bench-kit: no $name here: left out"
		return 0
	fi
	cp -L "$path" "$KIT/real/$name"
	deps=$(ldd "$path" 2>/dev/null || true)
	if printf '%s\n' "$deps" | grep -q 'not found'; then
		echo "bench-kit: $name: a library ldd cannot find:" >&2
		printf '%s\n' "$deps" | grep 'not found' >&2
		exit 1
	fi
	# The dynamic loader the binary asks for (its PT_INTERP), if any.
	loader=""
	if command -v readelf >/dev/null 2>&1; then
		loader=$(readelf -lW "$path" | sed -n 's/.*Requesting program interpreter: \(.*\)]$/\1/p')
	else
		loader=$(printf '%s\n' "$deps" | awk '$1 ~ /^\// && $1 ~ /ld-/ { print $1 }')
	fi
	if [ -z "$loader" ]; then
		# Static: run as it is.
		printf '#!/bin/sh\nexec "$(dirname "$0")/../real/%s" "$@"\n' "$name" >"$KIT/bin/$name"
	else
		printf '%s\n' "$deps" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }' | while read -r lib; do
			cp -L "$lib" "$KIT/lib/"
		done
		cp -L "$loader" "$KIT/lib/"
		cat >"$KIT/bin/$name" <<EOF
#!/bin/sh
# $name through the loader and libraries of the machine make bench-kit ran on.
k=\$(cd "\$(dirname "\$0")/.." && pwd)
exec "\$k/lib/$(basename "$loader")" --library-path "\$k/lib" "\$k/real/$name" "\$@"
EOF
	fi
	chmod 755 "$KIT/bin/$name"
	echo "bench-kit: $name from $path"
}

which_of() {
	for p in "$@"; do
		if [ -x "$p" ]; then
			echo "$p"
			return
		fi
	done
}

add xinetd "$(which_of "$(command -v xinetd || true)" /usr/sbin/xinetd)"
add tcpserver "$(which_of "$(command -v tcpserver || true)" /usr/bin/tcpserver)"
add inetd "$(which_of bench/.peers/openbsd-inetd/usr/sbin/inetd)"
ssa=$(which_of "$(command -v systemd-socket-activate || true)" bench/.peers/systemd/usr/bin/systemd-socket-activate)
if [ -n "$ssa" ] && [ -d bench/.peers/systemd ]; then
	# The unpacked copy finds libsystemd-shared through the host's
	# library directory; let ldd see the unpacked one.
	LD_LIBRARY_PATH=$(find bench/.peers/systemd/usr/lib -type d -name systemd | tr '\n' ':') add systemd-socket-activate "$ssa"
else
	add systemd-socket-activate "$ssa"
fi

du -sh bin bench/.build bench/.peers | sed 's/^/bench-kit: /'
echo "bench-kit: carry bin, bench/.build and bench/.peers; from the repository root run: bench/.build/bench -kit -mode=multicore -only accept -budget 8m -out \"\$OUT\""
