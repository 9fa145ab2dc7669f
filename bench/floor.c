/*
 * floor: the least a super-server can do, in C — the benchmark's floor.
 *
 *   floor [-m accept|wait] [-u] [-s] [-F N] [-w WORKERS] [-b BACKLOG] ADDR PORT PROG [ARG...]
 *
 * accept mode (default): a blocking accept4 loop; per connection one
 * posix_spawn of PROG with the connection on fds 0 and 1, then close. SIGCHLD
 * is ignored so the kernel reaps children. No limits, no logging, no access
 * checks, no environment but what floor itself has.
 *
 * wait mode (-m wait): poll the listening socket; when it is readable spawn
 * one PROG with the socket itself on fds 0 and 1 and wait for it to exit,
 * then poll again. -u uses a UDP socket (wait mode only).
 *
 * -s: each child in its own session (POSIX_SPAWN_SETSID), as superd and
 * xinetd start theirs: the floor plus what that costs.
 *
 * -F N: hold N more open file descriptors (close-on-exec, like a
 * super-server's N other listening sockets), so each spawn pays what the
 * kernel charges per open fd: copying the fd table and closing the
 * close-on-exec ones at exec.
 *
 * -w WORKERS (accept mode): WORKERS processes, each with its own socket on
 * the same port (SO_REUSEPORT), as a many-core reference point. The workers
 * die with the parent (PR_SET_PDEATHSIG).
 *
 * It runs until killed.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;
static short spawn_flags;

static void die(const char *what)
{
	perror(what);
	exit(2);
}

static int open_socket(const char *addr, int port, int udp, int reuseport, int backlog)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int family;
	memset(&ss, 0, sizeof ss);
	if (strchr(addr, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		family = AF_INET6;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		if (inet_pton(AF_INET6, addr, &s6->sin6_addr) != 1)
			die("inet_pton");
		len = sizeof *s6;
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		family = AF_INET;
		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		if (inet_pton(AF_INET, addr, &s4->sin_addr) != 1)
			die("inet_pton");
		len = sizeof *s4;
	}
	int fd = socket(family, (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket");
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
		die("SO_REUSEPORT");
	if (bind(fd, (struct sockaddr *)&ss, len) < 0)
		die("bind");
	if (!udp && listen(fd, backlog) < 0)
		die("listen");
	return fd;
}

static pid_t spawn_with(int fd, char **argv, const posix_spawnattr_t *attr)
{
	posix_spawn_file_actions_t fa;
	pid_t pid;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, fd, 0);
	posix_spawn_file_actions_adddup2(&fa, fd, 1);
	int err = posix_spawn(&pid, argv[0], &fa, attr, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (err != 0) {
		errno = err;
		perror("posix_spawn");
		return -1;
	}
	return pid;
}

static void accept_loop(int lfd, char **prog)
{
	posix_spawnattr_t attr;
	sigset_t def;
	/* The kernel reaps (SIGCHLD ignored); children get the default back. */
	signal(SIGCHLD, SIG_IGN);
	posix_spawnattr_init(&attr);
	sigemptyset(&def);
	sigaddset(&def, SIGCHLD);
	posix_spawnattr_setsigdefault(&attr, &def);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | spawn_flags);
	for (;;) {
		int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE) {
				usleep(10000);
				continue;
			}
			die("accept4");
		}
		spawn_with(c, prog, &attr);
		close(c);
	}
}

static void wait_loop(int lfd, char **prog)
{
	struct pollfd p = {.fd = lfd, .events = POLLIN};
	posix_spawnattr_t attr;
	posix_spawnattr_init(&attr);
	posix_spawnattr_setflags(&attr, spawn_flags);
	for (;;) {
		if (poll(&p, 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			die("poll");
		}
		pid_t pid = spawn_with(lfd, prog, &attr);
		if (pid < 0) {
			usleep(100000);
			continue;
		}
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
}

int main(int argc, char **argv)
{
	const char *mode = "accept";
	int udp = 0, workers = 1, backlog = 4096, extra = 0, opt;
	while ((opt = getopt(argc, argv, "+m:usF:w:b:")) != -1) {
		switch (opt) {
		case 'm': mode = optarg; break;
		case 'u': udp = 1; break;
		case 's': spawn_flags |= POSIX_SPAWN_SETSID; break;
		case 'F': extra = atoi(optarg); break;
		case 'w': workers = atoi(optarg); break;
		case 'b': backlog = atoi(optarg); break;
		default: goto usage;
		}
	}
	if (argc - optind < 3)
		goto usage;
	const char *addr = argv[optind];
	int port = atoi(argv[optind + 1]);
	char **prog = argv + optind + 2;
	int wait = strcmp(mode, "wait") == 0;
	if (!wait && strcmp(mode, "accept") != 0)
		goto usage;
	if (udp && !wait) {
		fprintf(stderr, "floor: UDP needs -m wait\n");
		return 2;
	}
	if (extra > 0) {
		int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (null < 0)
			die("/dev/null");
		for (int i = 1; i < extra; i++)
			if (fcntl(null, F_DUPFD_CLOEXEC, 3) < 0)
				die("F_DUPFD_CLOEXEC");
	}
	if (wait) {
		wait_loop(open_socket(addr, port, udp, 0, backlog), prog);
		return 0;
	}
	if (workers <= 1) {
		accept_loop(open_socket(addr, port, 0, 0, backlog), prog);
		return 0;
	}
	pid_t parent = getpid();
	for (int i = 0; i < workers; i++) {
		pid_t pid = fork();
		if (pid < 0)
			die("fork");
		if (pid == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() != parent)
				_exit(0);
			accept_loop(open_socket(addr, port, 0, 1, backlog), prog);
			_exit(0);
		}
	}
	/* The parent holds nothing but the workers; it sleeps until killed. */
	for (;;)
		pause();
usage:
	fprintf(stderr, "usage: floor [-m accept|wait] [-u] [-s] [-F N] [-w WORKERS] [-b BACKLOG] ADDR PORT PROG [ARG...]\n");
	return 2;
}
