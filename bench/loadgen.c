/*
 * loadgen: a closed-loop load generator for super-servers, with per-request
 * latencies in microseconds.
 *
 *   loadgen [-u] [-c CONC] [-t THREADS] [-d SECONDS] [-n COUNT] [-w WARMUP]
 *           [-g GAP_US] [-e BYTES] [-T TIMEOUT] ADDR PORT
 *
 * CONC connection slots (spread over THREADS threads, each with its own
 * epoll) each loop: connect -> read until EOF -> close -> start again. With
 * -u each slot instead sends one datagram on a fresh UDP socket and waits for
 * one reply. A request's latency runs from just before socket(2) to EOF (TCP)
 * or to the reply (UDP). -g makes a slot pause GAP_US after each request.
 *
 * Bounded twice: no request starts after SECONDS (default 3) or after COUNT
 * have started (default 2,000,000); requests still in flight then get
 * TIMEOUT seconds (default 5) to finish. A request that takes longer than
 * TIMEOUT is abandoned and counted as a timeout. Requests completing in the
 * first WARMUP seconds (default 0.3) are not counted.
 *
 * -e BYTES: a reply of any other length counts as an error (default: any
 * non-empty reply is fine).
 *
 * Output: one key=value per line, machine-readable:
 *   conns, errors, timeouts, window_s, conn_per_s, p50_us, p90_us, p99_us,
 *   max_us, mean_us (all over the counted window), and completed (every
 *   successful request, warm-up and drain included)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static struct sockaddr_storage target;
static socklen_t target_len;
static int udp;
static int conc = 1, nthreads = 1;
static double duration = 3, warmup = 0.3, timeout_s = 5;
static long maxcount = 2000000;
static long gap_us;
static long expect = -1;

static int64_t t_start, t_warm, t_stop;
static atomic_long started;

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

enum { IDLE, BUSY, PAUSED, DONE };

struct slot {
	int fd;
	int state;
	int64_t begin;   /* request start */
	int64_t resume;  /* PAUSED: when to start again */
	long got;        /* bytes read */
};

struct worker {
	pthread_t th;
	int nslots;
	struct slot *slots;
	uint32_t *lat;
	size_t nlat, cap;
	long errors, timeouts, late;
	int64_t last_done;
};

static void record(struct worker *w, int64_t begin, int64_t end)
{
	if (end < t_warm || end > t_stop) {
		w->late++;
		return;
	}
	if (w->nlat == w->cap) {
		w->cap = w->cap ? w->cap * 2 : 4096;
		w->lat = realloc(w->lat, w->cap * sizeof *w->lat);
		if (!w->lat) {
			perror("realloc");
			exit(2);
		}
	}
	int64_t d = end - begin;
	w->lat[w->nlat++] = d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
}

static void finish(struct worker *w, int ep, struct slot *s, int ok, int64_t end)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL);
	close(s->fd);
	s->fd = -1;
	if (ok)
		record(w, s->begin, end);
	else
		w->errors++;
	w->last_done = end;
	if (gap_us > 0) {
		s->state = PAUSED;
		s->resume = end + gap_us;
	} else {
		s->state = IDLE;
	}
}

/* start begins a request on an idle slot; it returns 0 when the run is over. */
static int start(struct worker *w, int ep, struct slot *s)
{
	int64_t t = now_us();
	if (t >= t_stop || atomic_fetch_add(&started, 1) >= maxcount) {
		s->state = DONE;
		return 0;
	}
	s->begin = t;
	s->got = 0;
	int fd = socket(target.ss_family, (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		w->errors++;
		s->state = PAUSED; /* out of fds or ports: back off a little */
		s->resume = t + 1000;
		return 1;
	}
	s->fd = fd;
	s->state = BUSY;
	if (connect(fd, (struct sockaddr *)&target, target_len) < 0 && errno != EINPROGRESS) {
		finish(w, ep, s, 0, now_us());
		return 1;
	}
	if (udp && send(fd, "x\n", 2, 0) < 0) {
		finish(w, ep, s, 0, now_us());
		return 1;
	}
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = s};
	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
		perror("epoll_ctl");
		exit(2);
	}
	return 1;
}

static void readable(struct worker *w, int ep, struct slot *s)
{
	char buf[4096];
	for (;;) {
		ssize_t n = recv(s->fd, buf, sizeof buf, 0);
		if (n > 0) {
			s->got += n;
			if (udp) {
				finish(w, ep, s, expect < 0 || s->got == expect, now_us());
				return;
			}
			continue;
		}
		if (n == 0) {
			int64_t end = now_us();
			finish(w, ep, s, expect < 0 ? s->got > 0 : s->got == expect, end);
			return;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN)
			return;
		finish(w, ep, s, 0, now_us());
		return;
	}
}

static void *run(void *arg)
{
	struct worker *w = arg;
	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0) {
		perror("epoll_create1");
		exit(2);
	}
	struct epoll_event evs[256];
	int64_t tmo = (int64_t)(timeout_s * 1e6);
	for (;;) {
		int64_t t = now_us();
		int active = 0;
		int64_t next_wake = t + 100000;
		for (int i = 0; i < w->nslots; i++) {
			struct slot *s = &w->slots[i];
			if (s->state == PAUSED && t >= s->resume)
				s->state = IDLE;
			if (s->state == IDLE)
				start(w, ep, s);
			if (s->state == BUSY && t - s->begin > tmo) {
				epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL);
				close(s->fd);
				s->fd = -1;
				w->timeouts++;
				s->state = IDLE;
				start(w, ep, s);
			}
			if (s->state == PAUSED && s->resume < next_wake)
				next_wake = s->resume;
			if (s->state == BUSY || s->state == PAUSED)
				active++;
		}
		if (!active)
			break;
		int ms = (int)((next_wake - t + 999) / 1000);
		if (ms < 0)
			ms = 0;
		int n = epoll_wait(ep, evs, 256, ms);
		if (n < 0 && errno != EINTR) {
			perror("epoll_wait");
			exit(2);
		}
		for (int i = 0; i < n; i++) {
			struct slot *s = evs[i].data.ptr;
			if (s->state == BUSY)
				readable(w, ep, s);
		}
		/* Paused slots past the deadline are over: no new request starts. */
		if (now_us() >= t_stop)
			for (int i = 0; i < w->nslots; i++)
				if (w->slots[i].state == PAUSED)
					w->slots[i].state = DONE;
	}
	close(ep);
	return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static uint32_t pct(const uint32_t *v, size_t n, double q)
{
	if (n == 0)
		return 0;
	size_t i = (size_t)(q * n + 0.999999);
	if (i == 0)
		i = 1;
	if (i > n)
		i = n;
	return v[i - 1];
}

static void usage(void)
{
	fprintf(stderr, "usage: loadgen [-u] [-c CONC] [-t THREADS] [-d SECONDS] [-n COUNT] [-w WARMUP] [-g GAP_US] [-e BYTES] [-T TIMEOUT] ADDR PORT\n");
	exit(2);
}

int main(int argc, char **argv)
{
	int opt;
	while ((opt = getopt(argc, argv, "uc:t:d:n:w:g:e:T:")) != -1) {
		switch (opt) {
		case 'u': udp = 1; break;
		case 'c': conc = atoi(optarg); break;
		case 't': nthreads = atoi(optarg); break;
		case 'd': duration = atof(optarg); break;
		case 'n': maxcount = atol(optarg); break;
		case 'w': warmup = atof(optarg); break;
		case 'g': gap_us = atol(optarg); break;
		case 'e': expect = atol(optarg); break;
		case 'T': timeout_s = atof(optarg); break;
		default: usage();
		}
	}
	if (argc - optind != 2 || conc < 1 || nthreads < 1 || duration <= 0 || duration > 3600 ||
	    maxcount < 1 || warmup < 0 || warmup >= duration || timeout_s <= 0 || timeout_s > 600)
		usage();
	if (nthreads > conc)
		nthreads = conc;
	const char *addr = argv[optind];
	int port = atoi(argv[optind + 1]);
	memset(&target, 0, sizeof target);
	if (strchr(addr, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&target;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		if (inet_pton(AF_INET6, addr, &s6->sin6_addr) != 1)
			usage();
		target_len = sizeof *s6;
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&target;
		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		if (inet_pton(AF_INET, addr, &s4->sin_addr) != 1)
			usage();
		target_len = sizeof *s4;
	}

	struct worker *ws = calloc(nthreads, sizeof *ws);
	struct slot *slots = calloc(conc, sizeof *slots);
	if (!ws || !slots) {
		perror("calloc");
		return 2;
	}
	for (int i = 0; i < conc; i++)
		slots[i].fd = -1;
	t_start = now_us();
	t_warm = t_start + (int64_t)(warmup * 1e6);
	t_stop = t_start + (int64_t)(duration * 1e6);
	int off = 0;
	for (int i = 0; i < nthreads; i++) {
		ws[i].nslots = conc / nthreads + (i < conc % nthreads);
		ws[i].slots = slots + off;
		off += ws[i].nslots;
		if (pthread_create(&ws[i].th, NULL, run, &ws[i]) != 0) {
			perror("pthread_create");
			return 2;
		}
	}
	size_t total = 0;
	long errors = 0, timeouts = 0, late = 0;
	int64_t last = t_warm;
	for (int i = 0; i < nthreads; i++) {
		pthread_join(ws[i].th, NULL);
		total += ws[i].nlat;
		errors += ws[i].errors;
		timeouts += ws[i].timeouts;
		late += ws[i].late;
		if (ws[i].last_done > last)
			last = ws[i].last_done;
	}
	uint32_t *all = malloc((total ? total : 1) * sizeof *all);
	size_t k = 0;
	double sum = 0;
	for (int i = 0; i < nthreads; i++) {
		memcpy(all + k, ws[i].lat, ws[i].nlat * sizeof *all);
		k += ws[i].nlat;
	}
	for (size_t i = 0; i < total; i++)
		sum += all[i];
	qsort(all, total, sizeof *all, cmp_u32);
	/* The window ends at the deadline, or earlier when COUNT ran out. */
	int64_t end = last < t_stop ? last : t_stop;
	double window = (end - t_warm) / 1e6;
	if (window <= 0)
		window = 1e-6;
	printf("conns=%zu\n", total);
	printf("errors=%ld\n", errors);
	printf("timeouts=%ld\n", timeouts);
	printf("window_s=%.3f\n", window);
	printf("conn_per_s=%.1f\n", total / window);
	printf("p50_us=%u\n", pct(all, total, 0.50));
	printf("p90_us=%u\n", pct(all, total, 0.90));
	printf("p99_us=%u\n", pct(all, total, 0.99));
	printf("max_us=%u\n", total ? all[total - 1] : 0);
	printf("mean_us=%.0f\n", total ? sum / total : 0.0);
	printf("completed=%zu\n", total + (size_t)late);
	return 0;
}
