/*
 * responder: the program every server under test starts per activation.
 * It does as little as a real program can, so what is measured is the
 * server's own cost of getting a client to a fresh process.
 *
 *   responder          accept mode: writes a short fixed reply to stdout
 *                      (the connection) and exits; the client reads to EOF.
 *   responder accept   TCP wait mode: fd 0 is the listening socket; accepts
 *                      one connection, answers it, exits.
 *   responder udp      UDP wait mode: fd 0 is the bound datagram socket;
 *                      answers one datagram, exits.
 *
 * Built static and, on x86-64 and arm64, without the C library: glibc's
 * static start-up alone (CPU feature probing with cpuid, which traps in a
 * virtual machine, TLS and IRELATIVE set-up) costs more than the rest of
 * the program, and would hide the servers' differences. Elsewhere it falls
 * back to libc.
 */
#if defined(__x86_64__) || defined(__aarch64__)

typedef long ssize_t;
typedef unsigned long size_t;

#if defined(__x86_64__)
enum { SYS_write = 1, SYS_exit = 60, SYS_accept = 43, SYS_sendto = 44, SYS_recvfrom = 45 };

static long sys6(long n, long a, long b, long c, long d, long e, long f)
{
	long ret;
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;
}

__asm__(".text\n"
	".global _start\n"
	"_start:\n"
	"	xor %rbp, %rbp\n"
	"	mov %rsp, %rdi\n"
	"	and $-16, %rsp\n"
	"	call cmain\n"
	"	hlt\n");
#else
enum { SYS_write = 64, SYS_exit = 93, SYS_accept = 202, SYS_sendto = 206, SYS_recvfrom = 207 };

static long sys6(long n, long a, long b, long c, long d, long e, long f)
{
	register long x8 __asm__("x8") = n;
	register long x0 __asm__("x0") = a;
	register long x1 __asm__("x1") = b;
	register long x2 __asm__("x2") = c;
	register long x3 __asm__("x3") = d;
	register long x4 __asm__("x4") = e;
	register long x5 __asm__("x5") = f;
	__asm__ volatile("svc 0"
			 : "+r"(x0)
			 : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
			 : "memory");
	return x0;
}

__asm__(".text\n"
	".global _start\n"
	"_start:\n"
	"	mov x29, #0\n"
	"	mov x0, sp\n"
	"	bl cmain\n"
	"	brk #0\n");
#endif

static const char reply[] = "superd-bench ok\n";
#define REPLY_LEN ((long)sizeof reply - 1)

static __attribute__((noreturn)) void sys_exit(int code)
{
	for (;;)
		sys6(SYS_exit, code, 0, 0, 0, 0, 0);
}

static int streq(const char *a, const char *b)
{
	while (*a && *a == *b)
		a++, b++;
	return *a == *b;
}

__attribute__((used, noreturn)) void cmain(long *sp)
{
	long argc = sp[0];
	char **argv = (char **)(sp + 1);
	if (argc > 1 && streq(argv[1], "accept")) {
		long c = sys6(SYS_accept, 0, 0, 0, 0, 0, 0);
		if (c < 0)
			sys_exit(1);
		sys_exit(sys6(SYS_write, c, (long)reply, REPLY_LEN, 0, 0, 0) == REPLY_LEN ? 0 : 1);
	}
	if (argc > 1 && streq(argv[1], "udp")) {
		char buf[512];
		char peer[128];
		unsigned int plen = sizeof peer;
		if (sys6(SYS_recvfrom, 0, (long)buf, sizeof buf, 0, (long)peer, (long)&plen) < 0)
			sys_exit(1);
		sys_exit(sys6(SYS_sendto, 0, (long)reply, REPLY_LEN, 0, (long)peer, plen) < 0 ? 1 : 0);
	}
	sys_exit(sys6(SYS_write, 1, (long)reply, REPLY_LEN, 0, 0, 0) == REPLY_LEN ? 0 : 1);
}

#else /* other architectures: plain libc */

#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char reply[] = "superd-bench ok\n";

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "accept") == 0) {
		int c = accept(0, NULL, NULL);
		if (c < 0)
			_exit(1);
		_exit(write(c, reply, sizeof reply - 1) == (ssize_t)(sizeof reply - 1) ? 0 : 1);
	}
	if (argc > 1 && strcmp(argv[1], "udp") == 0) {
		char buf[512];
		struct sockaddr_storage peer;
		socklen_t plen = sizeof peer;
		if (recvfrom(0, buf, sizeof buf, 0, (struct sockaddr *)&peer, &plen) < 0)
			_exit(1);
		_exit(sendto(0, reply, sizeof reply - 1, 0, (struct sockaddr *)&peer, plen) < 0 ? 1 : 0);
	}
	_exit(write(1, reply, sizeof reply - 1) == (ssize_t)(sizeof reply - 1) ? 0 : 1);
}
#endif
