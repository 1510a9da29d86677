/*
 * test_healthcheck.c: `genserv --health-check`, the probe a container's HEALTHCHECK runs.
 *
 * It must find the server the way the server itself was configured (--listen, GENSERV_LISTEN,
 * the config file's "listen", a wildcard host meaning the loopback), exit 0 only on a 200 from
 * GET /readyz, and exit 1 (never 2, which HEALTHCHECK reserves) on everything else: nothing
 * listening, a wrong answer, no answer within its 2 s budget, or settings it cannot use. The
 * wrong and missing answers come from a fake server on a thread here, which also records the
 * request line the probe sent.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

extern char **environ;

/* Generous bound for one probe: its own budget is 2 s. */
#define PROBE_DEADLINE_MS 10000

static unsigned port_of(const h_server_t *srv)
{
    const char *colon = strrchr(srv->url, ':');

    assert_non_null(colon);
    return (unsigned)strtoul(colon + 1, NULL, 10);
}

/*
 * Run `genserv args...` with the caller's environment less GENSERV_*, plus env (NULL-terminated
 * "NAME=value" entries); capture stdout and stderr into out. Returns the exit code, or -1 when
 * it died from a signal or had to be killed at the deadline. *elapsed_ms gets how long it ran.
 */
static int probe(const char *const *args, const char *const *env, char *out, size_t len,
                 int64_t *elapsed_ms)
{
    char path[] = "/tmp/gs-healthcheck-XXXXXX";
    char *argv[16], *envp[512];
    size_t n = 0, k = 0, i;
    int fd, status = 0, code = -1;
    int64_t start = h_now_ms();
    pid_t pid;

    out[0] = '\0';
    argv[n++] = (char *)GENSERV_BIN;
    argv[n++] = (char *)"--health-check";
    for (i = 0; args != NULL && args[i] != NULL && n + 1 < 16; i++)
        argv[n++] = (char *)args[i];
    argv[n] = NULL;
    for (i = 0; environ[i] != NULL && k + 8 < 512; i++)
        if (strncmp(environ[i], "GENSERV_", 8) != 0)
            envp[k++] = environ[i];
    for (i = 0; env != NULL && env[i] != NULL && k + 1 < 512; i++)
        envp[k++] = (char *)env[i];
    envp[k] = NULL;

    fd = mkstemp(path);
    assert_true(fd >= 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        execve(GENSERV_BIN, argv, envp);
        _exit(127);
    }
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);

        if (r == pid)
            break;
        if (h_now_ms() - start > PROBE_DEADLINE_MS) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            status = -1;
            break;
        }
        h_sleep_ms(5);
    }
    *elapsed_ms = h_now_ms() - start;
    if (status != -1 && WIFEXITED(status))
        code = WEXITSTATUS(status);
    {
        ssize_t got = pread(fd, out, len - 1, 0);

        out[got > 0 ? got : 0] = '\0';
    }
    close(fd);
    unlink(path);
    return code;
}

static void expect(int want, const char *const *args, const char *const *env, const char *says)
{
    static char out[8192];
    int64_t ms;
    int code = probe(args, env, out, sizeof(out), &ms);

    if (code != want)
        fail_msg("genserv --health-check %s exited %d, expected %d, after %lld ms:\n%s",
                 args && args[0] ? args[0] : "", code, want, (long long)ms, out);
    if (says != NULL && strstr(out, says) == NULL)
        fail_msg("genserv --health-check should say \"%s\"; it said:\n%s", says, out);
    /* Its own budget is 2 s: nothing here should cost the platform's longer timeout. */
    assert_true(ms < 5000);
}

/* ---------------------------------------------------------------------------------------- */
/* A fake server: one connection, one canned answer (or none at all)                        */
/* ---------------------------------------------------------------------------------------- */

typedef struct fake_s {
    int listen_fd;
    unsigned port;
    const char *answer; /* NULL: accept, read, and never answer */
    char request[1024]; /* what the probe sent, up to the end of its headers */
    pthread_t thread;
} fake_t;

static void *fake_main(void *arg)
{
    fake_t *f = arg;
    struct pollfd p = {.fd = f->listen_fd, .events = POLLIN};
    size_t got = 0;
    int fd;

    if (poll(&p, 1, PROBE_DEADLINE_MS) <= 0)
        return NULL;
    fd = accept(f->listen_fd, NULL, NULL);
    if (fd < 0)
        return NULL;
    while (got + 1 < sizeof(f->request) && strstr(f->request, "\r\n\r\n") == NULL) {
        struct pollfd q = {.fd = fd, .events = POLLIN};
        ssize_t n;

        if (poll(&q, 1, PROBE_DEADLINE_MS) <= 0)
            break;
        n = recv(fd, f->request + got, sizeof(f->request) - 1 - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
        f->request[got] = '\0';
    }
    if (f->answer != NULL) {
        (void)!send(fd, f->answer, strlen(f->answer), MSG_NOSIGNAL);
    } else {
        /* Hold the connection until the probe gives up and closes it. */
        struct pollfd q = {.fd = fd, .events = POLLIN};
        char c;

        if (poll(&q, 1, PROBE_DEADLINE_MS) > 0)
            (void)!recv(fd, &c, 1, 0);
    }
    close(fd);
    return NULL;
}

static void fake_start(fake_t *f, const char *answer)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t alen = sizeof(a);

    memset(f, 0, sizeof(*f));
    f->answer = answer;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    f->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(f->listen_fd >= 0);
    assert_int_equal(bind(f->listen_fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(f->listen_fd, 4), 0);
    assert_int_equal(getsockname(f->listen_fd, (struct sockaddr *)&a, &alen), 0);
    f->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&f->thread, NULL, fake_main, f), 0);
}

static void fake_stop(fake_t *f)
{
    pthread_join(f->thread, NULL);
    close(f->listen_fd);
}

/* ---------------------------------------------------------------------------------------- */
/* Tests                                                                                      */
/* ---------------------------------------------------------------------------------------- */

static void test_healthy_by_flag_env_and_config_file(void **state)
{
    h_fixture_t *fx = *state;
    char listen[64], env_listen[96], cfg_path[] = "/tmp/gs-healthcheck-cfg-XXXXXX";
    char env_cfg[96], json[96];
    int fd;

    snprintf(listen, sizeof(listen), "127.0.0.1:%u", port_of(&fx->srv));
    snprintf(env_listen, sizeof(env_listen), "GENSERV_LISTEN=%s", listen);
    {
        const char *const args[] = {"--listen", listen, NULL};

        expect(0, args, NULL, "answered 200");
    }
    {
        const char *const env[] = {env_listen, NULL};

        expect(0, NULL, env, "answered 200");
    }
    /* The config file, named by GENSERV_CONFIG as the container image does. */
    fd = mkstemp(cfg_path);
    assert_true(fd >= 0);
    snprintf(json, sizeof(json), "{\"listen\": \"%s\"}\n", listen);
    assert_int_equal(write(fd, json, strlen(json)), (ssize_t)strlen(json));
    close(fd);
    snprintf(env_cfg, sizeof(env_cfg), "GENSERV_CONFIG=%s", cfg_path);
    {
        const char *const env[] = {env_cfg, NULL};

        expect(0, NULL, env, "answered 200");
    }
    /* Precedence as for serving: the flag beats the environment, which beats the file. */
    {
        const char *const args[] = {"--listen", listen, NULL};
        const char *const env[] = {"GENSERV_LISTEN=127.0.0.1:1", env_cfg, NULL};

        expect(0, args, env, "answered 200");
        expect(1, NULL, env, "127.0.0.1:1/readyz");
    }
    unlink(cfg_path);
    H_PASS(fx);
}

static void test_a_wildcard_listen_address_is_probed_on_the_loopback(void **state)
{
    h_fixture_t *fx = *state;
    h_server_t srv;
    const char *const args[] = {"--listen", "0.0.0.0:0", NULL};
    h_opts_t opts = {.args = args};
    char env_listen[96];

    /* What the container does: listen on every address, probe with the same setting. */
    assert_int_equal(h_start(&srv, &opts), 0);
    snprintf(env_listen, sizeof(env_listen), "GENSERV_LISTEN=0.0.0.0:%u", port_of(&srv));
    {
        const char *const env[] = {env_listen, NULL};

        expect(0, NULL, env, "http://127.0.0.1:");
    }
    assert_int_equal(h_stop(&srv, H_STOP_MS), 0);
    h_cleanup_files(&srv);
    H_PASS(fx);
}

static void test_nothing_listening_is_unhealthy(void **state)
{
    h_fixture_t *fx = *state;
    char listen[64];
    const char *const args[] = {"--listen", listen, NULL};

    /* The fixture's port, once its server has exited, has nobody behind it. */
    snprintf(listen, sizeof(listen), "127.0.0.1:%u", port_of(&fx->srv));
    assert_int_equal(h_fixture_stop(fx), 0);
    expect(1, args, NULL, "cannot connect");
    H_PASS(fx);
}

static void test_an_answer_other_than_200_is_unhealthy(void **state)
{
    h_fixture_t *fx = *state;
    fake_t f;
    char listen[64];
    const char *const args[] = {"--listen", listen, NULL};

    fake_start(&f, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n");
    snprintf(listen, sizeof(listen), "127.0.0.1:%u", f.port);
    expect(1, args, NULL, "answered 503");
    fake_stop(&f);
    /* It asked the right question. */
    if (strncmp(f.request, "GET /readyz HTTP/1.1\r\n", 22) != 0)
        fail_msg("unexpected request:\n%s", f.request);

    fake_start(&f, "SSH-2.0-OpenSSH_9.2\r\n");
    snprintf(listen, sizeof(listen), "127.0.0.1:%u", f.port);
    expect(1, args, NULL, "not HTTP");
    fake_stop(&f);

    fake_start(&f, "");
    snprintf(listen, sizeof(listen), "127.0.0.1:%u", f.port);
    expect(1, args, NULL, "closed without an answer");
    fake_stop(&f);
    H_PASS(fx);
}

static void test_no_answer_is_unhealthy_within_its_budget(void **state)
{
    h_fixture_t *fx = *state;
    fake_t f;
    char listen[64];
    const char *const args[] = {"--listen", listen, NULL};
    static char out[8192];
    int64_t ms;

    fake_start(&f, NULL);
    snprintf(listen, sizeof(listen), "127.0.0.1:%u", f.port);
    assert_int_equal(probe(args, NULL, out, sizeof(out), &ms), 1);
    fake_stop(&f);
    if (strstr(out, "no answer within 2000 ms") == NULL)
        fail_msg("unexpected output after %lld ms:\n%s", (long long)ms, out);
    /* It waited for its 2 s budget, and not much longer. */
    assert_true(ms >= 1900 && ms < 5000);
    H_PASS(fx);
}

static void test_unusable_settings_exit_1_not_2(void **state)
{
    h_fixture_t *fx = *state;
    const char *const port0[] = {"--listen", "127.0.0.1:0", NULL};
    const char *const bad[] = {"--listen", "nonsense", NULL};
    const char *const no_config[] = {"--config", "/nonexistent/genserv.json", NULL};

    /* HEALTHCHECK reserves exit code 2: every failure of the probe is 1. */
    expect(1, port0, NULL, "port is 0");
    expect(1, bad, NULL, "HOST:PORT");
    expect(1, no_config, NULL, "/nonexistent/genserv.json");
    H_PASS(fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_healthy_by_flag_env_and_config_file, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_a_wildcard_listen_address_is_probed_on_the_loopback,
                                        h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_nothing_listening_is_unhealthy, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_an_answer_other_than_200_is_unhealthy, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_no_answer_is_unhealthy_within_its_budget, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_unusable_settings_exit_1_not_2, h_setup, h_teardown),
    };

    h_init(170);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
