/*
 * harness.c: spawning and stopping the genserv binary, and HTTP over libcurl for the
 * integration tests (see harness.h for the rules they follow).
 *
 * Process lifecycle:
 *   h_start   temp files for stdout/stderr (and the config) -> fork -> in the child:
 *             PR_SET_PDEATHSIG(SIGKILL), redirect, close inherited fds, execve GENSERV_BIN
 *             -> in the parent: register the PID, poll the stdout file for its first line
 *   h_stop    SIGTERM -> poll waitpid until the deadline -> SIGKILL -> reap -> unregister
 *   cleanup   the atexit handler and the SIGALRM watchdog SIGKILL every registered PID
 *
 * The child's stdout goes to a file rather than a pipe: nothing has to keep reading it, and the
 * server can never block or take SIGPIPE on a later write.
 */
#include "harness.h"

#include <errno.h>
#include <ftw.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#ifndef GENSERV_BIN
#error "GENSERV_BIN must name the genserv binary (set by tests/integration/CMakeLists.txt)"
#endif

extern char **environ;

#define H_MAX_CHILDREN   64
#define H_MAX_BODY       (64u * 1024u * 1024u)
#define H_LISTEN_PREFIX  "listening on http://"
#define H_CLIENT_TIMEOUT 60000L

/* PIDs of live children, read by the signal handler: plain ints written only by the main
 * thread, so volatile sig_atomic_t is all the handler needs. */
static volatile sig_atomic_t children[H_MAX_CHILDREN];

static void child_register(pid_t pid)
{
    for (size_t i = 0; i < H_MAX_CHILDREN; i++) {
        if (children[i] == 0) {
            children[i] = pid;
            return;
        }
    }
    fprintf(stderr, "harness: too many children; %d is not registered for cleanup\n", (int)pid);
}

static void child_unregister(pid_t pid)
{
    for (size_t i = 0; i < H_MAX_CHILDREN; i++)
        if (children[i] == pid)
            children[i] = 0;
}

static void kill_all_children(void)
{
    for (size_t i = 0; i < H_MAX_CHILDREN; i++)
        if (children[i] > 0)
            kill((pid_t)children[i], SIGKILL);
}

static void on_alarm(int sig)
{
    static const char msg[] = "\nharness: watchdog expired; killing every genserv child\n";

    (void)sig;
    kill_all_children();
    if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0) {
        /* Nothing more can be done from a signal handler. */
    }
    _exit(1);
}

static void at_exit(void)
{
    for (size_t i = 0; i < H_MAX_CHILDREN; i++) {
        pid_t pid = (pid_t)children[i];

        if (pid > 0) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            children[i] = 0;
        }
    }
    curl_global_cleanup();
}

void h_init(unsigned watchdog_s)
{
    struct sigaction sa;
    struct rlimit rl;

    setvbuf(stdout, NULL, _IOLBF, 0);
    if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK) {
        fprintf(stderr, "harness: curl_global_init failed\n");
        exit(1);
    }
    atexit(at_exit);
    /* Room for many concurrent client connections (the server raises its own limit). */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_alarm;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    alarm(h_under_valgrind() ? 5 * watchdog_s : watchdog_s);
}

bool h_under_valgrind(void)
{
    const char *w = getenv("GS_TEST_WRAPPER");

    return w != NULL && strstr(w, "valgrind") != NULL;
}

char *h_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t cap = 0, n = 0, k;

    if (f == NULL)
        return NULL;
    do {
        if (n + 4096 + 1 > cap) {
            cap = (cap + 4096) * 2;
            buf = realloc(buf, cap);
            if (buf == NULL)
                abort(); /* a test's own file: nothing sensible to go on with */
        }
        k = fread(buf + n, 1, cap - n - 1, f);
        n += k;
    } while (k > 0);
    fclose(f);
    buf[n] = '\0';
    if (len != NULL)
        *len = n;
    return buf;
}

long h_rss_bytes(pid_t pid)
{
    char path[64], line[256];
    long kb = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    f = fopen(path, "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, "VmRSS:", 6) == 0)
            kb = strtol(line + 6, NULL, 10);
    fclose(f);
    return kb < 0 ? -1 : kb * 1024;
}

int64_t h_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool h_wait_until(bool (*pred)(void *), void *arg, int deadline_ms)
{
    int64_t deadline = h_now_ms() + deadline_ms;

    while (!pred(arg)) {
        if (h_now_ms() > deadline)
            return pred(arg);
        h_sleep_ms(10);
    }
    return true;
}

void h_sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Processes                                                                                  */
/* ---------------------------------------------------------------------------------------- */

static int temp_file(char *path, size_t len, const char *what)
{
    int fd;

    snprintf(path, len, "/tmp/genserv-it-%s-XXXXXX", what);
    fd = mkstemp(path);
    if (fd < 0)
        fprintf(stderr, "harness: mkstemp: %s\n", strerror(errno));
    return fd;
}

static void print_file(const char *title, const char *path)
{
    char buf[4096];
    size_t n;
    FILE *f;

    if (path[0] == '\0')
        return;
    f = fopen(path, "r");
    if (f == NULL)
        return;
    fprintf(stderr, "----- genserv %s (%s) -----\n", title, path);
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        fwrite(buf, 1, n, stderr);
    fprintf(stderr, "----- end of genserv %s -----\n", title);
    fclose(f);
}

void h_dump_logs(const h_server_t *srv)
{
    print_file("stdout", srv->out_path);
    print_file("stderr", srv->err_path);
}

void h_cleanup_files(h_server_t *srv)
{
    if (srv->out_path[0] != '\0')
        unlink(srv->out_path);
    if (srv->err_path[0] != '\0')
        unlink(srv->err_path);
    if (srv->cfg_path[0] != '\0')
        unlink(srv->cfg_path);
    srv->out_path[0] = srv->err_path[0] = srv->cfg_path[0] = '\0';
}

static void reaped(h_server_t *srv, int status)
{
    child_unregister(srv->pid);
    srv->status = status;
    srv->pid = 0;
}

bool h_alive(h_server_t *srv)
{
    int status;

    if (srv->pid <= 0)
        return false;
    if (waitpid(srv->pid, &status, WNOHANG) == srv->pid) {
        reaped(srv, status);
        return false;
    }
    return true;
}

void h_kill(h_server_t *srv)
{
    int status = 0;

    if (srv->pid <= 0)
        return;
    kill(srv->pid, SIGKILL);
    while (waitpid(srv->pid, &status, 0) < 0 && errno == EINTR) {
    }
    srv->killed = true;
    reaped(srv, status);
}

int h_set_fsize_limit(const h_server_t *srv, unsigned long long bytes)
{
    struct rlimit rl;

    if (srv->pid <= 0 || prlimit(srv->pid, RLIMIT_FSIZE, NULL, &rl) != 0) {
        fprintf(stderr, "harness: prlimit: %s\n", srv->pid <= 0 ? "no child" : strerror(errno));
        return -1;
    }
    rl.rlim_cur = bytes == 0 ? rl.rlim_max : (rlim_t)bytes;
    if (prlimit(srv->pid, RLIMIT_FSIZE, &rl, NULL) != 0) {
        fprintf(stderr, "harness: prlimit: %s\n", strerror(errno));
        return -1;
    }
    return 0;
}

static int exit_code(const h_server_t *srv)
{
    if (srv->killed || !WIFEXITED(srv->status))
        return -1;
    return WEXITSTATUS(srv->status);
}

int h_stop(h_server_t *srv, int deadline_ms)
{
    int64_t deadline = h_now_ms() + deadline_ms;

    if (srv->pid <= 0)
        return exit_code(srv);
    kill(srv->pid, SIGTERM);
    while (h_alive(srv)) {
        if (h_now_ms() > deadline) {
            fprintf(stderr,
                    "harness: genserv (pid %d) still running %d ms after SIGTERM; "
                    "killing it\n",
                    (int)srv->pid, deadline_ms);
            h_kill(srv);
            break;
        }
        h_sleep_ms(10);
    }
    if (!srv->killed && WIFSIGNALED(srv->status))
        fprintf(stderr, "harness: genserv died from signal %d\n", WTERMSIG(srv->status));
    return exit_code(srv);
}

/* Whether extra (NULL-terminated, may be NULL) sets the variable of entry ("NAME=value"). */
static bool overridden(const char *entry, const char *const *extra)
{
    size_t len = strcspn(entry, "=");

    for (size_t i = 0; extra != NULL && extra[i] != NULL; i++)
        if (strncmp(extra[i], entry, len) == 0 && extra[i][len] == '=')
            return true;
    return false;
}

/* Copies of environ without GENSERV_* (so the caller's environment cannot change a test) and
 * without what extra sets (so that extra's value is the one the child sees), plus extra. The
 * strings are borrowed; the array is malloc'd. */
static char **child_env(const char *const *extra)
{
    size_t n = 0, k = 0, i;
    char **env;

    for (i = 0; environ[i] != NULL; i++)
        n++;
    for (i = 0; extra != NULL && extra[i] != NULL; i++)
        n++;
    env = calloc(n + 1, sizeof(*env));
    if (env == NULL)
        return NULL;
    for (i = 0; environ[i] != NULL; i++)
        if (strncmp(environ[i], "GENSERV_", 8) != 0 && !overridden(environ[i], extra))
            env[k++] = environ[i];
    for (i = 0; extra != NULL && extra[i] != NULL; i++)
        env[k++] = (char *)extra[i];
    env[k] = NULL;
    return env;
}

/*
 * GS_TEST_WRAPPER, when set, is a command that runs genserv: its words (split on spaces) go
 * before the binary, e.g. GS_TEST_WRAPPER="valgrind --error-exitcode=99 --leak-check=full"
 * runs every test's genserv under memcheck (scripts/valgrind.sh). The words are never freed:
 * they live as long as the process and are shared by every child.
 */
static char **wrapper_words(size_t *n)
{
    static char **words;
    static size_t count;
    const char *w = getenv("GS_TEST_WRAPPER");

    if (words == NULL && w != NULL && w[0] != '\0') {
        char *copy = strdup(w), *save = NULL, *tok;

        words = calloc(strlen(w) / 2 + 2, sizeof(*words));
        if (copy == NULL || words == NULL)
            abort();
        for (tok = strtok_r(copy, " ", &save); tok != NULL; tok = strtok_r(NULL, " ", &save))
            words[count++] = tok;
    }
    *n = count;
    return words;
}

static char **child_argv(const h_opts_t *o, const char *cfg_path)
{
    size_t n = 4, k = 0, i, nwrap;
    char **argv, **wrap = wrapper_words(&nwrap);

    for (i = 0; o != NULL && o->args != NULL && o->args[i] != NULL; i++)
        n++;
    argv = calloc(n + nwrap + 3, sizeof(*argv));
    if (argv == NULL)
        return NULL;
    for (i = 0; i < nwrap; i++)
        argv[k++] = wrap[i];
    argv[k++] = (char *)GENSERV_BIN;
    argv[k++] = (char *)"--listen";
    argv[k++] = (char *)"127.0.0.1:0";
    if (cfg_path != NULL && cfg_path[0] != '\0') {
        argv[k++] = (char *)"--config";
        argv[k++] = (char *)cfg_path;
    }
    for (i = 0; o != NULL && o->args != NULL && o->args[i] != NULL; i++)
        argv[k++] = (char *)o->args[i];
    argv[k] = NULL;
    return argv;
}

static int write_config(h_server_t *srv, const char *text)
{
    int fd = temp_file(srv->cfg_path, sizeof(srv->cfg_path), "cfg");
    size_t len = strlen(text), off = 0;

    if (fd < 0)
        return -1;
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            close(fd);
            return -1;
        }
        off += (size_t)w;
    }
    close(fd);
    return 0;
}

/* The first stdout line when complete: 1 with the URL set, 0 not yet, -1 malformed. */
static int read_first_line(h_server_t *srv)
{
    char buf[256];
    ssize_t n;
    char *nl;
    int fd = open(srv->out_path, O_RDONLY);

    if (fd < 0)
        return 0;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    nl = strchr(buf, '\n');
    if (nl == NULL)
        return (size_t)n >= sizeof(buf) - 1 ? -1 : 0;
    *nl = '\0';
    if (strncmp(buf, H_LISTEN_PREFIX, strlen(H_LISTEN_PREFIX)) != 0) {
        fprintf(stderr, "harness: first stdout line is \"%s\", not \"%sHOST:PORT\"\n", buf,
                H_LISTEN_PREFIX);
        return -1;
    }
    {
        const char *hostport = buf + strlen(H_LISTEN_PREFIX);
        const char *colon = strrchr(hostport, ':');
        long port = colon != NULL ? strtol(colon + 1, NULL, 10) : 0;

        if (colon == NULL || port <= 0 || port > 65535) {
            fprintf(stderr, "harness: no port in \"%s\"\n", buf);
            return -1;
        }
        snprintf(srv->url, sizeof(srv->url), "http://%.270s", hostport);
    }
    return 1;
}

int h_start(h_server_t *srv, const h_opts_t *opts)
{
    int out_fd = -1, err_fd = -1, rc = -1, got = 0;
    char **argv = NULL, **envp = NULL;
    pid_t parent = getpid(), pid;
    unsigned long long fsize_limit = opts != NULL ? opts->fsize_limit : 0;
    int64_t deadline;

    memset(srv, 0, sizeof(*srv));
    out_fd = temp_file(srv->out_path, sizeof(srv->out_path), "out");
    err_fd = temp_file(srv->err_path, sizeof(srv->err_path), "err");
    if (out_fd < 0 || err_fd < 0)
        goto out;
    if (opts != NULL && opts->config_json != NULL && write_config(srv, opts->config_json) < 0)
        goto out;
    argv = child_argv(opts, srv->cfg_path);
    envp = child_env(opts != NULL ? opts->env : NULL);
    if (argv == NULL || envp == NULL)
        goto out;

    pid = fork();
    if (pid < 0) {
        fprintf(stderr, "harness: fork: %s\n", strerror(errno));
        goto out;
    }
    if (pid == 0) {
        sigset_t none;
        int null_fd;

        /* Die with the test process, whatever kills it (ctest's timeout sends SIGKILL). */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        null_fd = open("/dev/null", O_RDONLY);
        if (null_fd >= 0)
            dup2(null_fd, STDIN_FILENO);
        dup2(out_fd, STDOUT_FILENO);
        dup2(err_fd, STDERR_FILENO);
        closefrom(3);
        if (fsize_limit != 0) {
            /* A write past the limit then fails with EFBIG instead of killing the process:
             * what a full disk does to genserv, without needing a small file system. */
            struct rlimit rl;

            signal(SIGXFSZ, SIG_IGN);
            if (getrlimit(RLIMIT_FSIZE, &rl) == 0) {
                rl.rlim_cur = (rlim_t)fsize_limit;
                if (rl.rlim_max != RLIM_INFINITY && rl.rlim_cur > rl.rlim_max)
                    rl.rlim_cur = rl.rlim_max;
                setrlimit(RLIMIT_FSIZE, &rl);
            }
        }
        /* argv[0] is the binary, or the wrapper's first word (found on PATH) */
        if (strcmp(argv[0], GENSERV_BIN) == 0)
            execve(GENSERV_BIN, argv, envp);
        else
            execvpe(argv[0], argv, envp);
        _exit(127);
    }
    srv->pid = pid;
    child_register(pid);

    deadline = h_now_ms() + H_START_MS;
    while ((got = read_first_line(srv)) == 0) {
        if (!h_alive(srv)) {
            got = read_first_line(srv);
            if (got == 0)
                fprintf(stderr, "harness: genserv exited (status 0x%x) before listening\n",
                        srv->status);
            break;
        }
        if (h_now_ms() > deadline) {
            fprintf(stderr, "harness: genserv did not print its address within %d ms\n",
                    H_START_MS);
            break;
        }
        h_sleep_ms(5);
    }
    if (got == 1 && h_alive(srv))
        rc = 0;
out:
    if (out_fd >= 0)
        close(out_fd);
    if (err_fd >= 0)
        close(err_fd);
    free(argv);
    free(envp);
    if (rc < 0) {
        h_kill(srv);
        h_dump_logs(srv);
        h_cleanup_files(srv);
    }
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Fixtures                                                                                   */
/* ---------------------------------------------------------------------------------------- */

int h_setup_with(void **state, const h_opts_t *opts)
{
    h_fixture_t *fx = calloc(1, sizeof(*fx));

    if (fx == NULL)
        return -1;
    if (h_start(&fx->srv, opts) < 0) {
        free(fx);
        return -1;
    }
    *state = fx;
    return 0;
}

int h_setup(void **state)
{
    return h_setup_with(state, NULL);
}

int h_fixture_stop(h_fixture_t *fx)
{
    int code = h_stop(&fx->srv, H_STOP_MS);

    if (code != 0) {
        fprintf(stderr, "harness: genserv exited with %d (-1: signal or killed), not 0\n", code);
        h_dump_logs(&fx->srv);
    }
    return code;
}

void h_fixture_restart(h_fixture_t *fx, const h_opts_t *opts)
{
    assert_int_equal(h_fixture_stop(fx), 0);
    h_cleanup_files(&fx->srv);
    assert_int_equal(h_start(&fx->srv, opts), 0);
}

int h_teardown(void **state)
{
    h_fixture_t *fx = *state;
    int code;

    if (fx == NULL)
        return 0;
    code = h_stop(&fx->srv, H_STOP_MS);
    if (code != 0)
        fprintf(stderr, "harness: genserv exited with %d (-1: signal or killed), not 0\n", code);
    if (code != 0 || !fx->passed)
        h_dump_logs(&fx->srv);
    h_cleanup_files(&fx->srv);
    free(fx);
    *state = NULL;
    return code == 0 ? 0 : -1;
}

/* ---------------------------------------------------------------------------------------- */
/* HTTP                                                                                       */
/* ---------------------------------------------------------------------------------------- */

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    h_resp_t *r = arg;
    size_t n = size * nmemb;
    char *nb;

    if (r->body_len + n > H_MAX_BODY)
        return 0;
    nb = realloc(r->body, r->body_len + n + 1);
    if (nb == NULL)
        return 0;
    memcpy(nb + r->body_len, data, n);
    r->body = nb;
    r->body_len += n;
    r->body[r->body_len] = '\0';
    return n;
}

/* Copy the value of "Name: value\r\n" into dst when line's name is name. */
static void header_value(const char *line, size_t len, const char *name, char *dst, size_t cap)
{
    size_t nlen = strlen(name), vlen;
    const char *v;

    if (len <= nlen || strncasecmp(line, name, nlen) != 0 || line[nlen] != ':')
        return;
    v = line + nlen + 1;
    vlen = len - nlen - 1;
    while (vlen > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        vlen--;
    }
    while (vlen > 0 && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' '))
        vlen--;
    if (vlen >= cap)
        vlen = cap - 1;
    memcpy(dst, v, vlen);
    dst[vlen] = '\0';
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *arg)
{
    h_resp_t *r = arg;
    size_t n = size * nmemb;

    header_value(data, n, "Content-Type", r->content_type, sizeof(r->content_type));
    header_value(data, n, "Allow", r->allow, sizeof(r->allow));
    header_value(data, n, "Retry-After", r->retry_after, sizeof(r->retry_after));
    if (n < 65536) {
        size_t old = r->headers ? strlen(r->headers) : 0;
        char *nh = realloc(r->headers, old + n + 1);

        if (nh != NULL) {
            memcpy(nh + old, data, n);
            nh[old + n] = '\0';
            r->headers = nh;
        }
    }
    return n;
}

/* An easy handle set up for req, writing into r (zeroed here). NULL when out of memory. */
static CURL *easy_for(const h_server_t *srv, const h_req_t *req, h_resp_t *r,
                      struct curl_slist **headers)
{
    char url[1400], ct[160];
    CURL *c;

    memset(r, 0, sizeof(*r));
    *headers = NULL;
    r->body = calloc(1, 1);
    snprintf(url, sizeof(url), "%s%s", srv->url, req->path);
    c = curl_easy_init();
    if (c == NULL || r->body == NULL) {
        r->curl_rc = CURLE_OUT_OF_MEMORY;
        curl_easy_cleanup(c);
        return NULL;
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    /* Send the path as the test wrote it ("/servers/.." stays that): the server decides. */
    curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS,
                     req->timeout_ms > 0 ? req->timeout_ms : H_CLIENT_TIMEOUT);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_PRIVATE, r);
    if (strcmp(req->method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    else
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req->method);
    if (req->body != NULL) {
        size_t len = req->body_len ? req->body_len : strlen(req->body);

        curl_easy_setopt(c, CURLOPT_POSTFIELDS, req->body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        snprintf(ct, sizeof(ct), "Content-Type: %s",
                 req->content_type ? req->content_type : "application/json");
        *headers = curl_slist_append(*headers, ct);
    } else if (strcmp(req->method, "POST") == 0) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
    }
    /* No "Expect: 100-continue": the body goes out at once, as most clients send it. */
    *headers = curl_slist_append(*headers, "Expect:");
    for (size_t i = 0; req->headers != NULL && req->headers[i] != NULL; i++)
        *headers = curl_slist_append(*headers, req->headers[i]);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, *headers);
    return c;
}

/* Fill in what the transfer on c left in r. */
static void easy_done(CURL *c, CURLcode rc, h_resp_t *r)
{
    r->t_end_ms = h_now_ms();
    r->curl_rc = (int)rc;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    if (r->body_len > 0)
        r->json = json_loadb(r->body, r->body_len, 0, NULL);
}

int h_request_ex(const h_server_t *srv, const h_req_t *req, h_resp_t *r)
{
    struct curl_slist *headers;
    CURL *c = easy_for(srv, req, r, &headers);
    CURLcode rc;

    if (c == NULL)
        return r->curl_rc;
    r->t_start_ms = h_now_ms();
    rc = curl_easy_perform(c);
    easy_done(c, rc, r);
    curl_slist_free_all(headers);
    curl_easy_cleanup(c);
    return r->curl_rc;
}

int h_request(const h_server_t *srv, const char *method, const char *path, const char *body,
              h_resp_t *resp)
{
    h_req_t req = {.method = method, .path = path, .body = body};

    return h_request_ex(srv, &req, resp);
}

const char *h_header(const h_resp_t *r, const char *name, char *buf, size_t len)
{
    const char *p = r->headers;

    buf[0] = '\0';
    while (p != NULL && *p != '\0') {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p + 1) : strlen(p);

        header_value(p, n, name, buf, len);
        if (buf[0] != '\0')
            return buf;
        p += n;
    }
    return NULL;
}

void h_resp_close(h_resp_t *r)
{
    free(r->headers);
    free(r->body);
    json_decref(r->json);
    memset(r, 0, sizeof(*r));
}

json_t *h_json(const char *text)
{
    json_error_t err;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &err);

    if (j == NULL)
        fail_msg("bad JSON in a test: %s (%s)", text, err.text);
    return j;
}

static char *dump(json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);

    json_decref(j);
    assert_non_null(s);
    return s;
}

int h_call(const h_server_t *srv, const char *server, const char *message_json, int timeout_ms,
           h_resp_t *resp)
{
    json_t *body = json_pack("{s:s,s:o}", "server", server, "message", h_json(message_json));
    char *text;
    int rc;

    if (timeout_ms >= 0)
        json_object_set_new(body, "timeout_ms", json_integer(timeout_ms));
    text = dump(body);
    rc = h_request(srv, "POST", "/call", text, resp);
    free(text);
    return rc;
}

long h_deliver(const h_server_t *srv, const char *path, const char *server,
               const char *message_json)
{
    char *text = dump(json_pack("{s:s,s:o}", "server", server, "message", h_json(message_json)));
    h_resp_t r;
    long status;

    h_request(srv, "POST", path, text, &r);
    status = r.status;
    if (status != 202)
        fprintf(stderr, "harness: POST %s %s: %ld %s\n", path, text, status, r.body);
    free(text);
    h_resp_close(&r);
    return status;
}

long h_start_server(const h_server_t *srv, const char *name, const char *behaviour,
                    const char *args_json, const char *extra_fields)
{
    json_t *body = json_pack("{s:s,s:s,s:o}", "name", name, "behaviour", behaviour, "args",
                             args_json ? h_json(args_json) : json_null());
    h_resp_t r;
    long status;
    char *text;

    if (extra_fields != NULL) {
        json_t *extra = h_json(extra_fields);

        json_object_update(body, extra);
        json_decref(extra);
    }
    text = dump(body);
    h_request(srv, "POST", "/servers", text, &r);
    status = r.status;
    if (status != 201)
        fprintf(stderr, "harness: POST /servers %s: %ld %s\n", text, status, r.body);
    free(text);
    h_resp_close(&r);
    return status;
}

json_t *h_server_info(const h_server_t *srv, const char *name)
{
    char path[300];
    h_resp_t r;
    json_t *out = NULL;

    snprintf(path, sizeof(path), "/servers/%s", name);
    h_request(srv, "GET", path, NULL, &r);
    if (r.status == 200 && json_is_object(r.json))
        out = json_incref(r.json);
    h_resp_close(&r);
    return out;
}

int64_t h_server_int(const h_server_t *srv, const char *name, const char *field, bool in_state)
{
    json_t *info = h_server_info(srv, name), *obj, *v;
    int64_t out = INT64_MIN;

    if (info == NULL)
        return out;
    obj = in_state ? json_object_get(info, "state") : info;
    v = json_object_get(obj, field);
    if (json_is_integer(v))
        out = (int64_t)json_integer_value(v);
    json_decref(info);
    return out;
}

int64_t h_call_int(const h_server_t *srv, const char *server, const char *message_json)
{
    json_t *reply;
    int64_t out = INT64_MIN;
    h_resp_t r;

    h_call(srv, server, message_json, -1, &r);
    reply = r.status == 200 ? json_object_get(r.json, "reply") : NULL;
    if (json_is_integer(reply))
        out = (int64_t)json_integer_value(reply);
    h_resp_close(&r);
    return out;
}

h_async_t *h_push_async(const h_server_t *srv, const char *server, int n, long client_ms)
{
    char body[320];
    h_req_t req = {.method = "POST", .path = "/call", .body = body, .timeout_ms = client_ms};

    snprintf(body, sizeof(body),
             "{\"server\": \"%s\", \"message\": [\"push\", %d], \"timeout_ms\": 60000}", server, n);
    return h_async_start(srv, &req);
}

const char *h_str(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

bool h_json_equal(const json_t *a, const json_t *b)
{
    char *sa, *sb;

    if (a != NULL && b != NULL && json_equal(a, b))
        return true;
    sa = a ? json_dumps(a, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    sb = b ? json_dumps(b, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    fprintf(stderr, "JSON differs:\n  got:      %s\n  expected: %s\n", sa ? sa : "(null)",
            sb ? sb : "(null)");
    free(sa);
    free(sb);
    return false;
}

double h_metric(const char *text, const char *name)
{
    size_t nlen = strlen(name);
    const char *p = text;

    while (p != NULL && *p != '\0') {
        if (strncmp(p, name, nlen) == 0 && p[nlen] == ' ')
            return strtod(p + nlen + 1, NULL);
        p = strchr(p, '\n');
        if (p != NULL)
            p++;
    }
    return -1;
}

double h_metric_sum(const char *text, const char *prefix)
{
    size_t plen = strlen(prefix);
    const char *p = text;
    double sum = 0;

    while (p != NULL && *p != '\0') {
        if (strncmp(p, prefix, plen) == 0) {
            const char *space = strchr(p + plen, ' ');
            const char *eol = strchr(p + plen, '\n');

            if (space != NULL && (eol == NULL || space < eol))
                sum += strtod(space + 1, NULL);
        }
        p = strchr(p, '\n');
        if (p != NULL)
            p++;
    }
    return sum;
}

double h_metrics_value(const h_server_t *srv, const char *name)
{
    h_resp_t r;
    double v;

    h_request(srv, "GET", "/metrics", NULL, &r);
    v = r.status == 200 ? h_metric(r.body, name) : -2;
    h_resp_close(&r);
    return v;
}

void h_assert_error(const h_resp_t *r, long status, const char *code)
{
    const char *got_code, *message;

    if (r->status != status || !json_is_object(r->json))
        fail_msg("expected %ld %s, got %ld (curl %d) with body: %s", status, code, r->status,
                 r->curl_rc, r->body ? r->body : "");
    assert_non_null(strstr(r->content_type, "application/json"));
    got_code = h_str(r->json, "error");
    message = h_str(r->json, "message");
    if (got_code == NULL || strcmp(got_code, code) != 0)
        fail_msg("expected error \"%s\", got body: %s", code, r->body);
    if (message == NULL || message[0] == '\0')
        fail_msg("error body without a \"message\": %s", r->body);
}

/* ---------------------------------------------------------------------------------------- */
/* Concurrent requests                                                                        */
/* ---------------------------------------------------------------------------------------- */

struct h_async_s {
    h_server_t srv; /* a copy: only the URL is read */
    h_req_t req;
    char *method, *path, *body, *content_type; /* owned copies behind req */
    h_resp_t resp;
    pthread_t thread;
    atomic_bool done; /* release by the thread after resp is filled; acquire by readers */
    bool joined;
};

static void *async_main(void *arg)
{
    h_async_t *a = arg;

    h_request_ex(&a->srv, &a->req, &a->resp);
    atomic_store_explicit(&a->done, true, memory_order_release);
    return NULL;
}

h_async_t *h_async_start(const h_server_t *srv, const h_req_t *req)
{
    h_async_t *a = calloc(1, sizeof(*a));

    if (a == NULL)
        return NULL;
    a->srv = *srv;
    a->req = *req;
    a->method = strdup(req->method);
    a->path = strdup(req->path);
    if (req->body != NULL) {
        size_t len = req->body_len ? req->body_len : strlen(req->body);

        a->body = malloc(len + 1);
        if (a->body != NULL) {
            memcpy(a->body, req->body, len);
            a->body[len] = '\0';
        }
        a->req.body_len = len;
    }
    if (req->content_type != NULL)
        a->content_type = strdup(req->content_type);
    a->req.method = a->method;
    a->req.path = a->path;
    a->req.body = a->body;
    a->req.content_type = a->content_type;
    a->req.headers = NULL; /* not copied: async requests send no extra headers */
    atomic_init(&a->done, false);
    if (pthread_create(&a->thread, NULL, async_main, a) != 0) {
        free(a->method);
        free(a->path);
        free(a->body);
        free(a->content_type);
        free(a);
        return NULL;
    }
    return a;
}

bool h_async_done(h_async_t *a)
{
    return atomic_load_explicit(&a->done, memory_order_acquire);
}

h_resp_t *h_async_wait(h_async_t *a)
{
    if (!a->joined) {
        pthread_join(a->thread, NULL);
        a->joined = true;
    }
    return &a->resp;
}

void h_async_destroy(h_async_t *a)
{
    if (a == NULL)
        return;
    h_async_wait(a);
    h_resp_close(&a->resp);
    free(a->method);
    free(a->path);
    free(a->body);
    free(a->content_type);
    free(a);
}

/* ---------------------------------------------------------------------------------------- */
/* Many concurrent requests on one thread (curl multi)                                       */
/* ---------------------------------------------------------------------------------------- */

struct h_multi_s {
    h_server_t srv;
    h_req_t req;
    char *method, *path, *body; /* owned copies behind req */
    size_t n;
    h_resp_t *resps;
    pthread_t thread;
    bool joined;
    atomic_size_t completed; /* release by the thread per finished transfer; acquire by readers */
};

static void *multi_main(void *arg)
{
    h_multi_t *m = arg;
    CURLM *multi = curl_multi_init();
    CURL **easy = calloc(m->n, sizeof(*easy));
    struct curl_slist **headers = calloc(m->n, sizeof(*headers));
    int running = 0;
    size_t i;

    if (multi == NULL || easy == NULL || headers == NULL)
        goto out;
    curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, 0L);
    for (i = 0; i < m->n; i++) {
        easy[i] = easy_for(&m->srv, &m->req, &m->resps[i], &headers[i]);
        if (easy[i] != NULL) {
            m->resps[i].t_start_ms = h_now_ms();
            curl_multi_add_handle(multi, easy[i]);
        }
    }
    do {
        CURLMsg *msg;
        int left;

        if (curl_multi_perform(multi, &running) != CURLM_OK)
            break;
        while ((msg = curl_multi_info_read(multi, &left)) != NULL) {
            h_resp_t *r = NULL;

            if (msg->msg != CURLMSG_DONE)
                continue;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
            easy_done(msg->easy_handle, msg->data.result, r);
            atomic_fetch_add_explicit(&m->completed, 1, memory_order_release);
        }
        if (running > 0)
            curl_multi_poll(multi, NULL, 0, 100, NULL);
    } while (running > 0);
out:
    for (i = 0; easy != NULL && i < m->n; i++) {
        if (easy[i] != NULL) {
            curl_multi_remove_handle(multi, easy[i]);
            curl_easy_cleanup(easy[i]);
        }
        curl_slist_free_all(headers[i]);
    }
    free(easy);
    free(headers);
    curl_multi_cleanup(multi);
    return NULL;
}

h_multi_t *h_multi_start(const h_server_t *srv, const h_req_t *req, size_t n)
{
    h_multi_t *m = calloc(1, sizeof(*m));

    if (m == NULL)
        return NULL;
    m->srv = *srv;
    m->req = *req;
    m->n = n;
    m->method = strdup(req->method);
    m->path = strdup(req->path);
    m->body = req->body != NULL ? strdup(req->body) : NULL;
    m->resps = calloc(n, sizeof(*m->resps));
    m->req.method = m->method;
    m->req.path = m->path;
    m->req.body = m->body;
    m->req.body_len = 0;
    m->req.headers = NULL; /* not copied: multi requests send no extra headers */
    atomic_init(&m->completed, 0);
    if (m->resps == NULL || pthread_create(&m->thread, NULL, multi_main, m) != 0) {
        free(m->method);
        free(m->path);
        free(m->body);
        free(m->resps);
        free(m);
        return NULL;
    }
    return m;
}

size_t h_multi_completed(h_multi_t *m)
{
    return atomic_load_explicit(&m->completed, memory_order_acquire);
}

h_resp_t *h_multi_wait(h_multi_t *m)
{
    if (!m->joined) {
        pthread_join(m->thread, NULL);
        m->joined = true;
    }
    return m->resps;
}

void h_multi_destroy(h_multi_t *m)
{
    if (m == NULL)
        return;
    h_multi_wait(m);
    for (size_t i = 0; i < m->n; i++)
        h_resp_close(&m->resps[i]);
    free(m->resps);
    free(m->method);
    free(m->path);
    free(m->body);
    free(m);
}

/* ---------------------------------------------------------------------------------------- */
/* GET /events                                                                                */
/* ---------------------------------------------------------------------------------------- */

struct h_events_s {
    char url[320];
    pthread_t thread;
    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t cv;
    char *buf;
    size_t len;
    long status;
    char content_type[128];
    bool headers_done;
    bool finished;
    atomic_bool stop; /* relaxed: a flag polled by curl's progress callback, publishes nothing */
};

static size_t ev_body(char *data, size_t size, size_t nmemb, void *arg)
{
    h_events_t *ev = arg;
    size_t n = size * nmemb;
    char *nb;

    pthread_mutex_lock(&ev->mu);
    nb = ev->len + n <= H_MAX_BODY ? realloc(ev->buf, ev->len + n + 1) : NULL;
    if (nb != NULL) {
        memcpy(nb + ev->len, data, n);
        ev->buf = nb;
        ev->len += n;
        ev->buf[ev->len] = '\0';
    }
    pthread_cond_broadcast(&ev->cv);
    pthread_mutex_unlock(&ev->mu);
    return nb != NULL ? n : 0;
}

static size_t ev_header(char *data, size_t size, size_t nmemb, void *arg)
{
    h_events_t *ev = arg;
    size_t n = size * nmemb;

    pthread_mutex_lock(&ev->mu);
    if (n > 9 && strncmp(data, "HTTP/", 5) == 0) {
        const char *sp = memchr(data, ' ', n);

        if (sp != NULL)
            ev->status = strtol(sp + 1, NULL, 10);
    }
    header_value(data, n, "Content-Type", ev->content_type, sizeof(ev->content_type));
    if (n <= 2 && (data[0] == '\r' || data[0] == '\n')) {
        ev->headers_done = true;
        pthread_cond_broadcast(&ev->cv);
    }
    pthread_mutex_unlock(&ev->mu);
    return n;
}

static int ev_progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    h_events_t *ev = arg;

    (void)a;
    (void)b;
    (void)c;
    (void)d;
    return atomic_load_explicit(&ev->stop, memory_order_relaxed) ? 1 : 0;
}

static void *ev_main(void *arg)
{
    h_events_t *ev = arg;
    CURL *c = curl_easy_init();
    long status = 0;

    if (c != NULL) {
        curl_easy_setopt(c, CURLOPT_URL, ev->url);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, ev_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, ev);
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, ev_header);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, ev);
        curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, ev_progress);
        curl_easy_setopt(c, CURLOPT_XFERINFODATA, ev);
        curl_easy_perform(c);
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_cleanup(c);
    }
    pthread_mutex_lock(&ev->mu);
    if (status != 0)
        ev->status = status;
    ev->finished = true;
    pthread_cond_broadcast(&ev->cv);
    pthread_mutex_unlock(&ev->mu);
    return NULL;
}

static void deadline_ts(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

h_events_t *h_events_open(const h_server_t *srv)
{
    return h_events_open_path(srv, "/events");
}

h_events_t *h_events_open_path(const h_server_t *srv, const char *path)
{
    h_events_t *ev = calloc(1, sizeof(*ev));
    struct timespec ts;

    if (ev == NULL)
        return NULL;
    snprintf(ev->url, sizeof(ev->url), "%s%s", srv->url, path);
    pthread_mutex_init(&ev->mu, NULL);
    pthread_cond_init(&ev->cv, NULL);
    atomic_init(&ev->stop, false);
    if (pthread_create(&ev->thread, NULL, ev_main, ev) != 0) {
        pthread_mutex_destroy(&ev->mu);
        pthread_cond_destroy(&ev->cv);
        free(ev);
        return NULL;
    }
    deadline_ts(&ts, H_WAIT_MS);
    pthread_mutex_lock(&ev->mu);
    while (!ev->headers_done && !ev->finished)
        if (pthread_cond_timedwait(&ev->cv, &ev->mu, &ts) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&ev->mu);
    return ev;
}

long h_events_status(h_events_t *ev, char *content_type, size_t len)
{
    long status;

    pthread_mutex_lock(&ev->mu);
    snprintf(content_type, len, "%s", ev->content_type);
    status = ev->status;
    pthread_mutex_unlock(&ev->mu);
    return status;
}

/* Scan buf for "data: JSON" lines; return the first match (new reference) or NULL. With
 * count, count every match instead and return NULL; with last, return the last match. */
static json_t *ev_scan(const char *buf, const char *type, const char *server, size_t *count,
                       bool last)
{
    const char *p = buf;
    json_t *found = NULL;

    while ((p = strstr(p, "data: ")) != NULL) {
        const char *end = strstr(p, "\n");
        json_t *j;

        if (end == NULL)
            break; /* an incomplete line: wait for the rest */
        if (p == buf || p[-1] == '\n') {
            j = json_loadb(p + 6, (size_t)(end - p - 6), 0, NULL);
            if (j != NULL) {
                const char *t = h_str(j, "type"), *s = h_str(j, "server");

                if (t != NULL && strcmp(t, type) == 0 &&
                    (server == NULL || (s != NULL && strcmp(s, server) == 0))) {
                    if (count != NULL) {
                        (*count)++;
                    } else {
                        json_decref(found);
                        found = json_incref(j);
                        if (!last) {
                            json_decref(j);
                            break;
                        }
                    }
                }
                json_decref(j);
            }
        }
        p = end;
    }
    return found;
}

static json_t *ev_find(const char *buf, const char *type, const char *server)
{
    return ev_scan(buf, type, server, NULL, false);
}

char *h_events_text(h_events_t *ev)
{
    char *copy;

    pthread_mutex_lock(&ev->mu);
    copy = strdup(ev->buf != NULL ? ev->buf : "");
    pthread_mutex_unlock(&ev->mu);
    assert_non_null(copy);
    return copy;
}

size_t h_events_count(h_events_t *ev, const char *type, const char *server)
{
    size_t n = 0;

    pthread_mutex_lock(&ev->mu);
    if (ev->buf != NULL)
        ev_scan(ev->buf, type, server, &n, false);
    pthread_mutex_unlock(&ev->mu);
    return n;
}

json_t *h_events_last(h_events_t *ev, const char *type, const char *server)
{
    json_t *found = NULL;

    pthread_mutex_lock(&ev->mu);
    if (ev->buf != NULL)
        found = ev_scan(ev->buf, type, server, NULL, true);
    pthread_mutex_unlock(&ev->mu);
    return found;
}

json_t *h_events_wait(h_events_t *ev, const char *type, const char *server, int deadline_ms)
{
    struct timespec ts;
    json_t *found = NULL;

    deadline_ts(&ts, deadline_ms);
    pthread_mutex_lock(&ev->mu);
    for (;;) {
        if (ev->buf != NULL && (found = ev_find(ev->buf, type, server)) != NULL)
            break;
        if (ev->finished)
            break;
        if (pthread_cond_timedwait(&ev->cv, &ev->mu, &ts) == ETIMEDOUT) {
            if (ev->buf != NULL)
                found = ev_find(ev->buf, type, server);
            break;
        }
    }
    if (found == NULL)
        fprintf(stderr, "harness: no \"%s\" event for %s; the stream so far:\n%s\n", type,
                server ? server : "(any)", ev->buf ? ev->buf : "");
    pthread_mutex_unlock(&ev->mu);
    return found;
}

void h_events_close(h_events_t *ev)
{
    if (ev == NULL)
        return;
    atomic_store_explicit(&ev->stop, true, memory_order_relaxed);
    pthread_join(ev->thread, NULL);
    pthread_mutex_destroy(&ev->mu);
    pthread_cond_destroy(&ev->cv);
    free(ev->buf);
    free(ev);
}

void h_assert_reply(const h_resp_t *r, const char *expected_json)
{
    json_t *want;
    bool same;

    if (r->status != 200 || !json_is_object(r->json))
        fail_msg("expected 200 {\"reply\": %s}, got %ld (curl %d) with body: %s", expected_json,
                 r->status, r->curl_rc, r->body ? r->body : "");
    want = h_json(expected_json);
    same = h_json_equal(json_object_get(r->json, "reply"), want);
    json_decref(want);
    if (!same)
        fail_msg("unexpected reply in %s", r->body);
}

int h_tempdir(char *path, size_t len, const char *what)
{
    snprintf(path, len, "/tmp/genserv-it-%s-XXXXXX", what);
    if (mkdtemp(path) == NULL) {
        fprintf(stderr, "harness: mkdtemp %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

static int rm_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    if ((type == FTW_DP ? rmdir(path) : unlink(path)) != 0 && errno != ENOENT) {
        fprintf(stderr, "harness: removing %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

int h_rmtree(const char *path)
{
    struct stat sb;

    if (lstat(path, &sb) != 0)
        return errno == ENOENT ? 0 : -1;
    /* Depth first, never following links nor crossing into a file system mounted below. */
    return nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

int h_run(const char *const *args, char *out, size_t len, int deadline_ms)
{
    h_server_t srv;
    h_opts_t none = {0};
    char **argv = NULL, **envp = NULL;
    size_t n = 0, i;
    pid_t parent = getpid(), pid;
    int fd, code = -1;
    int64_t deadline;

    memset(&srv, 0, sizeof(srv));
    out[0] = '\0';
    for (i = 0; args != NULL && args[i] != NULL; i++)
        n++;
    argv = calloc(n + 2, sizeof(*argv));
    envp = child_env(none.env);
    fd = temp_file(srv.out_path, sizeof(srv.out_path), "run");
    if (argv == NULL || envp == NULL || fd < 0)
        goto out;
    argv[0] = (char *)GENSERV_BIN;
    for (i = 0; i < n; i++)
        argv[i + 1] = (char *)args[i];
    pid = fork();
    if (pid < 0)
        goto out;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        closefrom(3);
        execve(GENSERV_BIN, argv, envp);
        _exit(127);
    }
    srv.pid = pid;
    child_register(pid);
    deadline = h_now_ms() + deadline_ms;
    while (h_alive(&srv)) {
        if (h_now_ms() > deadline) {
            fprintf(stderr, "harness: genserv did not exit within %d ms\n", deadline_ms);
            h_kill(&srv);
            break;
        }
        h_sleep_ms(5);
    }
    code = exit_code(&srv);
    {
        FILE *f = fopen(srv.out_path, "r");

        if (f != NULL) {
            size_t got = fread(out, 1, len - 1, f);

            out[got] = '\0';
            fclose(f);
        }
    }
out:
    if (fd >= 0)
        close(fd);
    free(argv);
    free(envp);
    h_cleanup_files(&srv);
    return code;
}

/* ---------------------------------------------------------------------------------------- */
/* Raw TCP                                                                                    */
/* ---------------------------------------------------------------------------------------- */

int h_raw_connect(const h_server_t *srv)
{
    char host[256], port[16];
    const char *hp = srv->url + strlen("http://"), *colon = strrchr(hp, ':');
    struct addrinfo hints, *res = NULL;
    size_t hlen;
    int fd = -1;

    if (colon == NULL)
        return -1;
    hlen = (size_t)(colon - hp);
    if (hp[0] == '[') { /* [v6]:port */
        hp++;
        hlen -= 2;
    }
    if (hlen >= sizeof(host))
        return -1;
    memcpy(host, hp, hlen);
    host[hlen] = '\0';
    snprintf(port, sizeof(port), "%s", colon + 1);
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    if (getaddrinfo(host, port, &hints, &res) != 0)
        return -1;
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) < 0) {
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

int h_raw_send(int fd, const char *data, size_t len)
{
    size_t off = 0;

    while (off < len) {
        ssize_t n = send(fd, data + off, len - off, MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        off += (size_t)n;
    }
    return 0;
}

static int occurrences(const char *hay, const char *needle)
{
    int n = 0;

    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

size_t h_raw_read(int fd, char *buf, size_t len, const char *until, int count, int deadline_ms,
                  bool *closed)
{
    int64_t deadline = h_now_ms() + deadline_ms;
    size_t got = 0;

    *closed = false;
    buf[0] = '\0';
    while (got + 1 < len) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int64_t left = deadline - h_now_ms();
        ssize_t n;

        if (until != NULL && occurrences(buf, until) >= count)
            break;
        if (left <= 0)
            break;
        if (poll(&pfd, 1, (int)(left > 100 ? 100 : left)) <= 0)
            continue;
        n = recv(fd, buf + got, len - 1 - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            *closed = true;
            break;
        }
        got += (size_t)n;
        buf[got] = '\0';
    }
    return got;
}
