#include "cli.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "buf.h"
#include "config.h"
#include "err.h"
#include "http.h"
#include "json.h"
#include "status.h"

struct ctl_cfg {
    const char *gateway;
    uint64_t timeout_ms;
    int json;
};

static const struct cm_opt ctl_opts[] = {
    {"gateway", CM_OPT_STR, offsetof(struct ctl_cfg, gateway), "http://127.0.0.1:9080", 0, 0, 0,
     "URL", "gateway admin endpoint"},
    {"timeout", CM_OPT_U64, offsetof(struct ctl_cfg, timeout_ms), "3000", 100, 600000, 0, "MS",
     "give up on the gateway after this many milliseconds"},
    {"json", CM_OPT_BOOL, offsetof(struct ctl_cfg, json), "0", 0, 1, 0, NULL,
     "print the gateway's raw JSON instead of a table"},
};
#define CTL_NOPTS (sizeof(ctl_opts) / sizeof(ctl_opts[0]))

static void usage(FILE *f)
{
    cm_opts_usage(f, "headwaterctl [--gateway http://HOST:ADMINPORT] [--json] status", ctl_opts,
                  CTL_NOPTS);
    fprintf(f,
            "\ncommands:\n"
            "  status    cluster overview: quorum, leader, per-node role, applied index,\n"
            "            lag behind the leader, repair backlog and health\n"
            "            (lagging = more than %d entries behind, lag unknown, or bytes still\n"
            "            to repair)\n"
            "\nexit status: 0 quorum, 2 no quorum, 1 gateway unreachable or bad answer,\n"
            "             64 bad command line\n",
            CTL_STATUS_LAG_OK);
}

/* Print at most 200 bytes of an unexpected answer, control bytes masked. */
static void print_excerpt(FILE *err, const char *p, size_t n)
{
    if (n > 200)
        n = 200;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        fputc(c < 0x20 || c >= 0x7f ? '.' : c, err);
    }
    fputc('\n', err);
}

static int fetch_status(const struct ctl_cfg *cfg, struct cm_sbuf *raw, struct ctl_http_response *r,
                        FILE *err)
{
    char errmsg[256] = "";
    struct ctl_url url;
    if (ctl_url_parse(cfg->gateway, &url, errmsg, sizeof(errmsg)) != 0) {
        fprintf(err, "headwaterctl: %s\n", errmsg);
        return CTL_EXIT_USAGE;
    }
    int rc = ctl_http_get(&url, "/status", (int)cfg->timeout_ms, raw, r, errmsg, sizeof(errmsg));
    if (rc != 0) {
        fprintf(err, "headwaterctl: gateway %s unreachable: %s\n", cfg->gateway, errmsg);
        return CTL_EXIT_ERROR;
    }
    /* A gateway may answer 503 with the document when there is no quorum. */
    if (r->status != 200 && r->status != 503) {
        fprintf(err, "headwaterctl: gateway %s answered HTTP %d to /status: ", cfg->gateway,
                r->status);
        print_excerpt(err, raw->p + r->body_off, r->body_len);
        return CTL_EXIT_ERROR;
    }
    return CTL_EXIT_OK;
}

static int cmd_status(const struct ctl_cfg *cfg, FILE *out, FILE *err)
{
    struct cm_sbuf raw, table;
    struct ctl_http_response r;
    struct ctl_json *doc = NULL;
    struct ctl_status st;
    char errmsg[256] = "";
    cm_sbuf_init(&raw);
    cm_sbuf_init(&table);
    int code = fetch_status(cfg, &raw, &r, err);
    if (code != CTL_EXIT_OK)
        goto out;
    code = CTL_EXIT_ERROR;
    const char *body = raw.p + r.body_off;
    if (ctl_json_parse(body, r.body_len, &doc, errmsg, sizeof(errmsg)) != 0) {
        fprintf(err, "headwaterctl: gateway %s answered garbage to /status (%s): ", cfg->gateway,
                errmsg);
        print_excerpt(err, body, r.body_len);
        goto out;
    }
    if (ctl_status_from_json(doc, &st, errmsg, sizeof(errmsg)) != 0) {
        fprintf(err, "headwaterctl: gateway %s: %s\n", cfg->gateway, errmsg);
        goto out;
    }
    if (cfg->json) {
        fwrite(body, 1, r.body_len, out);
        if (r.body_len == 0 || body[r.body_len - 1] != '\n')
            fputc('\n', out);
    } else {
        ctl_status_render(&st, &table);
        fputs(table.oom ? "out of memory\n" : table.p, out);
    }
    code = ctl_status_exit_code(&st);
    if (code == CTL_EXIT_NO_QUORUM)
        fprintf(err, "headwaterctl: the cluster has NO QUORUM: writes are refused\n");
    ctl_status_free(&st);
out:
    ctl_json_free(doc);
    cm_sbuf_free(&table);
    cm_sbuf_free(&raw);
    return code;
}

int ctl_cli_run(int argc, char **argv, FILE *out, FILE *err)
{
    struct ctl_cfg cfg;
    char errmsg[256] = "";
    char *rest[16];
    int nrest = 0;
    memset(&cfg, 0, sizeof(cfg));
    if (argc > (int)(sizeof(rest) / sizeof(rest[0]))) {
        fprintf(err, "headwaterctl: too many arguments\n");
        return CTL_EXIT_USAGE;
    }
    int rc = cm_opts_parse(ctl_opts, CTL_NOPTS, &cfg, argc, argv, "HEADWATER_", rest, &nrest,
                           errmsg, sizeof(errmsg));
    if (rc == CM_EHELP) {
        usage(out);
        return CTL_EXIT_OK;
    }
    if (rc != 0) {
        fprintf(err, "headwaterctl: %s\n", errmsg);
        return CTL_EXIT_USAGE;
    }
    if (nrest == 0) {
        usage(err);
        return CTL_EXIT_USAGE;
    }
    if (nrest == 1 && strcmp(rest[0], "status") == 0)
        return cmd_status(&cfg, out, err);
    fprintf(err, "headwaterctl: unknown command '%s' (this build knows: status)\n", rest[0]);
    return CTL_EXIT_USAGE;
}
