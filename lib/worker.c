/*
 * worker.c — a worker process: its loop, accepting, graceful stop.
 *
 * Runs after fork. The master never touches libev, so the worker owns the default loop outright.
 * Signals only flip state through ev_signal watchers; the work happens in the loop.
 */
#include "worker.h"
#include "accesslog.h"
#include "agg.h"
#include "alloc.h"
#include "conn.h"
#include "counters.h"
#include "cpu.h"
#include "log.h"
#include "sched.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void on_accept(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop, (void)revents;
    fa_accept_t *a = FA_CONTAINER_OF(io, fa_accept_t, io);
    fa_conn_accept(a->worker, a->fd);
}

void fa_worker_accept_enable(fa_worker_t *w, bool on)
{
    if (on == w->accepting)
        return;
    if (on && (w->stopping || w->nconns >= w->config->server.max_connections ||
               w->mem >= w->config->limits.worker_memory))
        return;
    w->accepting = on;
    for (unsigned i = 0; i < w->naccept; i++) {
        if (on)
            ev_io_start(w->loop, &w->accept[i].io);
        else
            ev_io_stop(w->loop, &w->accept[i].io);
    }
}

static void on_accept_retry(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop, (void)revents;
    fa_worker_t *w = FA_CONTAINER_OF(t, fa_worker_t, accept_retry);
    fa_worker_accept_enable(w, true);
}

/* Runs after every loop iteration's callbacks: recycles closed connections, ends a drained stop. */
static void on_check(struct ev_loop *loop, ev_check *chk, int revents)
{
    (void)revents;
    fa_worker_t *w = FA_CONTAINER_OF(chk, fa_worker_t, check);
    if (w->closing)
        fa_conn_reap(w);
    if (w->stopping && w->nconns == 0)
        ev_break(loop, EVBREAK_ALL);
}

void fa_worker_flush_latency(fa_worker_t *w)
{
    if (!w->nlat) /* always so without a counter slot: respond_end keeps none then */
        return;
    /* The loop's ev_now is frozen for the iteration the request was read in (its start); the
     * real time (one vDSO call, no syscall) makes the latency include the work and the send. */
    double now = ev_time();
    for (unsigned i = 0; i < w->nlat; i++)
        fa_counters_observe(w->counter_slot, now - w->lat[i]);
    w->nlat = 0;
    fa_counters_set_conns(w->counter_slot, w->nconns, w->stats.connections_total,
                          w->stats.accept_errors);
}

/* libev calls this right before it waits for events: every callback of the iteration has run
 * and every response it made has been written (or queued for writability). */
static void on_loop_release(struct ev_loop *loop)
{
    fa_worker_flush_latency(ev_userdata(loop));
}

static void on_stop_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)revents;
    fa_worker_t *w = FA_CONTAINER_OF(t, fa_worker_t, stop_timer);
    fa_log_warn("shutdown timeout: closing %u connections still open", w->nconns);
    ev_break(loop, EVBREAK_ALL);
}

/* SIGTERM, SIGINT, SIGQUIT: stop accepting, finish what was received, close idle connections. */
static void on_stop_signal(struct ev_loop *loop, ev_signal *s, int revents)
{
    (void)revents;
    fa_worker_t *w = s->data;
    if (w->stopping)
        return;
    w->stopping = true;
    w->stop_at = ev_now(loop);
    fa_worker_accept_enable(w, false);
    ev_timer_stop(loop, &w->accept_retry);
    fa_log_debug("stopping: %u connections open", w->nconns);
    fa_conn_shutdown_all(w);
    ev_timer_set(&w->stop_timer, w->config->timeouts.shutdown, 0.);
    ev_timer_start(loop, &w->stop_timer);
}

/* SIGUSR1 (forwarded by the master): reopen the access log, e.g. after logrotate moved it. */
static void on_usr1(struct ev_loop *loop, ev_signal *s, int revents)
{
    (void)loop, (void)revents;
    fa_worker_t *w = s->data;
    if (w->access && fa_accesslog_reopen(w->access) == 0)
        fa_log_debug("access log reopened");
}

/*
 * A repeating timer: writes the buffered access log lines, and publishes the connection figures
 * that change without a response (a client connected or left), so readers see them within a tick.
 */
static void on_ops_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop, (void)revents;
    fa_worker_t *w = FA_CONTAINER_OF(t, fa_worker_t, ops_timer);
    if (w->access)
        fa_accesslog_flush(w->access);
    if (w->counter_slot) {
        fa_counters_set_conns(w->counter_slot, w->nconns, w->stats.connections_total,
                              w->stats.accept_errors);
        fa_counters_set_memory(w->counter_slot, w->mem);
    }
}

static void on_ignored_signal(struct ev_loop *loop, ev_signal *s, int revents)
{
    (void)loop, (void)s, (void)revents;
}

int fa_worker_run(fa_worker_t *w, const int *listen_fds, unsigned nlisten)
{
    char tag[16];
    snprintf(tag, sizeof(tag), "w%u", w->id);
    fa_log_set_tag(tag);
    signal(SIGPIPE, SIG_IGN);

    w->loop = ev_default_loop(EVBACKEND_EPOLL);
    if (!w->loop) {
        fa_log_error("cannot create the event loop");
        return 1;
    }
    static fa_sched_t sched; /* lives as long as the process */
    fa_sched_init(&sched, w->loop, NULL);
    w->sched = &sched;
    w->naccept = nlisten;
    w->accept = fa_calloc(nlisten, sizeof(*w->accept));
    for (unsigned i = 0; i < nlisten; i++) {
        w->accept[i].worker = w;
        w->accept[i].fd = listen_fds[i];
        ev_io_init(&w->accept[i].io, on_accept, listen_fds[i], EV_READ);
    }
    ev_timer_init(&w->accept_retry, on_accept_retry, 0.1, 0.);
    if (w->counter_slot) {
        fa_counters_slot_set_pid(w->counter_slot, getpid());
        ev_set_userdata(w->loop, w);
        ev_set_loop_release_cb(w->loop, on_loop_release, NULL); /* libev skips a NULL one */
    }
    if (w->config->log.access) {
        char err[512];
        w->access = fa_accesslog_open(w->config->log.access_path, w->config->log.access_format,
                                      w->id, err, sizeof(err));
        if (!w->access)
            fa_log_error("%s; serving without an access log", err);
    }
    ev_timer_init(&w->ops_timer, on_ops_timer, FA_ACCESSLOG_FLUSH_S, FA_ACCESSLOG_FLUSH_S);
    ev_timer_start(w->loop, &w->ops_timer);
    ev_unref(w->loop); /* housekeeping alone must not keep the loop alive */
    ev_timer_init(&w->stop_timer, on_stop_timeout, 1., 0.);
    ev_check_init(&w->check, on_check);
    /* libev runs check watchers together with the I/O callbacks of the same iteration, highest
     * priority first: the lowest one makes on_check see what those callbacks closed. */
    ev_set_priority(&w->check, EV_MINPRI);
    ev_check_start(w->loop, &w->check);
    ev_unref(w->loop); /* the check watcher alone must not keep the loop alive */

    struct {
        ev_signal *s;
        int signo;
        void (*cb)(struct ev_loop *, ev_signal *, int);
    } sigs[] = {
        {&w->sig_term, SIGTERM, on_stop_signal}, {&w->sig_int, SIGINT, on_stop_signal},
        {&w->sig_quit, SIGQUIT, on_stop_signal}, {&w->sig_usr1, SIGUSR1, on_usr1},
        {&w->sig_hup, SIGHUP, on_ignored_signal},
    };
    for (size_t i = 0; i < FA_ARRAY_SIZE(sigs); i++) {
        ev_signal_init(sigs[i].s, sigs[i].cb, sigs[i].signo);
        sigs[i].s->data = w;
        ev_signal_start(w->loop, sigs[i].s);
        ev_unref(w->loop);
    }

    /* The aggregator's per-process key cache: created here, after fork, so it is this worker's. */
    int rc = w->agg ? fa_agg_worker_init(w->agg) : 0;
    if (rc != 0)
        fa_log_warn("aggregator key cache unavailable (%s): counting without it", strerror(-rc));

    if (fa_app_worker_init(w->app, w) != 0) {
        fa_log_error("stage initialisation failed");
        return 1;
    }
    fa_worker_update_date(w);
    fa_worker_accept_enable(w, true);

    if (w->ready_fd >= 0) {
        /* Tell the master we accept; a failed write shows up there as a worker never ready. */
        (void)!write(w->ready_fd, "R", 1);
        close(w->ready_fd);
        w->ready_fd = -1;
    }
    fa_log_debug("accepting on %u sockets", nlisten);

    ev_run(w->loop, 0);
    fa_worker_flush_latency(w); /* the last iteration's, when a stop broke the loop */

    /* A second stop signal (the master forwards one, an operator may send another) must not
     * kill the process with the default action once the watchers are gone. */
    sigset_t block;
    sigemptyset(&block);
    for (size_t i = 0; i < FA_ARRAY_SIZE(sigs); i++)
        sigaddset(&block, sigs[i].signo);
    sigprocmask(SIG_BLOCK, &block, NULL);
    /* Restore the references taken away above before stopping the watchers. */
    for (size_t i = 0; i < FA_ARRAY_SIZE(sigs); i++) {
        ev_ref(w->loop);
        ev_signal_stop(w->loop, sigs[i].s);
    }
    ev_ref(w->loop);
    ev_check_stop(w->loop, &w->check);
    ev_ref(w->loop);
    ev_timer_stop(w->loop, &w->ops_timer);
    on_ops_timer(w->loop, &w->ops_timer, 0); /* last lines and figures */
    fa_accesslog_close(w->access);
    w->access = NULL;
    fa_worker_accept_enable(w, false);
    ev_timer_stop(w->loop, &w->accept_retry);
    ev_timer_stop(w->loop, &w->stop_timer);
    fa_conn_free_all(w);
    fa_app_worker_fini(w->app, w);
    if (w->agg)
        fa_agg_worker_fini(w->agg);
    uint32_t live = fa_sched_fini(w->sched);
    if (live)
        fa_log_warn("%u futures still live at exit", live);
    fa_free(w->accept);
    return 0;
}
