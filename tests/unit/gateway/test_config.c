/* Gateway flags, env and validation. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "options.h"
#include <uv.h>

static int parse(struct gw_config *cfg, int argc, char **argv, char *err)
{
    int rv = gw_config_parse(cfg, argc, argv, err, 256);
    if (rv == 0)
        rv = gw_config_validate(cfg, err, 256);
    return rv;
}

Test(config, defaults)
{
    struct gw_config cfg;
    char err[256];
    char *argv[] = {"gw", "--nodes", "127.0.0.1:7001,127.0.0.1:7002", NULL};
    cr_assert_eq(parse(&cfg, 3, argv, err), 0, "%s", err);
    cr_assert_str_eq(cfg.listen, "127.0.0.1:8080");
    cr_assert_str_eq(cfg.admin_listen, "127.0.0.1:9080");
    cr_assert_eq(cfg.max_object_size, 64ull << 20);
    cr_assert_eq(cfg.threads, uv_available_parallelism() > 256 ? 256 : uv_available_parallelism(),
                 "one loop per core");
    cr_assert_eq(cfg.nseeds, 2);
    cr_assert_eq(cfg.max_header_size, 16 * 1024);
    cr_assert_eq(cfg.max_url_length, 8 * 1024);
    cr_assert_eq(cfg.header_timeout_ms, 10000);
    cr_assert_eq(cfg.idle_timeout_ms, 60000);
    cr_assert_eq(cfg.body_timeout_ms, 30000);
    cr_assert_eq(cfg.max_pipeline, 16);
    cr_assert_eq(cfg.max_buffered_bytes, 1ull << 30);
    cr_assert_str_eq(cfg.cors_origins, "*");
    cr_assert_eq(cfg.access_log, 1);
    cr_assert_null(cfg.keys);
    cr_assert_null(cfg.tls_listen);
    cr_assert_str_eq(cfg.seeds[0], "127.0.0.1:7001");
    cr_assert_str_eq(cfg.seeds[1], "127.0.0.1:7002");
    cr_assert_str_eq(cfg.zone, "");
}

Test(config, nodes_required)
{
    struct gw_config cfg;
    char err[256];
    char *argv[] = {"gw", NULL};
    cr_assert_eq(parse(&cfg, 1, argv, err), CM_EINVAL);
    cr_assert(strstr(err, "nodes") != NULL, "%s", err);
}

Test(config, help)
{
    struct gw_config cfg;
    char err[256];
    char *argv[] = {"gw", "--help", NULL};
    cr_assert_eq(gw_config_parse(&cfg, 2, argv, err, sizeof(err)), CM_EHELP);
}

Test(config, flags_and_sizes)
{
    struct gw_config cfg;
    char err[256];
    char *argv[] = {"gw",          "--nodes=n1:7001", "--listen", "0.0.0.0:80",        "--zone",
                    "eu-1",        "--threads",       "4",        "--max-object-size", "1G",
                    "--log-level", "debug",           NULL};
    cr_assert_eq(parse(&cfg, 12, argv, err), 0, "%s", err);
    cr_assert_str_eq(cfg.listen, "0.0.0.0:80");
    cr_assert_str_eq(cfg.zone, "eu-1");
    cr_assert_eq(cfg.threads, 4);
    cr_assert_eq(cfg.max_object_size, 1ull << 30);
    cr_assert_eq(cfg.level, 0);
}

Test(config, env_then_flags)
{
    struct gw_config cfg;
    char err[256];
    setenv("HEADWATER_NODES", "127.0.0.1:7005", 1);
    setenv("HEADWATER_MAX_OBJECT_SIZE", "2M", 1);
    char *argv[] = {"gw", "--max-object-size", "3M", NULL};
    int rv = parse(&cfg, 3, argv, err);
    unsetenv("HEADWATER_NODES");
    unsetenv("HEADWATER_MAX_OBJECT_SIZE");
    cr_assert_eq(rv, 0, "%s", err);
    cr_assert_str_eq(cfg.seeds[0], "127.0.0.1:7005");
    cr_assert_eq(cfg.max_object_size, 3ull << 20);
}

static void expect_invalid(struct gw_config *cfg, const char *what)
{
    char err[256] = "";
    cr_assert_eq(gw_config_validate(cfg, err, sizeof(err)), CM_EINVAL, "%s accepted", what);
    cr_assert_neq(err[0], '\0');
}

static void base(struct gw_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->listen = "127.0.0.1:8080";
    cfg->admin_listen = "127.0.0.1:9080";
    cfg->nodes = "127.0.0.1:7001";
    cfg->threads = 1;
    cfg->max_object_size = 1024;
    cfg->log_level = "info";
}

Test(config, validate_pure)
{
    struct gw_config cfg;
    char err[256];
    base(&cfg);
    cr_assert_eq(gw_config_validate(&cfg, err, sizeof(err)), 0, "%s", err);
    base(&cfg);
    cfg.listen = "nope";
    expect_invalid(&cfg, "listen without port");
    base(&cfg);
    cfg.admin_listen = "127.0.0.1:99999";
    expect_invalid(&cfg, "port out of range");
    base(&cfg);
    cfg.admin_listen = cfg.listen;
    expect_invalid(&cfg, "same listen and admin");
    base(&cfg);
    cfg.nodes = "";
    expect_invalid(&cfg, "empty nodes");
    base(&cfg);
    cfg.nodes = "127.0.0.1:7001,,127.0.0.1:7002";
    expect_invalid(&cfg, "empty entry");
    base(&cfg);
    cfg.nodes = "127.0.0.1:7001,127.0.0.1:7001";
    expect_invalid(&cfg, "duplicate");
    base(&cfg);
    cfg.nodes = "127.0.0.1";
    expect_invalid(&cfg, "node without port");
    base(&cfg);
    cfg.threads = 0;
    expect_invalid(&cfg, "zero threads");
    base(&cfg);
    cfg.max_object_size = 0;
    expect_invalid(&cfg, "zero max size");
    base(&cfg);
    cfg.log_level = "loud";
    expect_invalid(&cfg, "bad level");
    base(&cfg);
    cfg.nodes = "[::1]:7001,localhost:7002";
    cr_assert_eq(gw_config_validate(&cfg, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(cfg.nseeds, 2);
}

Test(config, bad_flag_values)
{
    struct gw_config cfg;
    char err[256];
    char *a1[] = {"gw", "--nodes", "h:1", "--threads", "0", NULL};
    cr_assert_eq(gw_config_parse(&cfg, 5, a1, err, sizeof(err)), CM_EINVAL);
    char *a2[] = {"gw", "--nodes", "h:1", "--max-object-size", "12Q", NULL};
    cr_assert_eq(gw_config_parse(&cfg, 5, a2, err, sizeof(err)), CM_EINVAL);
    char *a3[] = {"gw", "--nodes", "h:1", "--bogus", NULL};
    cr_assert_eq(gw_config_parse(&cfg, 4, a3, err, sizeof(err)), CM_EINVAL);
}

Test(config, connection_layer_options)
{
    struct gw_config cfg;
    char err[256];
    char *argv[] = {"gw",
                    "--nodes=h:1",
                    "--access-log=false",
                    "--cors-origins",
                    "https://a.example, http://b.example:8000",
                    "--header-timeout-ms",
                    "500",
                    "--max-header-size",
                    "4K",
                    "--max-url-length",
                    "2K",
                    "--tls-listen",
                    "127.0.0.1:8443",
                    "--tls-cert",
                    "c.pem",
                    "--tls-key",
                    "k.pem",
                    NULL};
    cr_assert_eq(parse(&cfg, 17, argv, err), 0, "%s", err);
    cr_assert_eq(cfg.access_log, 0);
    cr_assert_eq(cfg.header_timeout_ms, 500);
    cr_assert_eq(cfg.max_header_size, 4096);
    cr_assert_eq(cfg.max_url_length, 2048);

    base(&cfg);
    cr_assert_eq(gw_config_validate(&cfg, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(cfg.body_timeout_ms, 30000, "hand-built configs get the defaults");
    base(&cfg);
    cfg.tls_listen = "127.0.0.1:8443";
    expect_invalid(&cfg, "tls listen without cert");
    base(&cfg);
    cfg.tls_listen = cfg.listen;
    cfg.tls_cert = cfg.tls_key = "x";
    expect_invalid(&cfg, "tls on the data port");
    base(&cfg);
    cfg.cors_origins = "player.example.com";
    expect_invalid(&cfg, "origin without scheme");
    base(&cfg);
    cfg.max_header_size = 2048;
    cfg.max_url_length = 4096;
    expect_invalid(&cfg, "url longer than the head");
    base(&cfg);
    cfg.header_timeout_ms = 1;
    expect_invalid(&cfg, "timeout below the minimum");
}

/* Issue 8 §5: the admin listener's own limit, who may write cross-origin, TTL bounds. */
Test(config, admin_limit_cors_writes_and_lifecycle_bounds)
{
    struct gw_config cfg;
    char err[256];
    base(&cfg);
    cr_assert_eq(gw_config_validate(&cfg, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(cfg.admin_max_connections, 32, "hand-built configs get the default");
    cr_assert_str_eq(cfg.cors_write_origins, "", "no cross-origin writes by default");
    base(&cfg);
    cfg.admin_max_connections = 100000;
    expect_invalid(&cfg, "admin limit over the maximum");
    base(&cfg);
    cfg.cors_write_origins = "https://enc.example";
    cr_assert_eq(gw_config_validate(&cfg, err, sizeof(err)), 0, "%s", err);
    base(&cfg);
    cfg.cors_write_origins = "enc.example";
    expect_invalid(&cfg, "a write origin without a scheme");
    base(&cfg);
    cfg.cors_origins = "https://player.example";
    cfg.cors_write_origins = "https://enc.example";
    expect_invalid(&cfg, "a write origin that gets no CORS answers");
    base(&cfg);
    cfg.cors_origins = "https://player.example,https://enc.example";
    cfg.cors_write_origins = "https://enc.example";
    cr_assert_eq(gw_config_validate(&cfg, err, sizeof(err)), 0, "%s", err);
    base(&cfg);
    cfg.cors_origins = "https://player.example";
    cfg.cors_write_origins = "*";
    expect_invalid(&cfg, "any write origin with listed CORS origins");
    base(&cfg);
    cfg.lifecycle = "/live/=315360000";
    cr_assert_eq(gw_config_validate(&cfg, err, sizeof(err)), 0, "%s", err);
    const char *bad[] = {"/live/=315360001", "/live/=99999999999999999999", "/live/=-1", "/live/=0",
                         "/live/=1e3"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        base(&cfg);
        cfg.lifecycle = bad[i];
        expect_invalid(&cfg, bad[i]);
    }
    char *argv[] = {"gw", "--nodes=h:1", "--admin-max-connections", "4", "--cors-write-origins",
                    "*",  NULL};
    cr_assert_eq(parse(&cfg, 6, argv, err), 0, "%s", err);
    cr_assert_eq(cfg.admin_max_connections, 4);
    cr_assert_str_eq(cfg.cors_write_origins, "*");
}
