/*
 * echo-server.c -- the reference ceiling of `make bench`: a raw epoll
 * server on a Unix socket that writes back every byte it reads.  With one
 * request line in flight per connection this is the round-trip limit of
 * the socket and the scheduler, which no real server can beat; the daemon
 * and redis are measured as fractions of it.  Single-threaded, like the
 * daemon.
 *
 *   echo-server SOCKET     (runs until killed)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static void
echo_conn(int ep, int fd)
{
	char buf[65536];
	ssize_t n, w, off;

	while ((n = read(fd, buf, sizeof buf)) > 0) {
		for (off = 0; off < n; off += w) {
			if ((w = write(fd, buf + off, (size_t)(n - off))) < 0) {
				if (errno == EAGAIN || errno == EINTR) {
					w = 0;
					continue;
				}
				goto drop;
			}
		}
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
drop:
	epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
	close(fd);
}

int
main(int argc, char **argv)
{
	struct sockaddr_un sa;
	struct epoll_event ev, evs[64];
	int lfd, ep, n, i, fd;

	if (argc != 2) {
		fprintf(stderr, "usage: echo-server SOCKET\n");
		return 2;
	}
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", argv[1]);
	unlink(argv[1]);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (lfd == -1 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) == -1 ||
	    listen(lfd, 128) == -1) {
		perror(argv[1]);
		return 1;
	}
	ep = epoll_create1(0);
	ev.events = EPOLLIN;
	ev.data.fd = lfd;
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	for (;;) {
		n = epoll_wait(ep, evs, 64, -1);
		for (i = 0; i < n; i++) {
			if (evs[i].data.fd != lfd) {
				echo_conn(ep, evs[i].data.fd);
				continue;
			}
			while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
				ev.events = EPOLLIN;
				ev.data.fd = fd;
				epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
			}
		}
	}
}
