/* A real tgtd for the scsi-block and reservation tests, driven through
 * tgtd-helper.sh (start, stop, freeze, ...) on a free loopback port. */
#ifndef STORMIG_TESTS_TGT_HARNESS_H
#define STORMIG_TESTS_TGT_HARNESS_H

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* Runs "sh HELPER CMD DIR PORT IMG IQN"; returns the helper's exit code. */
static inline int tgt_helper(const char *helper, const char *cmd,
                             const char *dir, int port, const char *img,
                             const char *iqn)
{
    char line[512];
    snprintf(line, sizeof(line), "sh %s %s %s %d %s %s", helper, cmd, dir,
             port, img, iqn);
    int rc = system(line);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* A TCP port on 127.0.0.1 that was free a moment ago, or -1. */
static inline int tgt_free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(a);
    int port = -1;
    if (s >= 0 && bind(s, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(s, (struct sockaddr *)&a, &len) == 0) {
        port = ntohs(a.sin_port);
    }
    if (s >= 0) {
        close(s);
    }
    return port;
}

#endif
