// SPDX-License-Identifier: GPL-2.0
/* installrace: app threads that race the datapath's kTLS install on the
 * same socket (tests/vm/31-install-races.sh; review H1 and M1). Built in the
 * VM test like iopaths.c; run unprivileged in a pod.
 *
 *   installrace echod PORT
 *       Echo server (dual-stack): a thread per connection echoes until EOF.
 *   installrace spin HOST PORT SECS CLIENTS MARKER
 *       CLIENTS threads loop: socket, connect, send one 64-byte message,
 *       read its echo, close. Per client, three more threads spin on that
 *       client's current fd: setsockopt(SOL_SOCKET, SO_RCVLOWAT, 1),
 *       setsockopt(SOL_SOCKET, SO_PASSCRED, 1), getsockopt(SOL_SOCKET,
 *       SO_PEERNAME) (both upstream paths read sk->sk_socket unlocked).
 *       Fails on a wrong echo or any error (keys are ready: none expected).
 *   installrace passcred HOST PORT ITERS MARKER
 *       Per connection: a second thread waits a swept delay after connect()
 *       is called (0 to about the time until the first send() gets through
 *       the gate: handshake, key derivation, install) and sets
 *       SO_PASSCRED=1 once, while the first connects, sends a message and
 *       reads the echo. Then SO_PASSCRED must read 1. Prints how many sets landed before the send() got
 *       through (raced) and how many were lost; exits 1 if any was lost
 *       or a connection failed.
 *   installrace rstd PORT MAXDELAY_US
 *       Accept, wait a random 0..MAXDELAY_US, close with SO_LINGER {1, 0}
 *       (a reset).
 *   installrace rstc HOST PORT ITERS THREADS
 *       THREADS threads connect, then wait in epoll (EPOLLIN, EPOLLRDHUP;
 *       EPOLLHUP and EPOLLERR implied) and close the moment anything is
 *       reported. Exits 1 if a reset never woke the app (20 s).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MSG 64

static void die(const char *what)
{
	fprintf(stderr, "installrace: %s: %s\n", what, strerror(errno));
	exit(2);
}

static struct sockaddr_storage peer;
static socklen_t peer_len;
static const char *marker = "m";

static void resolve(const char *host, const char *port)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai;

	if (getaddrinfo(host, port, &hints, &ai)) {
		fprintf(stderr, "installrace: cannot resolve %s\n", host);
		exit(2);
	}
	memcpy(&peer, ai->ai_addr, ai->ai_addrlen);
	peer_len = ai->ai_addrlen;
	freeaddrinfo(ai);
}

static uint64_t now_us(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

static void set_timeouts(int fd, int secs)
{
	struct timeval tv = { .tv_sec = secs };

	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

static void fill_msg(char *m, unsigned long conn, int tid)
{
	int n = snprintf(m, MSG, "%s:%02d:%08lu:", marker, tid, conn);

	memset(m + n, '.', MSG - 1 - n);
	m[MSG - 1] = '\n';
}

static int read_full(int fd, char *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, buf + got, len - got);

		if (n <= 0)
			return n == 0 ? -2 : -1;
		got += n;
	}
	return 0;
}

/* ---------------------------------------------------------------- echod */

static void *echo_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[16384];
	ssize_t n;

	set_timeouts(fd, 60);
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		if (write(fd, buf, n) != n)
			break;
	close(fd);
	return NULL;
}

static int listen_on(const char *port)
{
	struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_port = htons(atoi(port)) };
	int one = 1, zero = 0, ls = socket(AF_INET6, SOCK_STREAM, 0);

	if (ls < 0)
		die("socket");
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(ls, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	if (bind(ls, (void *)&a, sizeof(a)) || listen(ls, 1024))
		die("bind/listen");
	printf("listening on %s\n", port);
	fflush(stdout);
	return ls;
}

static __attribute__((noreturn)) void cmd_echod(char **av)
{
	int ls = listen_on(av[0]);
	pthread_attr_t at;

	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&at, 64 * 1024);
	for (;;) {
		pthread_t t;
		int c = accept(ls, NULL, NULL);

		if (c < 0)
			continue;
		if (pthread_create(&t, &at, echo_conn, (void *)(intptr_t)c))
			close(c);
	}
}

/* ---------------------------------------------------------------- spin */

struct client {
	int id;
	_Atomic int cur;
	/* Spinners hold it (read) around each call on `cur`; the client takes
	 * it (write) before it closes `cur`, so no spinner ever reaches a
	 * later socket that reused the fd number (another client's, while it
	 * connects).
	 */
	pthread_rwlock_t lk;
	unsigned long conns, ok, errs;
};

static _Atomic int stop;
static _Atomic unsigned long bad_echo;

/* A spinner: setsockopt(SOL_SOCKET, opt, 1) on its client's socket. */
struct spinner {
	struct client *c;
	int opt;
};

static void *spin_setopt(void *arg)
{
	struct spinner *sp = arg;
	struct client *c = sp->c;
	int one = 1;

	while (!atomic_load(&stop)) {
		pthread_rwlock_rdlock(&c->lk);
		int fd = atomic_load(&c->cur);

		if (fd >= 0)
			setsockopt(fd, SOL_SOCKET, sp->opt, &one, sizeof(one));
		pthread_rwlock_unlock(&c->lk);
	}
	return NULL;
}

static void *spin_peername(void *arg)
{
	struct client *c = arg;

	while (!atomic_load(&stop)) {
		pthread_rwlock_rdlock(&c->lk);
		int fd = atomic_load(&c->cur);
		struct sockaddr_storage a;
		socklen_t l = sizeof(a);

		if (fd >= 0)
			getsockopt(fd, SOL_SOCKET, SO_PEERNAME, &a, &l);
		pthread_rwlock_unlock(&c->lk);
	}
	return NULL;
}

static void spin_err(struct client *c, const char *what)
{
	if (c->errs++ < 3)
		fprintf(stderr, "FAIL: client %d conn %lu: %s: %s\n", c->id, c->conns, what,
			errno ? strerror(errno) : "-");
}

static void *spin_client(void *arg)
{
	struct client *c = arg;
	char m[MSG], e[MSG];

	while (!atomic_load(&stop)) {
		int fd = socket(peer.ss_family, SOCK_STREAM, 0);

		if (fd < 0)
			die("socket");
		set_timeouts(fd, 30);
		c->conns++;
		fill_msg(m, c->conns, c->id);
		if (connect(fd, (void *)&peer, peer_len)) {
			spin_err(c, "connect");
			/* The spinners start once connect() returned: the
			 * install runs from here on. A thread that waits for
			 * the socket lock while connect() gates the socket may
			 * be a sender that chose plain TCP, so the module resets
			 * such flows (reset-stale-sender), setsockopt callers
			 * included: not this test's subject.
			 */
		} else if (atomic_store(&c->cur, fd), write(fd, m, MSG) != MSG) {
			spin_err(c, "send");
		} else {
			int r = read_full(fd, e, MSG);

			if (r == 0 && !memcmp(m, e, MSG)) {
				c->ok++;
			} else if (r == 0) {
				atomic_fetch_add(&bad_echo, 1);
				fprintf(stderr, "FAIL: client %d conn %lu: echo differs: %.16s...\n",
					c->id, c->conns, e);
			} else {
				if (r == -2)
					errno = 0;
				spin_err(c, r == -2 ? "recv (EOF)" : "recv");
			}
		}
		pthread_rwlock_wrlock(&c->lk);
		atomic_store(&c->cur, -1);
		pthread_rwlock_unlock(&c->lk);
		close(fd);
	}
	return NULL;
}

static int cmd_spin(char **av)
{
	int secs = atoi(av[2]), n = atoi(av[3]), i;
	struct client *cs = calloc(n, sizeof(*cs));
	pthread_t *ts = calloc(n * 4, sizeof(*ts));
	struct spinner *sps = calloc(n * 2, sizeof(*sps));
	unsigned long conns = 0, ok = 0, errs = 0;

	resolve(av[0], av[1]);
	marker = av[4];
	for (i = 0; i < n; i++) {
		pthread_rwlockattr_t ra;

		pthread_rwlockattr_init(&ra);
		/* The client's close must not wait behind a stream of readers. */
		pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
		pthread_rwlock_init(&cs[i].lk, &ra);
		cs[i].id = i;
		atomic_store(&cs[i].cur, -1);
		pthread_create(&ts[4 * i], NULL, spin_client, &cs[i]);
		sps[2 * i] = (struct spinner){ &cs[i], SO_RCVLOWAT };
		sps[2 * i + 1] = (struct spinner){ &cs[i], SO_PASSCRED };
		pthread_create(&ts[4 * i + 1], NULL, spin_setopt, &sps[2 * i]);
		pthread_create(&ts[4 * i + 2], NULL, spin_setopt, &sps[2 * i + 1]);
		pthread_create(&ts[4 * i + 3], NULL, spin_peername, &cs[i]);
	}
	sleep(secs);
	atomic_store(&stop, 1);
	for (i = 0; i < 4 * n; i++)
		pthread_join(ts[i], NULL);
	for (i = 0; i < n; i++) {
		conns += cs[i].conns;
		ok += cs[i].ok;
		errs += cs[i].errs;
	}
	printf("spin: conns=%lu echo_ok=%lu errors=%lu bad_echo=%lu\n", conns, ok, errs,
	       atomic_load(&bad_echo));
	return atomic_load(&bad_echo) || errs ? 1 : 0;
}

/* ---------------------------------------------------------------- passcred */

static sem_t go, done;
static _Atomic int pc_fd = -1;
static uint64_t pc_delay, pc_set_at;

static void *passcred_setter(void *arg)
{
	int one = 1;

	(void)arg;
	for (;;) {
		uint64_t until;

		sem_wait(&go);
		until = now_us() + pc_delay;
		while (now_us() < until)
			;
		setsockopt(atomic_load(&pc_fd), SOL_SOCKET, SO_PASSCRED, &one, sizeof(one));
		pc_set_at = now_us();
		sem_post(&done);
	}
	return NULL;
}

static int cmd_passcred(char **av)
{
	int iters = atoi(av[2]), i, lost = 0, raced = 0, errs = 0, ok = 0;
	uint64_t gate_us = 2000; /* running mean of connect() called -> send() through */
	pthread_t t;
	char m[MSG], e[MSG];

	resolve(av[0], av[1]);
	marker = av[3];
	srand(getpid());
	sem_init(&go, 0, 0);
	sem_init(&done, 0, 0);
	pthread_create(&t, NULL, passcred_setter, NULL);
	for (i = 0; i < iters; i++) {
		int fd = socket(peer.ss_family, SOCK_STREAM, 0), v = -1;
		socklen_t l = sizeof(v);
		uint64_t t0, t1;

		if (fd < 0)
			die("socket");
		set_timeouts(fd, 30);
		fill_msg(m, i, 0);
		atomic_store(&pc_fd, fd);
		pc_delay = (uint64_t)rand() % (gate_us + gate_us / 2 + 1);
		t0 = now_us();
		sem_post(&go);
		if (connect(fd, (void *)&peer, peer_len)) {
			errs++;
			sem_wait(&done);
			close(fd);
			continue;
		}
		if (write(fd, m, MSG) != MSG) {
			errs++;
			sem_wait(&done);
			close(fd);
			continue;
		}
		t1 = now_us();
		gate_us = (7 * gate_us + (t1 - t0)) / 8;
		if (read_full(fd, e, MSG) || memcmp(m, e, MSG)) {
			errs++;
			sem_wait(&done);
			close(fd);
			continue;
		}
		sem_wait(&done);
		ok++;
		if (pc_set_at <= t1)
			raced++;
		if (getsockopt(fd, SOL_SOCKET, SO_PASSCRED, &v, &l))
			die("getsockopt SO_PASSCRED");
		if (v != 1) {
			lost++;
			fprintf(stderr, "FAIL: conn %d: SO_PASSCRED set %llu us after connect() was called (send() through after %llu us) reads %d after the echo\n",
				i, (unsigned long long)(pc_set_at - t0), (unsigned long long)(t1 - t0), v);
		}
		close(fd);
	}
	printf("passcred: conns=%d echo_ok=%d errors=%d raced=%d lost=%d mean_gate_us=%llu\n",
	       iters, ok, errs, raced, lost, (unsigned long long)gate_us);
	return lost || errs ? 1 : 0;
}

/* ---------------------------------------------------------------- rst */

static __attribute__((noreturn)) void cmd_rstd(char **av)
{
	int ls = listen_on(av[0]);
	long maxd = atol(av[1]);
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	srand(getpid());
	for (;;) {
		int c = accept(ls, NULL, NULL);

		if (c < 0)
			continue;
		if (maxd > 0) {
			struct timespec ts = { 0, (rand() % (maxd + 1)) * 1000L };

			nanosleep(&ts, NULL);
		}
		setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		close(c);
	}
}

static int rst_iters;
static _Atomic int rst_next, rst_woken, rst_errs, rst_stuck;

static void *rst_client(void *arg)
{
	int ep = epoll_create1(0);

	(void)arg;
	if (ep < 0)
		die("epoll_create1");
	while (atomic_fetch_add(&rst_next, 1) < rst_iters) {
		int fd = socket(peer.ss_family, SOCK_STREAM, 0), n;
		struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP }, got;

		if (fd < 0)
			die("socket");
		set_timeouts(fd, 30);
		if (connect(fd, (void *)&peer, peer_len)) {
			atomic_fetch_add(&rst_errs, 1);
			close(fd);
			continue;
		}
		epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
		n = epoll_wait(ep, &got, 1, 20000);
		if (n == 1)
			atomic_fetch_add(&rst_woken, 1);
		else
			atomic_fetch_add(&rst_stuck, 1);
		/* close() drops the epoll registration with the last reference */
		close(fd);
	}
	close(ep);
	return NULL;
}

static int cmd_rstc(char **av)
{
	int n = atoi(av[3]), i;
	pthread_t *ts = calloc(n, sizeof(*ts));

	resolve(av[0], av[1]);
	rst_iters = atoi(av[2]);
	for (i = 0; i < n; i++)
		pthread_create(&ts[i], NULL, rst_client, NULL);
	for (i = 0; i < n; i++)
		pthread_join(ts[i], NULL);
	printf("rst: conns=%d woken=%d connect_errors=%d never_woken=%d\n", rst_iters,
	       atomic_load(&rst_woken), atomic_load(&rst_errs), atomic_load(&rst_stuck));
	return atomic_load(&rst_stuck) ? 1 : 0;
}

int main(int ac, char **av)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (ac >= 3 && !strcmp(av[1], "echod"))
		cmd_echod(av + 2);
	if (ac >= 7 && !strcmp(av[1], "spin"))
		return cmd_spin(av + 2);
	if (ac >= 6 && !strcmp(av[1], "passcred"))
		return cmd_passcred(av + 2);
	if (ac >= 4 && !strcmp(av[1], "rstd"))
		cmd_rstd(av + 2);
	if (ac >= 6 && !strcmp(av[1], "rstc"))
		return cmd_rstc(av + 2);
	fprintf(stderr, "usage: see the comment at the top of installrace.c\n");
	return 2;
}
