/*
 * srcds_standin: a stand-in for the Left 4 Dead 2 dedicated server
 * (srcds_linux) used by unitgate's end-to-end tests, built as a static
 * 32-bit i386 binary like the real engine:
 *
 *     gcc -m32 -static -O2 -o srcds_linux srcds_standin.c
 *
 * It takes srcds's own arguments (-game DIR, -port N, +exec CFG, others
 * ignored), reads DIR/cfg/CFG relative to its working directory the way
 * the engine does (fails if it is missing), binds UDP and TCP port N on all
 * addresses, and answers every TCP connection and every UDP datagram with
 * one line: "srcds-standin port=N hostname=H" (H from the config's
 * `hostname "..."` line). It runs until SIGTERM.
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void die(const char *what) {
    fprintf(stderr, "srcds_standin: %s: %s\n", what, strerror(errno));
    exit(1);
}

int main(int argc, char **argv) {
    const char *game = "left4dead2", *cfg = "server.cfg";
    long port = 27015;
    for (int i = 1; i + 1 < argc; i++) {
        if (!strcmp(argv[i], "-game")) game = argv[++i];
        else if (!strcmp(argv[i], "-port")) port = strtol(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "+exec")) cfg = argv[++i];
    }
    if (port <= 0 || port > 65535) { fprintf(stderr, "srcds_standin: bad -port\n"); return 2; }

    char path[4096], line[512], hostname[256] = "unnamed";
    snprintf(path, sizeof path, "%s/cfg/%s", game, cfg);
    FILE *f = fopen(path, "r");
    if (!f) die(path);
    while (fgets(line, sizeof line, f)) {
        char *q;
        if (!strncmp(line, "hostname", 8) && (q = strchr(line, '"'))) {
            char *end = strchr(q + 1, '"');
            if (end) { *end = 0; snprintf(hostname, sizeof hostname, "%s", q + 1); }
        }
    }
    fclose(f);

    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((unsigned short)port),
                                .sin_addr.s_addr = htonl(INADDR_ANY) };
    int one = 1;
    int udp = socket(AF_INET, SOCK_DGRAM, 0);
    if (udp < 0 || bind(udp, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind udp");
    int tcp = socket(AF_INET, SOCK_STREAM, 0);
    if (tcp < 0) die("socket tcp");
    setsockopt(tcp, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(tcp, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(tcp, 16) < 0) die("bind tcp");

    char reply[400];
    int n = snprintf(reply, sizeof reply, "srcds-standin port=%ld hostname=%s\n", port, hostname);
    printf("srcds_standin: %s listening on udp+tcp port %ld (%d-bit)\n", hostname, port,
           (int)(sizeof(void *) * 8));
    fflush(stdout);

    struct pollfd fds[2] = { { .fd = udp, .events = POLLIN }, { .fd = tcp, .events = POLLIN } };
    for (;;) {
        if (poll(fds, 2, -1) < 0) { if (errno == EINTR) continue; die("poll"); }
        if (fds[0].revents & POLLIN) {
            char buf[512];
            struct sockaddr_in from;
            socklen_t len = sizeof from;
            if (recvfrom(udp, buf, sizeof buf, 0, (struct sockaddr *)&from, &len) >= 0)
                sendto(udp, reply, (size_t)n, 0, (struct sockaddr *)&from, len);
        }
        if (fds[1].revents & POLLIN) {
            int c = accept(tcp, NULL, NULL);
            if (c >= 0) { (void)!write(c, reply, (size_t)n); close(c); }
        }
    }
}
