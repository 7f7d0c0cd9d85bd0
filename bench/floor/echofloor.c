/*
 * echofloor: the floor of a proxy's client side on this machine, for bench/compare.sh.
 *
 * A minimal Pyro4 echo in C that parses nothing but the 24-byte header: it answers a
 * CONNECT with CONNECTOK and an INVOKE with RESULT, each made of the request's own bytes
 * (message type + 1, checksum + 1). Every call costs it one recv and one send on the
 * client's socket and a share of an epoll_wait: the system calls a proxy must make on
 * its client side for every call, before any work for the backend. Its CPU per call is
 * what those alone cost here. THREADS threads (default 2), each with its own
 * SO_REUSEPORT listener and level-triggered epoll, as HAProxy's threads have.
 *
 *   echofloor HOST PORT [THREADS]
 *
 * Not a daemon to use: no Pyro4 object, no limits beyond its buffer (a message over it
 * closes that connection).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

enum { HEADER = 24, BUF = 1 << 20, EVENTS = 256, MAX_THREADS = 64 };

struct conn {
	int fd;
	size_t len; /* bytes of buf read and not yet answered */
	unsigned char buf[BUF];
};

static struct sockaddr_in addr;

static void drop(struct conn *c) {
	close(c->fd); /* also takes it out of the epoll set */
	free(c);
}

/* sendall writes n bytes of p to the non-blocking socket fd, waiting for it when full. */
static int sendall(int fd, const unsigned char *p, size_t n) {
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EAGAIN) {
			/* rare: a reply larger than the socket buffer */
			struct pollfd p = {.fd = fd, .events = POLLOUT};
			poll(&p, 1, -1);
			continue;
		}
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* readable reads what came on c and answers every whole message in it with one send. */
static int readable(struct conn *c) {
	ssize_t r = recv(c->fd, c->buf + c->len, BUF - c->len, 0);
	if (r < 0 && errno == EAGAIN)
		return 0;
	if (r <= 0)
		return -1;
	c->len += (size_t)r;
	size_t off = 0;
	while (c->len - off >= HEADER) {
		unsigned char *h = c->buf + off;
		if (memcmp(h, "PYRO", 4) != 0)
			return -1;
		size_t data = (size_t)h[12] << 24 | (size_t)h[13] << 16 | (size_t)h[14] << 8 | h[15];
		size_t ann = (size_t)h[18] << 8 | h[19];
		size_t size = HEADER + ann + data;
		if (size > BUF)
			return -1;
		if (c->len - off < size)
			break;
		h[7] += 1; /* CONNECT (1) -> CONNECTOK (2), INVOKE (4) -> RESULT (5) */
		unsigned sum = ((unsigned)h[22] << 8 | h[23]) + 1;
		h[22] = (unsigned char)(sum >> 8);
		h[23] = (unsigned char)sum;
		off += size;
	}
	if (off == 0)
		return 0;
	if (sendall(c->fd, c->buf, off) < 0)
		return -1;
	memmove(c->buf, c->buf + off, c->len - off);
	c->len -= off;
	return 0;
}

static void *serve(void *arg) {
	(void)arg;
	int one = 1;
	int ln = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (ln < 0 || setsockopt(ln, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0 ||
	    setsockopt(ln, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
	    bind(ln, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(ln, 1024) < 0) {
		perror("echofloor: listen");
		exit(1);
	}
	int ep = epoll_create1(0);
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, ln, &ev) < 0) {
		perror("echofloor: epoll");
		exit(1);
	}
	struct epoll_event evs[EVENTS];
	for (;;) {
		int n = epoll_wait(ep, evs, EVENTS, -1);
		if (n < 0 && errno != EINTR) {
			perror("echofloor: epoll_wait");
			exit(1);
		}
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			if (c != NULL) {
				if (readable(c) < 0)
					drop(c);
				continue;
			}
			int fd = accept4(ln, NULL, NULL, SOCK_NONBLOCK);
			if (fd < 0)
				continue;
			c = calloc(1, sizeof *c);
			struct epoll_event cev = {.events = EPOLLIN, .data.ptr = c};
			if (c == NULL || setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0 ||
			    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev) < 0) {
				close(fd);
				free(c);
				continue;
			}
			c->fd = fd;
		}
	}
	return NULL;
}

int main(int argc, char **argv) {
	if (argc < 3 || argc > 4) {
		fprintf(stderr, "usage: echofloor HOST PORT [THREADS]\n");
		return 2;
	}
	int threads = argc == 4 ? atoi(argv[3]) : 2;
	addr.sin_family = AF_INET;
	addr.sin_port = htons((unsigned short)atoi(argv[2]));
	if (inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1 || threads < 1 || threads > MAX_THREADS) {
		fprintf(stderr, "echofloor: bad HOST or THREADS\n");
		return 2;
	}
	pthread_t t[MAX_THREADS];
	for (int i = 0; i < threads; i++)
		if (pthread_create(&t[i], NULL, serve, NULL) != 0) {
			perror("echofloor: thread");
			return 1;
		}
	for (int i = 0; i < threads; i++)
		pthread_join(t[i], NULL);
	return 0;
}
