package config

import (
	"slices"
	"strings"
	"testing"
)

// errorCases pin the exact text of every class of configuration error:
// `superd check` prints these lines, and users and editors rely on them.
var errorCases = []struct {
	name   string
	asRoot bool
	src    string
	want   []string
}{
	{
		name: "a YAML syntax error is reported with its line",
		src: `services:
  daytime:
    listen: tcp://:13
   exec: [/bin/true]
`,
		want: []string{
			"superd.yaml:4:1: YAML syntax error: did not find expected key",
		},
	},
	{
		name: "a syntax error on the first line is reported on line 1",
		src:  "services: [a\n",
		want: []string{
			"superd.yaml:1:1: YAML syntax error: did not find expected ',' or ']'",
		},
	},
	{
		name: "an unterminated quote is reported on the line it opens",
		src:  "services:\n  daytime:\n    listen: \"tcp://:13\n",
		want: []string{
			"superd.yaml:3:1: YAML syntax error: found unexpected end of stream",
		},
	},
	{
		name: "a control character is reported where it is",
		src:  "services:\n  a:\n    description: x\x01y\n",
		want: []string{
			"superd.yaml:3:19: YAML syntax error: control characters are not allowed",
		},
	},
	{
		name: "a second YAML document is refused",
		src:  "services: {}\n---\nservices: {}\n",
		want: []string{
			"superd.yaml:2:1: a configuration file holds one YAML document; remove the second one (from ---)",
		},
	},
	{
		name: "a top level that is not a mapping is refused",
		src:  "- a\n- b\n",
		want: []string{
			"superd.yaml:1:1: the configuration must be a mapping with the keys admin, defaults, include, log, services; got a list",
		},
	},
	{
		name: "an unknown top-level key suggests the closest one",
		src:  "service:\n  a: {}\n",
		want: []string{
			"superd.yaml:1:1: service: unknown key; did you mean \"services\"?",
		},
	},
	{
		name: "an unknown top-level key far from every known one lists them",
		src:  "frobnicate: 1\n",
		want: []string{
			"superd.yaml:1:1: frobnicate: unknown key (known keys: admin, defaults, include, log, services)",
		},
	},
	{
		name: "an unknown service key suggests the closest one",
		src: `services:
  daytime:
    listen: tcp://:13
    exec: [/usr/sbin/in.daytimed]
    max_instance: 10
`,
		want: []string{
			"superd.yaml:5:5: services.daytime.max_instance: unknown key; did you mean \"max_instances\"?",
		},
	},
	{
		name: "a socket option written at service level says where it belongs",
		src: `services:
  daytime:
    listen: tcp://:13
    exec: [/usr/sbin/in.daytimed]
    no_delay: true
`,
		want: []string{
			"superd.yaml:5:5: services.daytime.no_delay: unknown key; no_delay is a socket option: write it under socket:",
		},
	},
	{
		name: "an unknown socket option suggests the closest one",
		src: `services:
  daytime:
    listen: tcp://:13
    exec: [/usr/sbin/in.daytimed]
    socket:
      nodelay: true
`,
		want: []string{
			"superd.yaml:6:7: services.daytime.socket.nodelay: unknown key; did you mean \"no_delay\"?",
		},
	},
	{
		name: "an unknown rate_limit key suggests the closest one",
		src: `services:
  daytime:
    listen: tcp://:13
    exec: [/usr/sbin/in.daytimed]
    rate_limit: {max: 10, per: 1s, paus: 5s}
`,
		want: []string{
			"superd.yaml:5:36: services.daytime.rate_limit.paus: unknown key; did you mean \"pause\"?",
		},
	},
	{
		name: "wrong types are reported at the value",
		src: `log:
  level: [debug]
services:
  daytime:
    listen: {tcp: 13}
    exec: /usr/sbin/in.daytimed
    disabled: "yes"
    max_instances: "10"
    description: 42
`,
		want: []string{
			"superd.yaml:2:10: log.level: expected a string, got a list",
			"superd.yaml:5:13: services.daytime.listen: expected a string or a list, got a mapping",
			"superd.yaml:6:11: services.daytime.exec: expected a list such as [/usr/sbin/in.daytimed, -v], got a string",
			"superd.yaml:7:15: services.daytime.disabled: expected true or false, got a string",
			"superd.yaml:8:20: services.daytime.max_instances: expected an integer, got a string",
			"superd.yaml:9:18: services.daytime.description: expected a string, got an integer (quote it: \"42\")",
		},
	},
	{
		name: "a duplicate key is reported with the first one",
		src: `services:
  daytime:
    listen: tcp://:13
    exec: [/usr/sbin/in.daytimed]
    listen: tcp://:14
`,
		want: []string{
			"superd.yaml:5:5: services.daytime.listen: duplicate key (first set at superd.yaml:3:5)",
		},
	},
	{
		name: "a duplicate service in one file is a duplicate key",
		src: `services:
  daytime:
    listen: tcp://:13
    internal: daytime
  daytime:
    listen: tcp://:14
    internal: daytime
`,
		want: []string{
			"superd.yaml:5:3: services.daytime: duplicate key (first set at superd.yaml:2:3)",
		},
	},
	{
		name: "a duplicate key in a socket map is reported",
		src: `services:
  daytime:
    listen: tcp://:13
    internal: daytime
    socket:
      backlog: 10
      backlog: 20
`,
		want: []string{
			"superd.yaml:7:7: services.daytime.socket.backlog: duplicate key (first set at superd.yaml:6:7)",
		},
	},
	{
		name: "merge keys are refused",
		src: `x: &base
  listen: tcp://:13
services:
  daytime:
    <<: *base
    internal: daytime
`,
		want: []string{
			"superd.yaml:1:1: x: unknown key (known keys: admin, defaults, include, log, services)",
			"superd.yaml:4:3: services.daytime.listen: missing; every service listens on at least one address, e.g. listen: tcp://:13",
			"superd.yaml:5:5: services.daytime.<<: merge keys (<<) are not supported; write the keys out, or use defaults: for keys every service shares",
		},
	},
	{
		name: "a bad listen address is reported at its list item",
		src: `services:
  daytime:
    listen: [tcp://:13, "tcp://:99999", "ftp://:21", "unix://run/x.sock"]
    internal: daytime
`,
		want: []string{
			"superd.yaml:3:25: services.daytime.listen[1]: port 99999 out of range: must be 1-65535",
			"superd.yaml:3:41: services.daytime.listen[2]: unknown scheme \"ftp\" (want tcp, tcp4, tcp6, udp, udp4, udp6, unix, unixgram, unixpacket)",
			"superd.yaml:3:54: services.daytime.listen[3]: socket path \"run/x.sock\" is not absolute: write unix:///PATH (three slashes)",
		},
	},
	{
		name: "an empty listen list is refused",
		src: `services:
  daytime:
    listen: []
    internal: daytime
`,
		want: []string{
			"superd.yaml:3:13: services.daytime.listen: must name at least one address, e.g. tcp://:13",
		},
	},
	{
		name: "a service without listen is refused",
		src: `services:
  daytime:
    internal: daytime
`,
		want: []string{
			"superd.yaml:2:3: services.daytime.listen: missing; every service listens on at least one address, e.g. listen: tcp://:13",
		},
	},
	{
		name: "accept mode on a UDP socket is refused",
		src: `services:
  tftp:
    listen: udp://:69
    exec: [/usr/sbin/in.tftpd]
    mode: accept
`,
		want: []string{
			"superd.yaml:5:5: services.tftp.mode: accept mode needs stream or seqpacket sockets, but udp://[::]:69 is a datagram socket; datagram sockets are served in wait mode",
		},
	},
	{
		name: "pass stdio in wait mode with two sockets is refused at pass",
		src: `services:
  dns:
    listen: [udp://:53, tcp://:53]
    exec: [/usr/sbin/dnsd]
    mode: wait
    pass: stdio
`,
		want: []string{
			"superd.yaml:6:5: services.dns.pass: pass: stdio in wait mode gives the child one socket as stdin and stdout, but this service has 2; use pass: listen_fds",
		},
	},
	{
		name: "wait mode with two sockets and no pass is refused at listen",
		src: `services:
  dns:
    listen: [udp4://127.0.0.1:53, "udp6://[::1]:53"]
    exec: [/usr/sbin/dnsd]
`,
		want: []string{
			"superd.yaml:3:5: services.dns.listen: pass: stdio (the default) in wait mode gives the child one socket as stdin and stdout, but this service has 2; use pass: listen_fds",
		},
	},
	{
		name: "a relative exec path is refused",
		src: `services:
  daytime:
    listen: tcp://:13
    exec: [in.daytimed, -v]
`,
		want: []string{
			"superd.yaml:4:12: services.daytime.exec[0]: program path \"in.daytimed\" must be absolute (superd does not search PATH)",
		},
	},
	{
		name: "an empty exec list is refused",
		src: `services:
  daytime:
    listen: tcp://:13
    exec: []
`,
		want: []string{
			"superd.yaml:4:11: services.daytime.exec: must name the program to run, e.g. [/usr/sbin/in.daytimed]",
		},
	},
	{
		name:   "an exec service without user is refused when superd runs as root",
		asRoot: true,
		src: `services:
  daytime:
    listen: tcp://:13
    exec: [/usr/sbin/in.daytimed]
  echo:
    listen: tcp://:7
    internal: echo
`,
		want: []string{
			"superd.yaml:2:3: services.daytime.user: missing; superd runs as root, so an exec service must name its user (write \"user: root\" to run it as root)",
		},
	},
	{
		name: "unknown users and groups are refused",
		src: `services:
  daytime:
    listen: tcp://:13
    exec: [/usr/sbin/in.daytimed]
    user: nobodyy
  time:
    listen: tcp://:37
    exec: [/usr/sbin/in.timed]
    user: nobody
    group: nogrp
    groups: [tty, vidoe]
  sock:
    listen: unix:///run/x.sock
    exec: [/usr/sbin/x]
    socket: {owner: bob, group: staff}
`,
		want: []string{
			"superd.yaml:5:11: services.daytime.user: unknown user \"nobodyy\"",
			"superd.yaml:10:12: services.time.group: unknown group \"nogrp\"",
			"superd.yaml:11:19: services.time.groups[1]: unknown group \"vidoe\"",
			"superd.yaml:15:21: services.sock.socket.owner: unknown user \"bob\"",
			"superd.yaml:15:33: services.sock.socket.group: unknown group \"staff\"",
		},
	},
	{
		name: "exec and internal together are refused",
		src: `services:
  daytime:
    listen: tcp://:13
    exec: [/usr/sbin/in.daytimed]
    internal: daytime
`,
		want: []string{
			"superd.yaml:5:5: services.daytime.internal: exec and internal are both set; a service runs exactly one of exec, internal or redirect",
		},
	},
	{
		name: "a service with none of exec, internal or redirect is refused",
		src: `services:
  daytime:
    listen: tcp://:13
`,
		want: []string{
			"superd.yaml:2:3: services.daytime: needs one of exec, internal or redirect: what to run for each client",
		},
	},
	{
		name: "bad durations are refused",
		src: `services:
  daytime:
    listen: tcp://:13
    exec: [/usr/sbin/in.daytimed]
    max_duration: 10
    stop_timeout: 10 seconds
    rate_limit: {max: 0, per: 0s}
    socket: {keepalive: true, keepalive_time: 1.5s}
`,
		want: []string{
			"superd.yaml:5:19: services.daytime.max_duration: expected a duration such as \"1.5s\" or \"10m\", got an integer",
			"superd.yaml:6:19: services.daytime.stop_timeout: invalid duration \"10 seconds\": use a Go duration such as \"1.5s\" or \"10m\"",
			"superd.yaml:7:23: services.daytime.rate_limit.max: must be between 1 and 2147483647, got 0",
			"superd.yaml:7:31: services.daytime.rate_limit.per: must be more than 0, got 0s",
			"superd.yaml:8:47: services.daytime.socket.keepalive_time: must be a whole number of seconds, got 1.5s",
		},
	},
	{
		name: "a wildcard and an address of its family on one port",
		src: `services:
  all: {listen: "tcp4://:80", internal: echo}
  lo: {listen: "tcp://127.0.0.1:80", internal: echo}
`,
		want: []string{
			"superd.yaml:3:16: services.lo.listen: tcp4://127.0.0.1:80 and tcp4://0.0.0.0:80 (services.all.listen at superd.yaml:2:17) cannot both be bound: a wildcard takes its family's every address on the port; set socket: {reuse_port: true} in both, or listen on the addresses one by one",
		},
	},
	{
		name: "an address clashes with the second wildcard of its port, not the first",
		src: `services:
  w0: {listen: "tcp4://:80", internal: echo, socket: {bind_to_device: lo}}
  w1: {listen: "tcp4://:80", internal: echo, socket: {bind_to_device: eth1}}
  s1: {listen: "tcp://10.0.0.1:80", internal: echo, socket: {bind_to_device: eth1}}
`,
		want: []string{
			"superd.yaml:4:16: services.s1.listen: tcp4://10.0.0.1:80 and tcp4://0.0.0.0:80 (services.w1.listen at superd.yaml:3:16) cannot both be bound: a wildcard takes its family's every address on the port; set socket: {reuse_port: true} in both, or listen on the addresses one by one",
		},
	},
	{
		name: "bad sizes are refused",
		src: `services:
  daytime:
    listen: tcp://:13
    exec: [/usr/sbin/in.daytimed]
    rlimits: {nofile: unlimited, as: 1T, core: -1, stak: 8M}
    socket: {receive_buffer: 64X, send_buffer: 4G}
  counts:
    listen: tcp://:14
    exec: [/bin/true]
    rlimits: {nofile: 1T, cpu: -1, nproc: [1]}
`,
		want: []string{
			"superd.yaml:5:23: services.daytime.rlimits.nofile: nofile cannot be unlimited (the kernel caps it at fs.nr_open); give a number",
			"superd.yaml:5:38: services.daytime.rlimits.as: invalid size \"1T\": use a number of bytes or a number with K, M or G (powers of 1024)",
			"superd.yaml:5:48: services.daytime.rlimits.core: must be a size of 0 or more, got -1",
			"superd.yaml:5:52: services.daytime.rlimits.stak: unknown key; did you mean \"stack\"?",
			"superd.yaml:6:30: services.daytime.socket.receive_buffer: invalid size \"64X\": use a number of bytes or a number with K, M or G (powers of 1024)",
			"superd.yaml:6:48: services.daytime.socket.send_buffer: must be between 1 and 1073741823, got 4G",
			"superd.yaml:10:23: services.counts.rlimits.nofile: invalid number \"1T\": use a number of files or a number with K, M or G (powers of 1024)",
			"superd.yaml:10:32: services.counts.rlimits.cpu: must be a number of 0 or more, got -1",
			"superd.yaml:10:43: services.counts.rlimits.nproc: expected a number such as 65536 or \"64K\", got a list",
		},
	},
	{
		// Each bound is one past what the option's field holds.
		name: "socket numbers past their bounds are refused",
		src: `services:
  daytime:
    listen: tcp://:13
    exec: [/usr/sbin/in.daytimed]
    socket: {mark: 4294967296, ip_tos: 256, ip_ttl: 256, backlog: 2147483648, priority: -1}
    per_source_prefix6: 129
`,
		want: []string{
			"superd.yaml:5:20: services.daytime.socket.mark: must be between 0 and 4294967295, got 4294967296",
			"superd.yaml:5:40: services.daytime.socket.ip_tos: must be between 0 and 255, got 256",
			"superd.yaml:5:53: services.daytime.socket.ip_ttl: must be between 1 and 255, got 256",
			"superd.yaml:5:67: services.daytime.socket.backlog: must be between 1 and 2147483647, got 2147483648",
			"superd.yaml:5:89: services.daytime.socket.priority: must be between 0 and 2147483647, got -1",
			"superd.yaml:6:25: services.daytime.per_source_prefix6: must be between 1 and 128, got 129",
		},
	},
	{
		name: "bad umask, nice and signal are refused",
		src: `services:
  a:
    listen: tcp://:13
    exec: [/usr/sbin/a]
    umask: "0999"
    nice: 20
    stop_signal: TREM
  b:
    listen: tcp://:14
    exec: [/usr/sbin/b]
    umask: 01000
    nice: -21
    stop_signal: 65
`,
		want: []string{
			"superd.yaml:5:12: services.a.umask: invalid octal number \"0999\": use the digits 0 to 7, e.g. \"022\"",
			"superd.yaml:6:11: services.a.nice: must be between -20 and 19, got 20",
			"superd.yaml:7:18: services.a.stop_signal: unknown signal \"TREM\": use a name such as TERM or SIGHUP, or a number",
			"superd.yaml:11:12: services.b.umask: must be at most 0777, got 01000",
			"superd.yaml:12:11: services.b.nice: must be between -20 and 19, got -21",
			"superd.yaml:13:18: services.b.stop_signal: must be between 1 and 64, got 65",
		},
	},
	{
		name: "bad allow and deny prefixes are refused",
		src: `services:
  a:
    listen: tcp://:13
    exec: [/usr/sbin/a]
    allow: [10.0.0.0/33, example.com, "fe80::1%eth0", "::ffff:0:0/64"]
    deny: 2001:db8::/129
    per_source_prefix6: 0
`,
		want: []string{
			"superd.yaml:5:13: services.a.allow[0]: invalid CIDR prefix \"10.0.0.0/33\": use an address such as 192.0.2.1 or 2001:db8::1, or a prefix such as 10.0.0.0/8",
			"superd.yaml:5:26: services.a.allow[1]: invalid address \"example.com\": use an address such as 192.0.2.1 or 2001:db8::1, or a prefix such as 10.0.0.0/8",
			"superd.yaml:5:39: services.a.allow[2]: \"fe80::1%eth0\" has a zone; allow and deny match addresses without one",
			"superd.yaml:5:55: services.a.allow[3]: IPv4-mapped prefix \"::ffff:0:0/64\" must be /96 or longer",
			"superd.yaml:6:11: services.a.deny: invalid CIDR prefix \"2001:db8::/129\": use an address such as 192.0.2.1 or 2001:db8::1, or a prefix such as 10.0.0.0/8",
			"superd.yaml:7:25: services.a.per_source_prefix6: must be between 1 and 128, got 0",
		},
	},
	{
		name: "bad access_times are refused",
		src: `services:
  a:
    listen: tcp://:13
    exec: [/usr/sbin/a]
    access_times: ["08:00-25:00", "8-17", "10:00-10:00", "9:5-10:00"]
`,
		want: []string{
			"superd.yaml:5:20: services.a.access_times[0]: invalid time window \"08:00-25:00\": use HH:MM-HH:MM in local time, e.g. \"08:00-18:30\" (a window may wrap past midnight)",
			"superd.yaml:5:35: services.a.access_times[1]: invalid time window \"8-17\": use HH:MM-HH:MM in local time, e.g. \"08:00-18:30\" (a window may wrap past midnight)",
			"superd.yaml:5:43: services.a.access_times[2]: time window \"10:00-10:00\" starts where it ends",
			"superd.yaml:5:58: services.a.access_times[3]: invalid time window \"9:5-10:00\": use HH:MM-HH:MM in local time, e.g. \"08:00-18:30\" (a window may wrap past midnight)",
		},
	},
	{
		name: "an IPv4 wildcard beside a dual-stack wildcard needs ipv6_only",
		src: `services:
  a:
    listen: [tcp://0.0.0.0:13]
    internal: daytime
  b:
    listen: tcp://:13
    internal: daytime
`,
		want: []string{
			"superd.yaml:6:13: services.b.listen: tcp://[::]:13 and tcp4://0.0.0.0:13 (services.a.listen[0] at superd.yaml:3:14) both take IPv4 port 13: set socket: {ipv6_only: true} in services.b so that [::] takes IPv6 only",
		},
	},
	{
		name: "the same address in two services is refused naming both",
		src: `services:
  a:
    listen: tcp://127.0.0.1:13
    internal: daytime
  b:
    listen: tcp4://127.0.0.1:13
    internal: daytime
  c:
    listen: [unix:///run/c.sock, unixgram:///run/c.sock]
    exec: [/usr/sbin/c]
    pass: listen_fds
`,
		want: []string{
			"superd.yaml:6:13: services.b.listen: tcp4://127.0.0.1:13 is also bound by services.a.listen at superd.yaml:3:13; two services can share an address only with socket: {reuse_port: true} in both",
			"superd.yaml:9:34: services.c.listen[1]: unixgram:///run/c.sock and unix:///run/c.sock (services.c.listen[0] at superd.yaml:9:14) bind the same socket file",
		},
	},
	{
		name: "a socket option that cannot apply is reported at the option",
		src: `services:
  tftp:
    listen: [udp://:69]
    exec: [/usr/sbin/in.tftpd]
    socket: {no_delay: true, file_mode: "0600", fd_name: "a:b"}
`,
		want: []string{
			"superd.yaml:5:14: services.tftp.socket.no_delay: no_delay does not apply to udp sockets (TCP only); services.tftp.listen[0] is udp://[::]:69",
			"superd.yaml:5:30: services.tftp.socket.file_mode: file_mode does not apply to udp sockets (UNIX sockets with a path only); services.tftp.listen[0] is udp://[::]:69",
			"superd.yaml:5:58: services.tftp.socket.fd_name: invalid fd_name \"a:b\": use at most 255 letters, digits, '_', '.' and '-'",
		},
	},
	{
		name: "wait-mode internal services on TCP are refused",
		src: `services:
  echo:
    listen: tcp://:7
    internal: echo
    mode: wait
    pass: listen_fds
    user: nobody
`,
		want: []string{
			"superd.yaml:5:5: services.echo.mode: internal services on stream sockets run in accept mode",
			"superd.yaml:6:5: services.echo.pass: does not apply to internal services, which superd serves itself",
			"superd.yaml:7:5: services.echo.user: does not apply to internal services, which superd serves itself without a child process",
		},
	},
	{
		name: "redirect needs stream sockets in accept mode",
		src: `services:
  fwd:
    listen: [tcp://:8080, udp://:8080]
    redirect: 10.0.0.1:80
  fwd2:
    listen: tcp://:8081
    redirect: "backend:http"
    mode: wait
`,
		want: []string{
			"superd.yaml:3:27: services.fwd.listen[1]: redirect relays stream connections; udp://[::]:8080 is a datagram socket",
			"superd.yaml:7:15: services.fwd2.redirect: port \"http\" in \"backend:http\" must be a number",
			"superd.yaml:8:5: services.fwd2.mode: redirect runs in accept mode: superd relays each connection itself",
		},
	},
	{
		name: "bad top-level sections are refused",
		src: `log: {level: verbose, format: xml}
admin: {listen: "localhost"}
include: ["[a-"]
defaults:
  listen: tcp://:1
  umask: "8"
  user: nobodyy
services:
  Daytime:
    listen: tcp://:13
    internal: daytime
  a:
    listen: tcp://:14
    internal: daytime
  b:
    listen: tcp://:15
    exec: [/bin/b]
`,
		want: []string{
			"superd.yaml:1:14: log.level: must be debug, info, warn or error, got \"verbose\"",
			"superd.yaml:1:31: log.format: must be console or json, got \"xml\"",
			"superd.yaml:2:17: admin.listen: invalid address \"localhost\": use HOST:PORT, e.g. 127.0.0.1:9750 or [::1]:9750",
			"superd.yaml:3:11: include[0]: invalid glob \"[a-\": syntax error in pattern",
			"superd.yaml:5:3: defaults.listen: not allowed in defaults: listen says what a service is, so every service writes its own",
			"superd.yaml:6:10: defaults.umask: invalid octal number \"8\": use the digits 0 to 7, e.g. \"022\"",
			"superd.yaml:7:9: defaults.user: unknown user \"nobodyy\"",
			"superd.yaml:9:3: services.Daytime: invalid service name \"Daytime\": use lowercase letters, digits, '_', '.' and '-', starting with a letter or digit (at most 255)",
		},
	},
	{
		name: "env names and reserved variables are refused",
		src: `services:
  a:
    listen: tcp://:13
    exec: [/usr/sbin/a]
    env: {1X: a, SUPERD_SERVICE: x, OK: [1], EMPTY: }
    pass_env: [LANG, "A-B"]
`,
		want: []string{
			"superd.yaml:5:11: services.a.env.1X: invalid variable name \"1X\": use letters, digits and '_', not starting with a digit",
			"superd.yaml:5:18: services.a.env.SUPERD_SERVICE: SUPERD_SERVICE is set by superd and cannot be configured",
			"superd.yaml:5:41: services.a.env.OK: expected a string, got a list (write \"\" for an empty value)",
			"superd.yaml:5:53: services.a.env.EMPTY: expected a string, got nothing (null) (write \"\" for an empty value)",
			"superd.yaml:6:22: services.a.pass_env[1]: invalid variable name \"A-B\": use letters, digits and '_', not starting with a digit",
		},
	},
	{
		name: "stderr socket outside accept mode with stdio is refused",
		src: `services:
  a:
    listen: tcp://:13
    exec: [/usr/sbin/a]
    pass: listen_fds
    stderr: socket
    argv0: ""
`,
		want: []string{
			"superd.yaml:6:5: services.a.stderr: stderr: socket needs accept mode with pass: stdio, where the connection is also fd 2",
			"superd.yaml:7:12: services.a.argv0: must not be empty",
		},
	},
	{
		name: "process keys on an internal service are refused",
		src: `services:
  a:
    listen: tcp://:13
    internal: daytime
    user: nobody
    umask: "077"
    argv0: x
    stderr: log
`,
		want: []string{
			"superd.yaml:5:5: services.a.user: does not apply to internal services, which superd serves itself without a child process",
			"superd.yaml:6:5: services.a.umask: does not apply to internal services, which superd serves itself without a child process",
			"superd.yaml:7:5: services.a.argv0: argv0 needs exec",
			"superd.yaml:8:5: services.a.stderr: does not apply to internal services, which superd serves itself",
		},
	},
	{
		name: "allow from defaults on a wait-mode exec service is refused",
		src: `defaults:
  allow: [10.0.0.0/8]
services:
  tftp:
    listen: udp://:69
    exec: [/usr/sbin/in.tftpd]
  ok:
    listen: udp://:70
    exec: [/usr/sbin/in.tftpd]
    allow: []
`,
		want: []string{
			"superd.yaml:4:3: services.tftp.allow: allow from defaults (superd.yaml:2:3) cannot be enforced in wait mode, where the child reads the socket itself; write allow: [] in this service to run it without",
		},
	},
	{
		name: "socket options that need another option or address are refused",
		src: `services:
  a:
    listen: "tcp://[fe80::1]:13"
    internal: daytime
  b:
    listen: udp://:5353
    internal: echo
    socket: {broadcast: true, ipv6_only: true, keepalive_count: 3}
`,
		want: []string{
			"superd.yaml:3:13: services.a.listen: link-local address [fe80::1] needs a zone, as in [fe80::1%eth0], or bind_to_device",
			"superd.yaml:8:5: services.b.socket: broadcast does not apply to IPv6-only sockets (IPv6 has no broadcast); services.b.listen is udp://[::]:5353",
			"superd.yaml:8:48: services.b.socket.keepalive_count: has no effect without keepalive: true",
		},
	},
	{
		name: "group without user is refused",
		src: `services:
  a:
    listen: tcp://:13
    exec: [/usr/sbin/a]
    group: daemon
`,
		want: []string{
			"superd.yaml:5:5: services.a.group: needs user: without it the child runs as superd's own user and groups",
		},
	},
	{
		name: "a numeric user outside the database needs a group",
		src: `services:
  a:
    listen: tcp://:13
    exec: [/usr/sbin/a]
    user: 4242
`,
		want: []string{
			"superd.yaml:5:11: services.a.user: user 4242 is in no user database, so it has no primary group: set group as well",
		},
	},
}

func TestErrors(t *testing.T) {
	for _, tc := range errorCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			opts := testOptions()
			opts.AsRoot = tc.asRoot
			got := errorLines(t, tc.src, opts)
			if !slices.Equal(got, tc.want) {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}
