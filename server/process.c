/*
 * process.c: signals and resource limits.
 *
 * Signals are handled synchronously: they are blocked everywhere and the main thread waits
 * for them with sigwait, so shutdown runs as ordinary code on the main thread instead of in a
 * signal handler.
 */
#include "process.h"

#include <signal.h>
#include <stddef.h>
#include <sys/resource.h>
#include <unistd.h>

static sigset_t shutdown_set(void)
{
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    return set;
}

void gs_process_block_signals(void)
{
    sigset_t set = shutdown_set();
    struct sigaction sa = {0};

    pthread_sigmask(SIG_BLOCK, &set, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
}

/* A second SIGTERM or SIGINT during shutdown ends the process at once. Not by the default
 * action: as PID 1 in a container the kernel ignores signals that have no handler. */
static void second_signal(int sig)
{
    _exit(128 + sig); /* async-signal-safe; the shell's convention for "killed by sig" */
}

int gs_process_wait_signal(void)
{
    sigset_t set = shutdown_set();
    struct sigaction sa = {0};
    int sig = 0;

    for (;;) {
        if (sigwait(&set, &sig) != 0)
            continue;
        if (sig == SIGHUP)
            continue; /* reserved (e.g. reopen logs); not a reason to stop */
        break;
    }
    sa.sa_handler = second_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    return sig;
}

unsigned long gs_process_raise_nofile(unsigned long want)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 0;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
        rl.rlim_cur = (rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want) ? want : rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    return rl.rlim_cur == RLIM_INFINITY ? (unsigned long)-1 : (unsigned long)rl.rlim_cur;
}
