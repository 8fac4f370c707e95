/*
 * master.c — the master process.
 *
 * The master loads the config, creates the shared aggregator, opens one SO_REUSEPORT socket per
 * worker and listen address, forks the workers and supervises them from a small poll(2) loop fed by
 * a signalfd and one readiness pipe per worker. It never runs libev, so every worker owns a clean
 * default loop after fork. Listening sockets are never closed while a worker may serve them, so a
 * respawn or a reload never resets a queued connection.
 *
 * Reload (SIGHUP): the config is read and compiled again; if anything is wrong the errors are
 * logged and the running generation keeps serving. Otherwise a new generation of workers starts on
 * the same sockets; once all of them accept, the old generation is told to drain and stop.
 */
#include "master.h"
#include "agg.h"
#include "alloc.h"
#include "app.h"
#include "counters.h"
#include "cpu.h"
#include "listener.h"
#include "log.h"
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#define MAX_PROCS 512
#define MAX_GROUPS 32
#define MAX_SHARDS 256
#define READY_TIMEOUT 15.0
#define KILL_GRACE 5.0
#define STATUS_INTERVAL 5.0 /* seconds between STATUS= updates to systemd while serving */

static_assert(MAX_PROCS == FA_COUNTERS_SLOTS, "one counters slot per process entry");

typedef struct {
    pid_t pid;            /* 0: slot waiting for a respawn */
    unsigned slot, gen, shard;
    int ready_fd;         /* read end of the readiness pipe, -1 once read */
    bool ready, stopping, used;
    double spawned_at, respawn_at, backoff;
} proc_t;

typedef struct {
    fa_config_t *config;
    fa_app_t *app;
    unsigned nworkers;
    unsigned gen;
} generation_t;

typedef struct {
    fa_listen_t listen; /* as configured (port may be 0) */
    uint16_t port;      /* as bound */
    int fds[MAX_PROCS];
    unsigned nfds;
} group_t;

typedef struct {
    fa_master_opts_t opts;
    generation_t cur, next; /* next.config != NULL while a reload is starting */
    double next_deadline;
    int cpus[1024];
    unsigned ncpus;
    group_t groups[MAX_GROUPS];
    unsigned ngroups;
    proc_t procs[MAX_PROCS];
    fa_agg_t *agg;
    fa_counters_t *counters;
    unsigned nshards;
    int sfd;
    bool stopping;
    double stop_deadline;
    double next_snapshot;
    bool announced_ready;
    double next_status;
    uint64_t status_requests; /* requests in the last STATUS= sent */
} master_t;

static double now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- sockets ---- */

static bool same_listen(const fa_listen_t *a, const fa_listen_t *b)
{
    return a->addrlen == b->addrlen && memcmp(&a->addr, &b->addr, a->addrlen) == 0;
}

/* Makes sure every address of config has at least n sockets; false (logged) on a bind error. */
static bool ensure_sockets(master_t *m, const fa_config_t *config, unsigned n)
{
    for (size_t i = 0; i < config->server.nlisten; i++) {
        const fa_listen_t *l = &config->server.listen[i];
        group_t *g = NULL;
        for (unsigned j = 0; j < m->ngroups; j++)
            if (same_listen(&m->groups[j].listen, l))
                g = &m->groups[j];
        if (!g) {
            if (m->ngroups == MAX_GROUPS) {
                fa_log_error("too many listen addresses");
                return false;
            }
            g = &m->groups[m->ngroups++];
            memset(g, 0, sizeof(*g));
            g->listen = *l;
        }
        while (g->nfds < n) {
            char err[256];
            int fd = fa_listener_open(&g->listen, config->server.backlog, &g->port, err,
                                      sizeof(err));
            if (fd < 0) {
                fa_log_error("%s", err);
                if (g->nfds == 0)
                    m->ngroups--; /* nothing opened: forget the group */
                return false;
            }
            g->fds[g->nfds++] = fd;
        }
        char name[80];
        fa_listener_name(&g->listen, g->port, name, sizeof(name));
        fa_log_info("listening on %s (%u sockets)", name, g->nfds);
    }
    return true;
}

/* The sockets worker slot serves in a generation: the i-th ones of each configured address, plus
 * every further socket of the group congruent to slot (when a reload lowered the worker count). */
static unsigned slot_fds(master_t *m, const generation_t *g, unsigned slot, int *fds, unsigned max)
{
    unsigned n = 0;
    for (size_t i = 0; i < g->config->server.nlisten; i++)
        for (unsigned j = 0; j < m->ngroups; j++)
            if (same_listen(&m->groups[j].listen, &g->config->server.listen[i]))
                for (unsigned k = slot; k < m->groups[j].nfds && n < max; k += g->nworkers)
                    fds[n++] = m->groups[j].fds[k];
    return n;
}

/* ---- processes ---- */

static proc_t *proc_alloc(master_t *m)
{
    for (unsigned i = 0; i < MAX_PROCS; i++)
        if (!m->procs[i].used) {
            memset(&m->procs[i], 0, sizeof(m->procs[i]));
            m->procs[i].used = true;
            m->procs[i].ready_fd = -1;
            return &m->procs[i];
        }
    return NULL;
}

static void child_main(master_t *m, const generation_t *g, proc_t *p, int ready_wfd)
{
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    close(m->sfd);
    for (unsigned i = 0; i < MAX_PROCS; i++)
        if (m->procs[i].used && m->procs[i].ready_fd >= 0)
            close(m->procs[i].ready_fd);

    char tag[16];
    snprintf(tag, sizeof(tag), "w%u", p->slot);
    fa_log_set_tag(tag);
    if (g->config->server.pin_workers && m->ncpus > 0) {
        int cpu = m->cpus[p->slot % m->ncpus];
        int rc = fa_cpu_pin(cpu);
        if (rc < 0)
            fa_log_warn("cannot pin to CPU %d: %s", cpu, strerror(-rc));
    }
    int fds[MAX_PROCS];
    unsigned nfds = slot_fds(m, g, p->slot, fds, MAX_PROCS);
    static fa_worker_t w; /* lives as long as the process */
    w.id = p->slot;
    w.shard = p->shard;
    w.generation = g->gen;
    w.config = g->config;
    w.app = g->app;
    w.agg = m->agg;
    w.counters = m->counters;
    w.counter_slot = fa_counters_slot(m->counters, (unsigned)(p - m->procs));
    w.ready_fd = ready_wfd;
    exit(fa_worker_run(&w, fds, nfds));
}

static bool spawn(master_t *m, const generation_t *g, proc_t *p)
{
    int shard = fa_agg_shard_claim(m->agg);
    if (shard < 0) {
        fa_log_error("no free aggregator shard for worker %u", p->slot);
        return false;
    }
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) < 0) {
        fa_log_error("pipe: %s", strerror(errno));
        fa_agg_shard_release(m->agg, (unsigned)shard);
        return false;
    }
    p->shard = (unsigned)shard;
    p->gen = g->gen;
    p->ready = false;
    p->stopping = false;
    /* The slot is marked live before fork so that the worker's first response is never missed. */
    (void)fa_counters_slot_open(m->counters, (unsigned)(p - m->procs), p->slot, g->gen);
    pid_t pid = fork();
    if (pid < 0) {
        fa_log_error("fork: %s", strerror(errno));
        close(pfd[0]);
        close(pfd[1]);
        fa_agg_shard_release(m->agg, (unsigned)shard);
        fa_counters_slot_retire(m->counters, (unsigned)(p - m->procs));
        return false;
    }
    if (pid == 0) {
        close(pfd[0]);
        child_main(m, g, p, pfd[1]);
    }
    close(pfd[1]);
    fa_agg_shard_set_owner(m->agg, p->shard, pid);
    p->pid = pid;
    p->ready_fd = pfd[0];
    p->spawned_at = now_mono();
    fa_log_debug("started worker %u (pid %d, generation %u, shard %u)", p->slot, (int)pid, g->gen,
                 p->shard);
    return true;
}

static bool spawn_generation(master_t *m, const generation_t *g)
{
    for (unsigned slot = 0; slot < g->nworkers; slot++) {
        proc_t *p = proc_alloc(m);
        if (!p) {
            fa_log_error("too many worker processes");
            return false;
        }
        p->slot = slot;
        if (!spawn(m, g, p)) {
            p->used = false;
            return false;
        }
    }
    return true;
}

static void signal_gen(master_t *m, unsigned gen, int signo, bool mark_stopping)
{
    for (unsigned i = 0; i < MAX_PROCS; i++) {
        proc_t *p = &m->procs[i];
        if (!p->used || p->gen != gen)
            continue;
        if (mark_stopping)
            p->stopping = true;
        if (p->pid > 0)
            kill(p->pid, signo);
        else if (mark_stopping)
            p->used = false; /* was waiting for a respawn */
    }
}

static unsigned count_gen(master_t *m, unsigned gen, bool ready_only)
{
    unsigned n = 0;
    for (unsigned i = 0; i < MAX_PROCS; i++)
        if (m->procs[i].used && m->procs[i].gen == gen && m->procs[i].pid > 0 &&
            (!ready_only || m->procs[i].ready))
            n++;
    return n;
}

static unsigned count_alive(master_t *m)
{
    unsigned n = 0;
    for (unsigned i = 0; i < MAX_PROCS; i++)
        if (m->procs[i].used && m->procs[i].pid > 0)
            n++;
    return n;
}

static void free_generation(generation_t *g)
{
    if (g->app)
        fa_app_free(g->app);
    if (g->config)
        fa_config_free(g->config);
    memset(g, 0, sizeof(*g));
}

static void describe_status(int status, char *buf, size_t len)
{
    if (WIFSIGNALED(status))
        snprintf(buf, len, "killed by signal %d (%s)%s", WTERMSIG(status), strsignal(WTERMSIG(status)),
                 WCOREDUMP(status) ? ", core dumped" : "");
    else
        snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
}

/* Reaps dead workers: frees their shard after recovery, respawns the unexpected deaths. */
static void reap_children(master_t *m)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        proc_t *p = NULL;
        for (unsigned i = 0; i < MAX_PROCS; i++)
            if (m->procs[i].used && m->procs[i].pid == pid)
                p = &m->procs[i];
        if (!p)
            continue;
        /* Whatever the worker was doing, its shard is made consistent before anyone reuses it. */
        fa_agg_shard_release(m->agg, p->shard);
        fa_counters_slot_retire(m->counters, (unsigned)(p - m->procs));
        if (p->ready_fd >= 0) {
            close(p->ready_fd);
            p->ready_fd = -1;
        }
        char how[96];
        describe_status(status, how, sizeof(how));
        bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        bool current = p->gen == m->cur.gen || (m->next.config && p->gen == m->next.gen);
        if (p->stopping || m->stopping || !current) {
            if (!clean)
                fa_log_warn("worker %u (pid %d) %s while stopping", p->slot, (int)pid, how);
            p->used = false;
            continue;
        }
        if (m->next.config && p->gen == m->next.gen && !p->ready) {
            fa_log_error("new worker %u (pid %d) %s before it was ready", p->slot, (int)pid, how);
            p->used = false;
            continue; /* the reload is abandoned by the main loop */
        }
        double age = now_mono() - p->spawned_at;
        p->backoff = age < 1.0 ? FA_MIN(FA_MAX(p->backoff * 2, 0.1), 5.0) : 0.0;
        p->respawn_at = now_mono() + p->backoff;
        p->pid = 0;
        p->ready = false;
        fa_log_error("worker %u (pid %d) %s; respawning%s", p->slot, (int)pid, how,
                     p->backoff > 0 ? " after a back-off" : "");
    }
}

static void respawn_due(master_t *m)
{
    double now = now_mono();
    for (unsigned i = 0; i < MAX_PROCS; i++) {
        proc_t *p = &m->procs[i];
        if (!p->used || p->pid != 0 || p->respawn_at > now)
            continue;
        const generation_t *g = p->gen == m->cur.gen ? &m->cur : &m->next;
        if (!g->config || !spawn(m, g, p)) {
            p->respawn_at = now + 1.0;
            continue;
        }
    }
}

/* ---- reload ---- */

/* One log line per located error. */
static void log_errors(const fa_errbuf_t *errs)
{
    for (const char *s = errs->text; s && *s;) {
        const char *e = strchr(s, '\n');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        fa_log_error("%.*s", (int)n, s);
        s += n + (e != NULL);
    }
}

static void abandon_reload(master_t *m, const char *why)
{
    fa_log_error("reload failed: %s; keeping the current configuration", why);
    signal_gen(m, m->next.gen, SIGKILL, true);
    free_generation(&m->next);
    sd_notify(0, "READY=1\nSTATUS=reload failed; serving the previous configuration");
}

static void start_reload(master_t *m)
{
    if (m->next.config) {
        fa_log_warn("reload already in progress; SIGHUP ignored");
        return;
    }
    /* systemd >= 253 wants the time of the reload request with RELOADING=1. */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading %s",
               (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000,
               m->opts.config_path);
    fa_log_info("reloading %s", m->opts.config_path);
    fa_errbuf_t errs = {0};
    fa_config_t *config =
        fa_config_load(m->opts.config_path, m->opts.overrides, m->opts.noverrides, &errs);
    fa_app_t *app = config ? fa_app_build(config, &errs) : NULL;
    if (!app) {
        log_errors(&errs);
        fa_errbuf_free(&errs);
        if (config)
            fa_config_free(config);
        fa_log_error("reload failed: configuration has errors; keeping the current one");
        sd_notify(0, "READY=1\nSTATUS=reload failed; serving the previous configuration");
        return;
    }
    fa_errbuf_free(&errs);
    if (config->aggregator.capacity != m->cur.config->aggregator.capacity)
        fa_log_warn("aggregator.capacity changes only at a restart; keeping %zu",
                    m->cur.config->aggregator.capacity);
    fa_log_level = config->log.level;
    m->next.config = config;
    m->next.app = app;
    m->next.nworkers = fa_config_worker_count(config);
    m->next.gen = m->cur.gen + 1;
    m->next_deadline = now_mono() + READY_TIMEOUT;
    if (!ensure_sockets(m, config, m->next.nworkers) || !spawn_generation(m, &m->next))
        abandon_reload(m, "cannot start the new workers");
}

/* All workers of the new generation accept: retire the old one. */
static void finish_reload(master_t *m)
{
    unsigned old = m->cur.gen;
    signal_gen(m, old, SIGTERM, true);
    free_generation(&m->cur);
    m->cur = m->next;
    memset(&m->next, 0, sizeof(m->next));
    fa_log_info("reloaded: generation %u serving with %u workers", m->cur.gen, m->cur.nworkers);
    m->status_requests = fa_counters_requests(m->counters);
    sd_notifyf(0, "READY=1\nSTATUS=serving with %u workers; %llu requests", m->cur.nworkers,
               (unsigned long long)m->status_requests);
}

/* ---- main loop ---- */

static void on_ready_byte(proc_t *p)
{
    char b;
    ssize_t n = read(p->ready_fd, &b, 1);
    close(p->ready_fd);
    p->ready_fd = -1;
    if (n == 1 && b == 'R')
        p->ready = true;
}

/* Tells systemd the worker count and the requests served so far, when the latter changed. */
static void update_status(master_t *m, double now)
{
    m->next_status = now + STATUS_INTERVAL;
    uint64_t n = fa_counters_requests(m->counters);
    if (n == m->status_requests)
        return;
    m->status_requests = n;
    sd_notifyf(0, "STATUS=serving with %u workers; %llu requests", m->cur.nworkers,
               (unsigned long long)n);
}

static void begin_stop(master_t *m, int signo)
{
    if (m->stopping)
        return;
    m->stopping = true;
    fa_log_info("%s: stopping gracefully", strsignal(signo));
    sd_notifyf(0, "STOPPING=1\nSTATUS=stopping: %u workers draining", count_alive(m));
    for (unsigned i = 0; i < MAX_PROCS; i++)
        if (m->procs[i].used && m->procs[i].pid == 0)
            m->procs[i].used = false;
    signal_gen(m, m->cur.gen, SIGTERM, true);
    if (m->next.config)
        signal_gen(m, m->next.gen, SIGTERM, true);
    m->stop_deadline = now_mono() + m->cur.config->timeouts.shutdown + KILL_GRACE;
}

static void write_snapshot(master_t *m)
{
    const char *path = m->cur.config->aggregator.snapshot;
    if (!path || !*path)
        return;
    char err[256];
    if (fa_agg_snapshot_write(m->agg, path, err, sizeof(err)) != 0)
        fa_log_error("snapshot: %s", err);
}

static void handle_signal(master_t *m, int signo)
{
    switch (signo) {
    case SIGCHLD:
        reap_children(m);
        break;
    case SIGHUP:
        if (!m->stopping)
            start_reload(m);
        break;
    case SIGTERM:
    case SIGINT:
    case SIGQUIT:
        begin_stop(m, signo);
        break;
    case SIGUSR1:
        for (unsigned i = 0; i < MAX_PROCS; i++)
            if (m->procs[i].used && m->procs[i].pid > 0)
                kill(m->procs[i].pid, SIGUSR1);
        break;
    default:
        break;
    }
}

static int master_loop(master_t *m)
{
    for (;;) {
        double now = now_mono();
        if (m->stopping && count_alive(m) == 0)
            break;
        if (m->stopping && now >= m->stop_deadline) {
            fa_log_warn("workers still running after the shutdown timeout: killing them");
            for (unsigned i = 0; i < MAX_PROCS; i++)
                if (m->procs[i].used && m->procs[i].pid > 0)
                    kill(m->procs[i].pid, SIGKILL);
            m->stop_deadline = now + 3600;
        }
        if (!m->stopping) {
            respawn_due(m);
            if (!m->announced_ready && count_gen(m, m->cur.gen, true) == m->cur.nworkers) {
                m->announced_ready = true;
                fa_log_info("ready: %u workers accepting", m->cur.nworkers);
                m->status_requests = fa_counters_requests(m->counters);
                m->next_status = now + STATUS_INTERVAL;
                sd_notifyf(0, "READY=1\nSTATUS=serving with %u workers; %llu requests\nMAINPID=%d",
                           m->cur.nworkers, (unsigned long long)m->status_requests,
                           (int)getpid());
            }
            if (m->announced_ready && !m->next.config && now >= m->next_status)
                update_status(m, now);
            if (m->next.config) {
                if (count_gen(m, m->next.gen, true) == m->next.nworkers)
                    finish_reload(m);
                else if (now >= m->next_deadline ||
                         count_gen(m, m->next.gen, false) < m->next.nworkers)
                    abandon_reload(m, "the new workers did not all become ready");
            }
            if (m->next_snapshot > 0 && now >= m->next_snapshot) {
                write_snapshot(m);
                m->next_snapshot = now + m->cur.config->aggregator.snapshot_interval;
            }
        }

        struct pollfd pfds[1 + MAX_PROCS];
        proc_t *owners[1 + MAX_PROCS];
        nfds_t n = 0;
        pfds[n++] = (struct pollfd){.fd = m->sfd, .events = POLLIN};
        for (unsigned i = 0; i < MAX_PROCS; i++)
            if (m->procs[i].used && m->procs[i].ready_fd >= 0) {
                owners[n] = &m->procs[i];
                pfds[n++] = (struct pollfd){.fd = m->procs[i].ready_fd, .events = POLLIN};
            }
        double wake = now + 1.0;
        for (unsigned i = 0; i < MAX_PROCS; i++)
            if (m->procs[i].used && m->procs[i].pid == 0)
                wake = FA_MIN(wake, m->procs[i].respawn_at);
        if (m->next_snapshot > 0)
            wake = FA_MIN(wake, m->next_snapshot);
        if (m->announced_ready && !m->stopping && !m->next.config)
            wake = FA_MIN(wake, m->next_status); /* (not during a reload: no spin on a due one) */
        int timeout = (int)FA_MAX(0.0, ceil((wake - now) * 1000));
        int rc = poll(pfds, n, timeout);
        if (rc < 0 && errno != EINTR) {
            fa_log_error("poll: %s", strerror(errno));
            return 1;
        }
        for (nfds_t i = 1; rc > 0 && i < n; i++)
            if (pfds[i].revents)
                on_ready_byte(owners[i]);
        if (rc > 0 && (pfds[0].revents & POLLIN)) {
            struct signalfd_siginfo si;
            while (read(m->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
                handle_signal(m, (int)si.ssi_signo);
        }
    }
    return 0;
}

int fa_master_run(fa_config_t *config, const fa_master_opts_t *opts)
{
    static master_t m; /* one per process, and large: not on the stack */
    memset(&m, 0, sizeof(m));
    m.opts = *opts;
    m.sfd = -1;
    fa_log_set_tag("master");
    fa_log_level = config->log.level;
    int rc = 1;

    fa_errbuf_t errs = {0};
    m.cur.config = config;
    m.cur.app = fa_app_build(config, &errs);
    if (!m.cur.app) {
        log_errors(&errs);
        fa_errbuf_free(&errs);
        goto out;
    }
    m.cur.nworkers = fa_config_worker_count(config);
    m.cur.gen = 1;
    m.ncpus = fa_cpu_list(m.cpus, FA_ARRAY_SIZE(m.cpus));

    char err[512];
    m.counters = fa_counters_create(err, sizeof(err));
    if (!m.counters) {
        fa_log_error("%s", err);
        goto out;
    }
    m.nshards = FA_MIN(MAX_SHARDS, 4 * FA_MAX(m.cur.nworkers, m.ncpus) + 8);
    m.agg = fa_agg_create(config->aggregator.capacity, m.nshards, err, sizeof(err));
    if (!m.agg) {
        fa_log_error("aggregator: %s", err);
        goto out;
    }
    const char *snap = config->aggregator.snapshot;
    if (snap && *snap) {
        if (opts->discard_snapshot) {
            fa_log_warn("--discard-snapshot: starting with empty aggregates");
        } else {
            int loaded = fa_agg_snapshot_load(m.agg, snap, err, sizeof(err));
            if (loaded < 0) {
                fa_log_error("refusing to start: %s (start with --discard-snapshot to ignore it)",
                             err);
                goto out;
            }
            if (loaded > 0) {
                fa_agg_totals_t t;
                fa_agg_read(m.agg, &t);
                fa_log_info("restored %llu events and %llu distinct keys from %s",
                            (unsigned long long)t.total, (unsigned long long)t.unique, snap);
            }
        }
        m.next_snapshot = now_mono() + config->aggregator.snapshot_interval;
    }

    if (!ensure_sockets(&m, config, m.cur.nworkers))
        goto out;

    sigset_t set;
    sigemptyset(&set);
    int sigs[] = {SIGCHLD, SIGHUP, SIGTERM, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGPIPE};
    for (size_t i = 0; i < FA_ARRAY_SIZE(sigs); i++)
        sigaddset(&set, sigs[i]);
    sigprocmask(SIG_BLOCK, &set, NULL);
    m.sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (m.sfd < 0) {
        fa_log_error("signalfd: %s", strerror(errno));
        goto out;
    }
    fa_log_info("fasterapid %s starting %u workers (config %s)", FA_VERSION, m.cur.nworkers,
                opts->config_path);
    if (!spawn_generation(&m, &m.cur)) {
        begin_stop(&m, SIGTERM);
        master_loop(&m);
        goto out;
    }
    rc = master_loop(&m);
    write_snapshot(&m);
    fa_log_info("stopped");
out:
    for (unsigned i = 0; i < m.ngroups; i++)
        for (unsigned j = 0; j < m.groups[i].nfds; j++)
            close(m.groups[i].fds[j]);
    if (m.sfd >= 0)
        close(m.sfd);
    free_generation(&m.next);
    free_generation(&m.cur);
    if (m.agg)
        fa_agg_destroy(m.agg);
    fa_counters_destroy(m.counters);
    return rc;
}
