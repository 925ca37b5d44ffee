/*
 * upcase_client.c - the tutorial's client, written as well as plain C allows.
 *
 * It connects to the server, then for every line read from stdin (typed, or
 * piped in) it sends the line, waits for the whole reply and prints it. At the
 * end of the input it closes the connection and exits 0. Any failure is said on
 * stderr, and the exit status is 1.
 *
 *   cc -Wall -Wextra -O2 -o upcase_client upcase_client.c
 *   ./upcase_client 127.0.0.1 2277        # host (IPv4 or IPv6) and port
 *
 * The points students most often miss are marked "NOTE".
 */
#define _POSIX_C_SOURCE 200809L         /* for getline */
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

/* Send all `len` bytes: send() may take fewer, or be interrupted (EINTR). */
static int send_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
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

/* Connect to host:port, trying every address the name resolves to.
 * Returns the socket, or -1 after saying why on stderr. */
static int connect_to(const char *host, const char *port)
{
    struct addrinfo hints, *res, *ai;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;        /* IPv4 or IPv6 */
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "cannot resolve %s: %s\n", host, gai_strerror(rc));
        return -1;
    }
    int fd = -1, err = 0;
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        /* NOTE: check connect's result. Without a connection every send and
         * recv after it fails, and a client that does not look prints nothing
         * and "succeeds". */
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        err = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        fprintf(stderr, "cannot connect to %s port %s: %s\n", host, port,
                strerror(err));
    return fd;
}

int main(int argc, char **argv)
{
    const char *host = argc > 1 ? argv[1] : "127.0.0.1";
    const char *port = argc > 2 ? argv[2] : "2277";

    signal(SIGPIPE, SIG_IGN);   /* a closed connection is an error, not a crash */

    int fd = connect_to(host, port);
    if (fd < 0)
        return 1;

    char *line = NULL;          /* NOTE: getline grows the buffer to fit any line, */
    size_t cap = 0;             /* where fgets into a fixed buffer cuts long ones  */
    ssize_t len;
    char reply[4096];
    /* NOTE: stop when getline returns -1: the input has ended. */
    while ((len = getline(&line, &cap, stdin)) != -1) {
        /* NOTE: send exactly the bytes read: `len`, not sizeof a buffer, and
         * not the string's NUL terminator. */
        if (send_all(fd, line, (size_t)len) < 0) {
            perror("send");
            return 1;
        }
        /* The server sends back as many lines as it got: a line ending in
         * '\n' is answered by a reply ending in '\n'. One without (the last
         * line of a file with no final newline) is answered when we say we
         * have finished sending (shutdown), by everything up to the server's
         * close. */
        int want_newline = line[len - 1] == '\n';
        if (!want_newline)
            shutdown(fd, SHUT_WR);
        /* NOTE: one recv() is not the whole reply; it may come in pieces,
         * and slowly. Loop until the reply's '\n' (or the server's close). */
        for (;;) {
            ssize_t n = recv(fd, reply, sizeof reply, 0);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                perror("recv");
                return 1;
            }
            /* NOTE: recv returning 0 means the server closed the connection.
             * Print only bytes recv returned, never a buffer it did not fill. */
            if (n == 0) {
                if (want_newline) {
                    fprintf(stderr, "the server closed the connection before "
                                    "replying in full\n");
                    return 1;
                }
                break;
            }
            /* The bytes exactly as they came: no per-character processing, so
             * UTF-8 (bytes above 0x7F) survives. */
            fwrite(reply, 1, (size_t)n, stdout);
            if (want_newline && memchr(reply, '\n', (size_t)n) != NULL)
                break;
        }
        fflush(stdout);
    }
    if (ferror(stdin)) {
        perror("reading stdin");
        return 1;
    }
    free(line);
    close(fd);
    return 0;
}
