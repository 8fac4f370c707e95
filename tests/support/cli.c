/*
 * cli.c — see cli.h. Output goes to unlinked temporary files rather than pipes, so a chatty child
 * can never block on a full pipe while the parent waits for it.
 */
#include "cli.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

const char *fa_cli_bin(void)
{
    const char *bin = getenv("FASTERAPID_BIN");
    return bin && *bin ? bin : "build/fasterapid";
}

const char *fa_cli_src(const char *rel)
{
    static char path[4096];
    const char *dir = getenv("FA_SRCDIR");
    if (dir && *dir)
        snprintf(path, sizeof(path), "%s/%s", dir, rel);
    else
        snprintf(path, sizeof(path), "%s", rel);
    return path;
}

static int temp_fd(void)
{
    char name[] = "/tmp/fa-cli-XXXXXX";
    int fd = mkstemp(name);
    if (fd >= 0)
        unlink(name);
    return fd;
}

static char *slurp(int fd)
{
    off_t size = lseek(fd, 0, SEEK_END);
    char *buf = malloc((size_t)(size > 0 ? size : 0) + 1);
    ssize_t n = pread(fd, buf, (size_t)(size > 0 ? size : 0), 0);
    buf[n > 0 ? n : 0] = '\0';
    close(fd);
    return buf;
}

fa_cli_result_t fa_cli_run(const char *const *args)
{
    fa_cli_result_t r = {.status = -1};
    size_t n = 0;
    while (args[n])
        n++;
    const char **argv = calloc(n + 2, sizeof(*argv));
    argv[0] = fa_cli_bin();
    memcpy(argv + 1, args, n * sizeof(*argv));
    int out = temp_fd(), err = temp_fd();
    pid_t pid = fork();
    if (pid == 0) {
        int in = open("/dev/null", O_RDONLY);
        dup2(in, 0);
        dup2(out, 1);
        dup2(err, 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int ws = 0;
    while (waitpid(pid, &ws, 0) < 0)
        ;
    r.status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
    r.out = slurp(out);
    r.err = slurp(err);
    free(argv);
    return r;
}

void fa_cli_result_free(fa_cli_result_t *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}
