/*
 * upcase_server.c - the tutorial's server, written as well as plain C allows.
 *
 * It listens on a TCP port, and for every client that connects it sends back
 * whatever the client sends, with a-z turned into A-Z (C's toupper: ASCII only,
 * so grade it with `upcase check --ascii`). It never waits for a newline: each
 * recv() is answered at once, so messages of any length work.
 *
 *   cc -Wall -Wextra -O2 -o upcase_server upcase_server.c
 *   ./upcase_server 2277            # port (default 2277)
 *   ./upcase_server 2277 0.0.0.0    # also accept clients from other machines
 *
 * The points students most often miss are marked "NOTE".
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

/* Send all `len` bytes. NOTE: send() may take fewer bytes than asked (a "partial
 * send"), and may be interrupted by a signal (EINTR): loop until all are gone.
 * Returns 0, or -1 if the connection failed. */
static int send_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        /* MSG_NOSIGNAL: a client that has gone makes send() fail with EPIPE
         * instead of killing the whole server with SIGPIPE. */
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Serve one client until it has finished sending, then close. */
static void serve(int fd)
{
    char buf[4096];
    for (;;) {
        /* NOTE: one recv() is not one message. The bytes of a message may come
         * in several pieces, and several messages may come in one: loop, and
         * answer exactly the bytes each call returned. */
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n == 0)
            break;                      /* the client has finished sending */
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("recv");             /* e.g. the client reset: drop it */
            break;
        }
        for (ssize_t i = 0; i < n; i++)
            buf[i] = (char)toupper((unsigned char)buf[i]);
        if (send_all(fd, buf, (size_t)n) < 0) {
            perror("send");
            break;
        }
    }
    close(fd);  /* everything was sent: this FIN tells the client we are done */
}

int main(int argc, char **argv)
{
    const char *port_arg = argc > 1 ? argv[1] : "2277";
    const char *host = argc > 2 ? argv[2] : "127.0.0.1";
    char *end;
    long port = strtol(port_arg, &end, 10);
    if (*port_arg == '\0' || *end != '\0' || port < 1 || port > 65535) {
        fprintf(stderr, "usage: %s [PORT [ADDRESS]]  (PORT 1-65535)\n", argv[0]);
        return 2;
    }

    /* NOTE: ignore SIGPIPE as well, in case a write reaches a closed socket some
     * other way; and let the kernel reap finished children (no zombies). */
    signal(SIGPIPE, SIG_IGN);
    signal(SIGCHLD, SIG_IGN);

    /* socket, bind, listen, accept: exactly the tutorial's four steps. */
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    if (lfd < 0) {
        perror("socket");
        return 1;
    }
    /* SO_REUSEADDR: restarting the server does not have to wait for old
     * connections to time out before it can bind the port again. */
    int yes = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);

    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)port);
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        fprintf(stderr, "%s: not an IPv4 address: %s\n", argv[0], host);
        return 2;
    }
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        fprintf(stderr, "%s: cannot bind %s:%ld: %s\n", argv[0], host, port,
                strerror(errno));
        return 1;
    }
    if (listen(lfd, 128) < 0) {
        perror("listen");
        return 1;
    }
    fprintf(stderr, "listening on %s:%ld\n", host, port);

    for (;;) {
        int cfd = accept(lfd, NULL, NULL);
        if (cfd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            perror("accept");           /* e.g. out of descriptors: try again */
            sleep(1);
            continue;
        }
        /* NOTE: one process per client, so that a client that stays connected
         * does not keep every other client waiting. */
        pid_t pid = fork();
        if (pid == 0) {
            close(lfd);                 /* the child serves; it does not accept */
            serve(cfd);
            _exit(0);
        }
        if (pid < 0)
            perror("fork");
        close(cfd);                     /* the parent goes straight back to accept */
    }
}
