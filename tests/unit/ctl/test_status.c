#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "json.h"
#include "status.h"

/* The sample body of docs/internals.md, extended to three nodes in different states. */
static const char body[] =
    "{\"quorum\":true,\"leader\":1,\"shards\":1,\"epoch\":1,\n"
    " \"nodes\":[{\"id\":1,\"address\":\"127.0.0.1:7001\",\"zone\":\"\",\"role\":\"leader\","
    "\"term\":2,\"commit_index\":42,\"applied_index\":42,\"last_index\":42,\"lag\":0,"
    "\"repair_backlog\":0,\"reachable\":true},\n"
    "{\"id\":2,\"address\":\"127.0.0.1:7002\",\"zone\":\"\",\"role\":\"follower\",\"term\":2,"
    "\"commit_index\":42,\"applied_index\":41,\"last_index\":42,\"lag\":1,"
    "\"repair_backlog\":0,\"reachable\":true},\n"
    "{\"id\":3,\"address\":\"127.0.0.1:7003\",\"zone\":\"\",\"role\":\"follower\",\"term\":null,"
    "\"commit_index\":null,\"applied_index\":null,\"last_index\":null,\"lag\":null,"
    "\"repair_backlog\":null,\"reachable\":false}]}";

static const char expected[] =
    "cluster: quorum yes, leader 1, 2/3 nodes reachable, epoch 1, shards 1\n"
    "NODE  ADDRESS         ROLE      APPLIED  LAG  REPAIR  HEALTH\n"
    "1     127.0.0.1:7001  leader    42       0    0       ok\n"
    "2     127.0.0.1:7002  follower  41       1    0       ok\n"
    "3     127.0.0.1:7003  -         -        -    -       unreachable\n";

static int load(const char *text, struct ctl_status *st, char *err)
{
    struct ctl_json *doc = NULL;
    int rc = ctl_json_parse(text, strlen(text), &doc, err, 128);
    if (rc == 0)
        rc = ctl_status_from_json(doc, st, err, 128);
    ctl_json_free(doc);
    return rc;
}

Test(status, renders_sample_table)
{
    struct ctl_status st;
    char err[128];
    cr_assert_eq(load(body, &st, err), 0, "%s", err);
    cr_assert_eq(st.nnodes, 3);
    struct cm_sbuf out;
    cm_sbuf_init(&out);
    ctl_status_render(&st, &out);
    cr_assert_str_eq(out.p, expected);
    cr_assert_eq(ctl_status_exit_code(&st), CTL_EXIT_OK);
    cm_sbuf_free(&out);
    ctl_status_free(&st);
}

Test(status, health_rules)
{
    struct ctl_node_status n;
    memset(&n, 0, sizeof(n));
    cr_assert_str_eq(ctl_status_health(&n), "unreachable");
    n.reachable = 1;
    cr_assert_str_eq(ctl_status_health(&n), "lagging", "lag unknown");
    n.has_lag = 1;
    n.lag = CTL_STATUS_LAG_OK;
    cr_assert_str_eq(ctl_status_health(&n), "ok");
    n.lag = CTL_STATUS_LAG_OK + 1;
    cr_assert_str_eq(ctl_status_health(&n), "lagging");
    n.lag = 0;
    n.has_backlog = 1;
    n.backlog = 5;
    cr_assert_str_eq(ctl_status_health(&n), "lagging", "bytes still to repair");
}

Test(status, no_quorum_exit_code_and_header)
{
    static const char nq[] =
        "{\"quorum\":false,\"leader\":null,\"nodes\":[{\"id\":1,\"address\":\"a:1\","
        "\"role\":\"candidate\",\"applied_index\":7,\"lag\":null,\"repair_backlog\":0,"
        "\"reachable\":true},{\"id\":2,\"reachable\":false},{\"id\":3,\"reachable\":false}]}";
    struct ctl_status st;
    char err[128];
    cr_assert_eq(load(nq, &st, err), 0, "%s", err);
    cr_assert_eq(ctl_status_exit_code(&st), CTL_EXIT_NO_QUORUM);
    struct cm_sbuf out;
    cm_sbuf_init(&out);
    ctl_status_render(&st, &out);
    cr_assert(strncmp(out.p, "cluster: quorum NO, leader none, 1/3 nodes reachable\n",
                      strlen("cluster: quorum NO, leader none, 1/3 nodes reachable\n")) == 0,
              "%s", out.p);
    cr_assert(strstr(out.p, "candidate") != NULL);
    cm_sbuf_free(&out);
    ctl_status_free(&st);
}

Test(status, rejects_documents_that_are_not_status)
{
    static const char *cases[] = {
        "[]",
        "{}",
        "{\"quorum\":1,\"nodes\":[]}",
        "{\"quorum\":true}",
        "{\"quorum\":true,\"nodes\":{}}",
        "{\"quorum\":true,\"nodes\":[1]}",
        "{\"quorum\":true,\"nodes\":[{\"address\":\"x\"}]}",
        "{\"quorum\":true,\"nodes\":[{\"id\":\"1\"}]}",
        "{\"error\":\"no_quorum\",\"message\":\"no quorum\"}",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct ctl_status st;
        char err[128] = "";
        cr_assert_eq(load(cases[i], &st, err), CM_EPROTO, "accepted %s", cases[i]);
        cr_assert(strncmp(err, "/status: ", 9) == 0, "%s", err);
        cr_assert_null(st.nodes);
    }
}

Test(status, hostile_strings_are_masked_and_bounded)
{
    char doc[1024];
    char longaddr[400];
    memset(longaddr, 'a', sizeof(longaddr) - 1);
    longaddr[sizeof(longaddr) - 1] = '\0';
    snprintf(doc, sizeof(doc),
             "{\"quorum\":true,\"leader\":2,\"nodes\":[{\"id\":2,\"address\":\"%s\","
             "\"role\":\"lea\\u001b[31mder\",\"lag\":0,\"reachable\":true}]}",
             longaddr);
    struct ctl_status st;
    char err[128];
    cr_assert_eq(load(doc, &st, err), 0, "%s", err);
    cr_assert_eq(strlen(st.nodes[0].address), sizeof(st.nodes[0].address) - 1);
    cr_assert_str_eq(st.nodes[0].role, "lea?[31mder");
    struct cm_sbuf out;
    cm_sbuf_init(&out);
    ctl_status_render(&st, &out);
    cr_assert_null(strchr(out.p, '\x1b'));
    cm_sbuf_free(&out);
    ctl_status_free(&st);
}

Test(status, empty_node_list)
{
    struct ctl_status st;
    char err[128];
    cr_assert_eq(load("{\"quorum\":false,\"nodes\":[]}", &st, err), 0, "%s", err);
    struct cm_sbuf out;
    cm_sbuf_init(&out);
    ctl_status_render(&st, &out);
    cr_assert_str_eq(out.p, "cluster: quorum NO, leader none, 0/0 nodes reachable\n"
                            "NODE  ADDRESS  ROLE  APPLIED  LAG  REPAIR  HEALTH\n");
    cm_sbuf_free(&out);
    ctl_status_free(&st);
}
