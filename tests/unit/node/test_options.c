#include <criterion/criterion.h>
#include <string.h>

#include "err.h"
#include "options.h"

static struct nd_config base(void)
{
    struct nd_config c;
    memset(&c, 0, sizeof(c));
    c.id = 2;
    c.data_dir = "/tmp/x";
    c.listen = "127.0.0.1:7002";
    c.raft_listen = "127.0.0.1:7102";
    c.peers_text = "1=127.0.0.1:7001,2=127.0.0.1:7002,3=node-3.hw:7003";
    c.log_level = "info";
    c.replicas = 3;
    c.shards = 1;
    c.election_timeout_ms = ND_ELECTION_TIMEOUT_DEFAULT;
    c.heartbeat_ms = ND_HEARTBEAT_DEFAULT;
    return c;
}

Test(options, peers_parse)
{
    char err[256];
    struct nd_config c = base();
    cr_assert_eq(nd_config_validate(&c, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(c.npeers, 3);
    cr_assert_eq(c.peers[2].id, 3);
    cr_assert_str_eq(c.peers[2].rpc, "node-3.hw:7003");
}

Test(options, rejects_bad_values)
{
    char err[256];
    const char *bad[] = {"", "1=127.0.0.1", "x=1.2.3.4:5", "1=a:1,1=b:2", "1=a:1,,3=b:2", "0=a:1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct nd_config c = base();
        c.peers_text = bad[i];
        cr_assert_eq(nd_config_validate(&c, err, sizeof(err)), CM_EINVAL, "accepted %s", bad[i]);
    }
    struct nd_config c = base();
    c.peers_text = "1=a:1,3=b:2";
    cr_assert_eq(nd_config_validate(&c, err, sizeof(err)), CM_EINVAL);
    cr_assert(strstr(err, "--id") != NULL);
    c = base();
    c.listen = "nohost";
    cr_assert_eq(nd_config_validate(&c, err, sizeof(err)), CM_EINVAL);
    c = base();
    c.log_level = "loud";
    cr_assert_eq(nd_config_validate(&c, err, sizeof(err)), CM_EINVAL);
}

Test(options, help_and_env)
{
    char err[256];
    struct nd_config c;
    char *argv[] = {"headwater-node", "--id", "1", "--data-dir", "/tmp/d", NULL};
    setenv("HEADWATER_PEERS", "1=127.0.0.1:7001", 1);
    cr_assert_eq(nd_config_load(&c, 5, argv, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(c.npeers, 1);
    unsetenv("HEADWATER_PEERS");
    char *argv2[] = {"headwater-node", "--id", "1", "--data-dir", "/tmp/d", NULL};
    cr_assert_eq(nd_config_load(&c, 5, argv2, err, sizeof(err)), CM_EINVAL);
}

Test(options, admin_and_raft_bind)
{
    char err[256];
    struct nd_config c = base();
    c.admin_listen = "0.0.0.0:7080";
    c.raft_bind = "0.0.0.0:7102";
    cr_assert_eq(nd_config_validate(&c, err, sizeof(err)), 0, "%s", err);
    c.admin_listen = "noport";
    cr_assert_eq(nd_config_validate(&c, err, sizeof(err)), CM_EINVAL);
    cr_assert(strstr(err, "--admin-listen") != NULL, "%s", err);
    c = base();
    c.raft_bind = "0.0.0.0:7999"; /* raft requires the advertised port */
    cr_assert_eq(nd_config_validate(&c, err, sizeof(err)), CM_EINVAL);
    cr_assert(strstr(err, "--raft-bind") != NULL, "%s", err);
}

Test(options, raft_timing)
{
    char err[256];
    struct nd_config c = base();
    c.election_timeout_ms = 300;
    c.heartbeat_ms = 50;
    cr_assert_eq(nd_config_validate(&c, err, sizeof(err)), 0, "%s", err);
    /* heartbeat must stay below half the election timeout */
    const uint64_t bad[][2] = {{300, 150}, {300, 200}, {300, 300},   {100, 60},    {0, 10},
                               {300, 0},   {50, 30},   {60001, 100}, {1000, 10001}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        c = base();
        c.election_timeout_ms = bad[i][0];
        c.heartbeat_ms = bad[i][1];
        err[0] = '\0';
        cr_assert_eq(nd_config_validate(&c, err, sizeof(err)), CM_EINVAL, "accepted %llu/%llu",
                     (unsigned long long)bad[i][0], (unsigned long long)bad[i][1]);
        cr_assert(strstr(err, "-ms") != NULL, "%s", err);
    }
}

Test(options, raft_timing_flags_and_env)
{
    char err[256];
    struct nd_config c;
    char *argv[] = {"headwater-node",   "--id", "1", "--data-dir", "/tmp/d", "--peers",
                    "1=127.0.0.1:7001", NULL};
    cr_assert_eq(nd_config_load(&c, 7, argv, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(c.election_timeout_ms, ND_ELECTION_TIMEOUT_DEFAULT);
    cr_assert_eq(c.heartbeat_ms, ND_HEARTBEAT_DEFAULT);
    setenv("HEADWATER_ELECTION_TIMEOUT_MS", "400", 1);
    setenv("HEADWATER_HEARTBEAT_MS", "40", 1);
    cr_assert_eq(nd_config_load(&c, 7, argv, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(c.election_timeout_ms, 400);
    cr_assert_eq(c.heartbeat_ms, 40);
    char *argv2[] = {"headwater-node",   "--id",           "1",   "--data-dir", "/tmp/d", "--peers",
                     "1=127.0.0.1:7001", "--heartbeat-ms", "250", NULL};
    cr_assert_eq(nd_config_load(&c, 9, argv2, err, sizeof(err)), CM_EINVAL); /* 250 vs 400 */
    cr_assert(strstr(err, "--heartbeat-ms") != NULL, "%s", err);
    char *argv3[] = {
        "headwater-node",        "--id", "1", "--data-dir", "/tmp/d", "--peers", "1=127.0.0.1:7001",
        "--election-timeout-ms", "5",    NULL};
    cr_assert_eq(nd_config_load(&c, 9, argv3, err, sizeof(err)), CM_EINVAL); /* below min */
    unsetenv("HEADWATER_ELECTION_TIMEOUT_MS");
    unsetenv("HEADWATER_HEARTBEAT_MS");
}
