/*
 * test_plugin.c: a behaviour loaded from a shared object, driven over real HTTP.
 *
 * genserv is started with --plugin pointing at examples/plugin's kv store (its path comes from
 * GS_EXAMPLE_PLUGIN, set by CMake when that target exists). Its behaviour must then be listed
 * by GET /behaviours and be startable and callable exactly like a built-in: puts, gets, a key
 * that expires by its TTL, the state in GET /servers/NAME, and a clean stop.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

#ifdef GS_EXAMPLE_PLUGIN

static int setup_with_plugin(void **state)
{
    const char *args[] = {"--plugin", GS_EXAMPLE_PLUGIN, NULL};
    h_opts_t opts = {.args = args};

    return h_setup_with(state, &opts);
}

static bool listed(const h_server_t *srv, const char *behaviour)
{
    json_t *b;
    size_t i;
    h_resp_t r;
    bool found = false;

    h_request(srv, "GET", "/behaviours", NULL, &r);
    json_array_foreach(json_object_get(r.json, "behaviours"), i, b)
    {
        if (h_str(b, "name") != NULL && strcmp(h_str(b, "name"), behaviour) == 0)
            found = json_is_string(json_object_get(b, "description"));
    }
    h_resp_close(&r);
    return found;
}

static bool key_gone(const h_server_t *srv, const char *server, const char *key)
{
    char msg[128];
    h_resp_t r;
    bool gone;

    snprintf(msg, sizeof(msg), "[\"get\", \"%s\"]", key);
    h_call(srv, server, msg, -1, &r);
    gone = r.status == 200 && json_is_string(json_object_get(r.json, "reply")) &&
           strcmp(json_string_value(json_object_get(r.json, "reply")), "not_found") == 0;
    h_resp_close(&r);
    return gone;
}

static void test_a_plugin_behaviour_is_startable_and_callable(void **state)
{
    h_fixture_t *fx = *state;
    json_t *info;
    h_resp_t r;

    assert_true(listed(&fx->srv, "kv"));
    assert_true(listed(&fx->srv, "counter")); /* the built-ins are still there */
    assert_int_equal(h_start_server(&fx->srv, "cache", "kv", "{\"max_keys\": 10}", NULL), 201);

    h_call(&fx->srv, "cache", "[\"put\", \"greeting\", \"hello\"]", -1, &r);
    h_assert_reply(&r, "\"ok\"");
    h_resp_close(&r);
    h_call(&fx->srv, "cache", "[\"get\", \"greeting\"]", -1, &r);
    h_assert_reply(&r, "[\"ok\", \"hello\"]");
    h_resp_close(&r);
    h_call(&fx->srv, "cache", "[\"get\", \"nothing\"]", -1, &r);
    h_assert_reply(&r, "\"not_found\"");
    h_resp_close(&r);

    /* A cast and a TTL: the key written with a 300 ms TTL disappears by itself. */
    assert_int_equal(h_deliver(&fx->srv, "/cast", "cache", "[\"put\", \"brief\", 1, 300]"), 202);
    h_call(&fx->srv, "cache", "\"size\"", -1, &r);
    h_assert_reply(&r, "2");
    h_resp_close(&r);
    H_WAIT_UNTIL(key_gone(&fx->srv, "cache", "brief"), H_WAIT_MS);

    info = h_server_info(&fx->srv, "cache");
    assert_non_null(info);
    assert_string_equal(h_str(info, "behaviour"), "kv");
    assert_string_equal(h_str(info, "status"), "running");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(info, "state"), "size")),
                     1);
    json_decref(info);

    /* A malformed message is answered, not a crash. */
    h_call(&fx->srv, "cache", "[\"put\"]", -1, &r);
    assert_int_equal(r.status, 200);
    h_resp_close(&r);
    assert_int_equal(h_server_int(&fx->srv, "cache", "restarts", false), 0);

    h_request(&fx->srv, "DELETE", "/servers/cache", NULL, &r);
    assert_int_equal(r.status, 200);
    h_resp_close(&r);
    H_PASS(fx);
}

static void test_without_the_plugin_its_behaviour_is_unknown(void **state)
{
    h_fixture_t *fx = *state;
    h_resp_t r;

    assert_false(listed(&fx->srv, "kv"));
    h_request(&fx->srv, "POST", "/servers", "{\"name\": \"cache\", \"behaviour\": \"kv\"}", &r);
    h_assert_error(&r, 404, "no_such_behaviour");
    h_resp_close(&r);
    H_PASS(fx);
}

/* The plugin list also comes from GENSERV_PLUGIN and the config file's "plugins". */
static void test_plugins_from_the_environment_and_the_config_file(void **state)
{
    h_fixture_t *fx = *state;
    const char *env[] = {"GENSERV_PLUGIN=" GS_EXAMPLE_PLUGIN, NULL};
    h_opts_t by_env = {.env = env};
    char config[1024];
    h_opts_t by_config = {.config_json = config};
    h_resp_t r;

    h_fixture_restart(fx, &by_env);
    assert_true(listed(&fx->srv, "kv"));

    /* A config that loads the plugin and starts one of its servers at boot. */
    snprintf(config, sizeof(config),
             "{\"plugins\": [\"%s\"], \"servers\": [{\"name\": \"cache\", "
             "\"behaviour\": \"kv\", \"args\": {\"max_keys\": 2}}]}",
             GS_EXAMPLE_PLUGIN);
    h_fixture_restart(fx, &by_config);
    h_call(&fx->srv, "cache", "[\"put\", \"a\", 1]", -1, &r);
    h_assert_reply(&r, "\"ok\"");
    h_resp_close(&r);
    h_call(&fx->srv, "cache", "[\"put\", \"b\", 2]", -1, &r);
    h_assert_reply(&r, "\"ok\"");
    h_resp_close(&r);
    h_call(&fx->srv, "cache", "[\"put\", \"c\", 3]", -1, &r);
    h_assert_reply(&r, "[\"error\", \"full\"]");
    h_resp_close(&r);
    H_PASS(fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_plugins_from_the_environment_and_the_config_file,
                                        h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_a_plugin_behaviour_is_startable_and_callable,
                                        setup_with_plugin, h_teardown),
        cmocka_unit_test_setup_teardown(test_without_the_plugin_its_behaviour_is_unknown, h_setup,
                                        h_teardown),
    };

    h_init(170);
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#else /* !GS_EXAMPLE_PLUGIN */

static void test_plugin_not_built(void **state)
{
    (void)state;
    skip();
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_plugin_not_built)};

    return cmocka_run_group_tests(tests, NULL, NULL);
}

#endif
