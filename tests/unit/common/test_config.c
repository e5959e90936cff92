#include <criterion/criterion.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "err.h"

struct cfg {
    const char *name;
    uint64_t count;
    uint64_t size;
    int flag;
};

static const struct cm_opt opts[] = {
    {"name", CM_OPT_STR, offsetof(struct cfg, name), NULL, 0, 0, 1, "NAME", "a name"},
    {"count", CM_OPT_U64, offsetof(struct cfg, count), "3", 1, 10, 0, "N", "a count"},
    {"max-size", CM_OPT_SIZE, offsetof(struct cfg, size), "64M", 1, UINT64_MAX, 0, "BYTES", "s"},
    {"flag", CM_OPT_BOOL, offsetof(struct cfg, flag), "0", 0, 1, 0, NULL, "a flag"},
};
#define NOPTS (sizeof(opts) / sizeof(opts[0]))

static int parse(struct cfg *c, char **argv, int argc, char *err)
{
    memset(c, 0, sizeof(*c));
    return cm_opts_parse(opts, NOPTS, c, argc, argv, "TESTHW_", NULL, NULL, err, 256);
}

Test(config, defaults_then_flags)
{
    struct cfg c;
    char err[256];
    char *argv[] = {"prog", "--name", "x", "--count=7", "--flag"};
    cr_assert_eq(parse(&c, argv, 5, err), 0, "%s", err);
    cr_assert_str_eq(c.name, "x");
    cr_assert_eq(c.count, 7);
    cr_assert_eq(c.size, 64ull << 20);
    cr_assert_eq(c.flag, 1);
}

Test(config, env_fallback_and_flag_wins)
{
    struct cfg c;
    char err[256];
    setenv("TESTHW_MAX_SIZE", "2K", 1);
    setenv("TESTHW_NAME", "fromenv", 1);
    char *argv[] = {"prog", "--max-size", "3k"};
    cr_assert_eq(parse(&c, argv, 3, err), 0, "%s", err);
    cr_assert_str_eq(c.name, "fromenv");
    cr_assert_eq(c.size, 3072);
    unsetenv("TESTHW_MAX_SIZE");
    unsetenv("TESTHW_NAME");
}

Test(config, errors)
{
    struct cfg c;
    char err[256];
    char *missing[] = {"prog"};
    cr_assert_eq(parse(&c, missing, 1, err), CM_EINVAL);
    cr_assert(strstr(err, "--name") != NULL);
    char *range[] = {"prog", "--name", "a", "--count", "11"};
    cr_assert_eq(parse(&c, range, 5, err), CM_EINVAL);
    char *unknown[] = {"prog", "--name", "a", "--bogus", "1"};
    cr_assert_eq(parse(&c, unknown, 5, err), CM_EINVAL);
    char *novalue[] = {"prog", "--name"};
    cr_assert_eq(parse(&c, novalue, 2, err), CM_EINVAL);
    char *badsize[] = {"prog", "--name", "a", "--max-size", "12Q"};
    cr_assert_eq(parse(&c, badsize, 5, err), CM_EINVAL);
    char *help[] = {"prog", "--help"};
    cr_assert_eq(parse(&c, help, 2, err), CM_EHELP);
}

Test(config, hostport)
{
    char host[64];
    int port;
    cr_assert_eq(cm_hostport_parse("127.0.0.1:8080", host, sizeof(host), &port), 0);
    cr_assert_str_eq(host, "127.0.0.1");
    cr_assert_eq(port, 8080);
    cr_assert_eq(cm_hostport_parse("[::1]:9", host, sizeof(host), &port), 0);
    cr_assert_str_eq(host, "::1");
    cr_assert_eq(cm_hostport_parse("node-1.hw.svc:7001", host, sizeof(host), &port), 0);
    cr_assert_neq(cm_hostport_parse("127.0.0.1", host, sizeof(host), &port), 0);
    cr_assert_neq(cm_hostport_parse("127.0.0.1:0", host, sizeof(host), &port), 0);
    cr_assert_neq(cm_hostport_parse("127.0.0.1:70000", host, sizeof(host), &port), 0);
    cr_assert_neq(cm_hostport_parse(":80", host, sizeof(host), &port), 0);
    cr_assert_neq(cm_hostport_parse("::1:80", host, sizeof(host), &port), 0);
}
