// SPDX-License-Identifier: GPL-2.0
/* iopaths: drive one TCP echo exchange through a chosen I/O path, right
 * after connect() returns (the socket may still be gated: keys not in yet).
 *
 *   iopaths MODE HOST PORT MESSAGE
 *
 * MODE: write    write(2) then read(2)
 *       splice   the message spliced into the socket from a pipe, the echo
 *                spliced out of the socket into a pipe (tcp/tls splice_read)
 *       uring    io_uring IORING_OP_SEND then IORING_OP_RECV (raw syscalls,
 *                no liburing), submitted together
 * Prints the echo to stdout; exits non-zero with a message on any error.
 * Half-closes after sending, reads until EOF. Test helper, built in the VM
 * test (tests/vm/18-io-paths.sh). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

static void die(const char *what)
{
	fprintf(stderr, "iopaths: %s: %s\n", what, strerror(errno));
	exit(1);
}

static int dial(const char *host, const char *port)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai;
	int fd;

	if (getaddrinfo(host, port, &hints, &ai))
		die("getaddrinfo");
	fd = socket(ai->ai_family, SOCK_STREAM, 0);
	if (fd < 0)
		die("socket");
	if (connect(fd, ai->ai_addr, ai->ai_addrlen))
		die("connect");
	freeaddrinfo(ai);
	return fd;
}

static void drain_read(int fd)
{
	char buf[65536];
	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf))) > 0)
		fwrite(buf, 1, n, stdout);
	if (n < 0)
		die("read");
}

static void do_write(int fd, const char *msg)
{
	size_t len = strlen(msg), off = 0;

	while (off < len) {
		ssize_t n = write(fd, msg + off, len - off);
		if (n < 0)
			die("write");
		off += n;
	}
	shutdown(fd, SHUT_WR);
	drain_read(fd);
}

static void do_splice(int fd, const char *msg)
{
	int in[2], out[2];
	size_t len = strlen(msg);
	ssize_t n;
	char buf[65536];

	if (pipe(in) || pipe(out))
		die("pipe");
	if (write(in[1], msg, len) != (ssize_t)len)
		die("write pipe");
	close(in[1]);
	while ((n = splice(in[0], NULL, fd, NULL, 65536, 0)) > 0)
		;
	if (n < 0)
		die("splice to socket");
	shutdown(fd, SHUT_WR);
	for (;;) {
		n = splice(fd, NULL, out[1], NULL, 65536, 0);
		if (n < 0)
			die("splice from socket");
		if (n == 0)
			break;
		if (read(out[0], buf, n) != n)
			die("read pipe");
		fwrite(buf, 1, n, stdout);
	}
}

struct ring {
	int fd;
	unsigned *sq_tail, *sq_mask, *sq_array, *cq_head, *cq_tail, *cq_mask;
	struct io_uring_sqe *sqes;
	struct io_uring_cqe *cqes;
};

static void ring_init(struct ring *r)
{
	struct io_uring_params p;
	void *sq, *cq;

	memset(&p, 0, sizeof(p));
	r->fd = syscall(__NR_io_uring_setup, 8, &p);
	if (r->fd < 0)
		die("io_uring_setup");
	sq = mmap(NULL, p.sq_off.array + p.sq_entries * sizeof(unsigned),
		  PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd,
		  IORING_OFF_SQ_RING);
	cq = mmap(NULL, p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe),
		  PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd,
		  IORING_OFF_CQ_RING);
	r->sqes = mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe),
		       PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd,
		       IORING_OFF_SQES);
	if (sq == MAP_FAILED || cq == MAP_FAILED || r->sqes == MAP_FAILED)
		die("mmap ring");
	r->sq_tail = (unsigned *)((char *)sq + p.sq_off.tail);
	r->sq_mask = (unsigned *)((char *)sq + p.sq_off.ring_mask);
	r->sq_array = (unsigned *)((char *)sq + p.sq_off.array);
	r->cq_head = (unsigned *)((char *)cq + p.cq_off.head);
	r->cq_tail = (unsigned *)((char *)cq + p.cq_off.tail);
	r->cq_mask = (unsigned *)((char *)cq + p.cq_off.ring_mask);
	r->cqes = (struct io_uring_cqe *)((char *)cq + p.cq_off.cqes);
}

static void ring_push(struct ring *r, int op, int fd, void *buf, unsigned len, unsigned long long tag)
{
	unsigned tail = *r->sq_tail, i = tail & *r->sq_mask;
	struct io_uring_sqe *e = &r->sqes[i];

	memset(e, 0, sizeof(*e));
	e->opcode = op;
	e->fd = fd;
	e->addr = (unsigned long)buf;
	e->len = len;
	e->user_data = tag;
	r->sq_array[i] = i;
	__atomic_store_n(r->sq_tail, tail + 1, __ATOMIC_RELEASE);
}

/* Submit what is queued and wait for one completion; returns its result. */
static int ring_wait(struct ring *r, unsigned submit, unsigned long long *tag)
{
	unsigned head;
	struct io_uring_cqe *c;
	int res;

	if (syscall(__NR_io_uring_enter, r->fd, submit, 1, IORING_ENTER_GETEVENTS, NULL, 0) < 0)
		die("io_uring_enter");
	head = *r->cq_head;
	while (head == __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE))
		if (syscall(__NR_io_uring_enter, r->fd, 0, 1, IORING_ENTER_GETEVENTS, NULL, 0) < 0)
			die("io_uring_enter");
	c = &r->cqes[head & *r->cq_mask];
	res = c->res;
	*tag = c->user_data;
	__atomic_store_n(r->cq_head, head + 1, __ATOMIC_RELEASE);
	return res;
}

static void do_uring(int fd, const char *msg)
{
	struct ring r;
	static char buf[65536];
	size_t len = strlen(msg);
	unsigned long long tag;
	int res, sent = 0, submit;

	ring_init(&r);
	/* Send and receive submitted together, right after connect(). */
	ring_push(&r, IORING_OP_SEND, fd, (void *)msg, len, 1);
	ring_push(&r, IORING_OP_RECV, fd, buf, sizeof(buf), 2);
	submit = 2;
	for (;;) {
		res = ring_wait(&r, submit, &tag);
		submit = 0;
		if (res < 0) {
			errno = -res;
			die(tag == 1 ? "io_uring send" : "io_uring recv");
		}
		if (tag == 1) {
			if ((size_t)res != len) {
				errno = EIO;
				die("io_uring short send");
			}
			sent = 1;
			shutdown(fd, SHUT_WR);
			continue;
		}
		if (res == 0) {
			if (!sent) {
				errno = EPIPE;
				die("io_uring recv: EOF before the send completed");
			}
			break;
		}
		fwrite(buf, 1, res, stdout);
		ring_push(&r, IORING_OP_RECV, fd, buf, sizeof(buf), 2);
		submit = 1;
	}
}

int main(int argc, char **argv)
{
	int fd;

	if (argc != 5) {
		fprintf(stderr, "usage: iopaths write|splice|uring HOST PORT MESSAGE\n");
		return 2;
	}
	fd = dial(argv[2], argv[3]);
	if (!strcmp(argv[1], "write"))
		do_write(fd, argv[4]);
	else if (!strcmp(argv[1], "splice"))
		do_splice(fd, argv[4]);
	else if (!strcmp(argv[1], "uring"))
		do_uring(fd, argv[4]);
	else {
		fprintf(stderr, "iopaths: unknown mode %s\n", argv[1]);
		return 2;
	}
	fflush(stdout);
	return 0;
}
