/* headwaterctl end to end against a one-shot fake gateway on a loopback socket. */
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli.h"
#include "status.h"

struct fake {
    int lfd;
    int port;
    const char *answer; /* sent verbatim after the request headers arrive */
    int hang_ms;        /* then keep the connection open this long */
    int dribble;        /* send the answer a few bytes at a time */
    char request[2048];
    pthread_t thread;
};

static void *serve(void *arg)
{
    struct fake *f = arg;
    int fd = accept(f->lfd, NULL, NULL);
    if (fd < 0)
        return NULL;
    size_t n = 0;
    while (n + 1 < sizeof(f->request)) {
        ssize_t got = read(fd, f->request + n, sizeof(f->request) - 1 - n);
        if (got <= 0)
            break;
        n += (size_t)got;
        f->request[n] = '\0';
        if (strstr(f->request, "\r\n\r\n"))
            break;
    }
    size_t len = f->answer ? strlen(f->answer) : 0;
    size_t step = f->dribble ? 7 : len;
    for (size_t off = 0; off < len; off += step) {
        (void)!write(fd, f->answer + off, len - off < step ? len - off : step);
        if (f->dribble)
            usleep(1000);
    }
    if (f->hang_ms)
        usleep((useconds_t)f->hang_ms * 1000);
    close(fd);
    return NULL;
}

static void fake_start(struct fake *f, const char *answer, int hang_ms, int dribble)
{
    memset(f, 0, sizeof(*f));
    f->answer = answer;
    f->hang_ms = hang_ms;
    f->dribble = dribble;
    f->lfd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(f->lfd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    cr_assert_eq(bind(f->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(listen(f->lfd, 4), 0);
    cr_assert_eq(getsockname(f->lfd, (struct sockaddr *)&a, &al), 0);
    f->port = ntohs(a.sin_port);
    cr_assert_eq(pthread_create(&f->thread, NULL, serve, f), 0);
}

static void fake_stop(struct fake *f)
{
    pthread_join(f->thread, NULL);
    close(f->lfd);
}

struct run {
    int code;
    char *out;
    char *err;
};

static struct run run_cli(int port, const char *extra1, const char *extra2)
{
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
    char *argv[8];
    int argc = 0;
    argv[argc++] = "headwaterctl";
    argv[argc++] = "--gateway";
    argv[argc++] = url;
    if (extra1)
        argv[argc++] = (char *)extra1;
    if (extra2)
        argv[argc++] = (char *)extra2;
    argv[argc++] = "status";
    argv[argc] = NULL;
    struct run r;
    size_t ol, el;
    FILE *out = open_memstream(&r.out, &ol);
    FILE *err = open_memstream(&r.err, &el);
    r.code = ctl_cli_run(argc, argv, out, err);
    fclose(out);
    fclose(err);
    return r;
}

static void run_free(struct run *r)
{
    free(r->out);
    free(r->err);
}

#define STATUS_OK                                                                                  \
    "{\"quorum\":true,\"leader\":2,\"nodes\":[{\"id\":1,\"address\":\"127.0.0.1:7001\","           \
    "\"role\":\"follower\",\"applied_index\":9,\"lag\":0,\"repair_backlog\":0,"                    \
    "\"reachable\":true},{\"id\":2,\"address\":\"127.0.0.1:7002\",\"role\":\"leader\","            \
    "\"applied_index\":9,\"lag\":0,\"repair_backlog\":0,\"reachable\":true}]}"
#define STATUS_NQ "{\"quorum\":false,\"leader\":null,\"nodes\":[{\"id\":1,\"reachable\":false}]}"

static char *answer(const char *status, const char *body)
{
    static char buf[4096];
    snprintf(buf, sizeof(buf),
             "HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
             status, strlen(body), body);
    return buf;
}

Test(cli, quorum_prints_table_and_exits_0)
{
    struct fake f;
    fake_start(&f, answer("200 OK", STATUS_OK), 0, 0);
    struct run r = run_cli(f.port, NULL, NULL);
    fake_stop(&f);
    cr_assert_eq(r.code, CTL_EXIT_OK, "stderr: %s", r.err);
    cr_assert(strncmp(f.request, "GET /status HTTP/1.1\r\n", 22) == 0, "%s", f.request);
    cr_assert(strstr(r.out, "cluster: quorum yes, leader 2") != NULL, "%s", r.out);
    cr_assert(strstr(r.out, "NODE  ADDRESS") != NULL, "%s", r.out);
    cr_assert(strstr(r.out, "127.0.0.1:7002  leader") != NULL, "%s", r.out);
    cr_assert_str_eq(r.err, "");
    run_free(&r);
}

Test(cli, json_flag_prints_raw_body)
{
    struct fake f;
    fake_start(&f, answer("200 OK", STATUS_OK), 0, 0);
    struct run r = run_cli(f.port, "--json", NULL);
    fake_stop(&f);
    cr_assert_eq(r.code, CTL_EXIT_OK, "stderr: %s", r.err);
    cr_assert_str_eq(r.out, STATUS_OK "\n");
    run_free(&r);
}

Test(cli, chunked_answer_in_small_pieces)
{
    static char chunked[4096];
    const char *body = STATUS_OK;
    size_t half = strlen(body) / 2;
    snprintf(chunked, sizeof(chunked),
             "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%zx\r\n%.*s\r\n%zx\r\n%s\r\n"
             "0\r\n\r\n",
             half, (int)half, body, strlen(body) - half, body + half);
    struct fake f;
    fake_start(&f, chunked, 0, 1);
    struct run r = run_cli(f.port, "--json", NULL);
    fake_stop(&f);
    cr_assert_eq(r.code, CTL_EXIT_OK, "stderr: %s", r.err);
    cr_assert_str_eq(r.out, STATUS_OK "\n");
    run_free(&r);
}

Test(cli, no_quorum_exits_2)
{
    struct fake f;
    fake_start(&f, answer("503 Service Unavailable", STATUS_NQ), 0, 0);
    struct run r = run_cli(f.port, NULL, NULL);
    fake_stop(&f);
    cr_assert_eq(r.code, CTL_EXIT_NO_QUORUM, "stderr: %s", r.err);
    cr_assert(strstr(r.out, "quorum NO") != NULL, "%s", r.out);
    cr_assert(strstr(r.err, "NO QUORUM") != NULL, "%s", r.err);
    run_free(&r);
}

Test(cli, unreachable_gateway_exits_1)
{
    struct fake f;
    fake_start(&f, NULL, 0, 0);
    int port = f.port;
    /* free the port: connect once so the thread returns, then close the listener */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    shutdown(fd, SHUT_WR);
    fake_stop(&f);
    close(fd);
    struct run r = run_cli(port, NULL, NULL);
    cr_assert_eq(r.code, CTL_EXIT_ERROR);
    cr_assert(strstr(r.err, "unreachable") != NULL, "%s", r.err);
    cr_assert_str_eq(r.out, "");
    run_free(&r);
}

Test(cli, garbage_answers_exit_1)
{
    static const char *answers[] = {
        "SSH-2.0-OpenSSH_9.2\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{\"quorum\"",
        "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nhello!",
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
        "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\noops",
        "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"quorum\":true}",
        "",
    };
    for (size_t i = 0; i < sizeof(answers) / sizeof(answers[0]); i++) {
        struct fake f;
        fake_start(&f, answers[i], 0, 0);
        struct run r = run_cli(f.port, NULL, NULL);
        fake_stop(&f);
        cr_assert_eq(r.code, CTL_EXIT_ERROR, "answer %zu: code %d", i, r.code);
        cr_assert(strlen(r.err) > 0);
        cr_assert_str_eq(r.out, "", "answer %zu", i);
        run_free(&r);
    }
}

Test(cli, silent_gateway_times_out)
{
    struct fake f;
    fake_start(&f, NULL, 1500, 0);
    struct run r = run_cli(f.port, "--timeout", "300");
    fake_stop(&f);
    cr_assert_eq(r.code, CTL_EXIT_ERROR);
    cr_assert(strstr(r.err, "deadline") != NULL, "%s", r.err);
    run_free(&r);
}

Test(cli, usage)
{
    size_t ol, el;
    char *o, *e;
    FILE *out = open_memstream(&o, &ol);
    FILE *err = open_memstream(&e, &el);
    char *help[] = {"headwaterctl", "--help", NULL};
    char *none[] = {"headwaterctl", NULL};
    char *unknown[] = {"headwaterctl", "frobnicate", NULL};
    char *badflag[] = {"headwaterctl", "--nope", "status", NULL};
    char *badurl[] = {"headwaterctl", "--gateway", "ftp://x", "status", NULL};
    cr_assert_eq(ctl_cli_run(2, help, out, err), CTL_EXIT_OK);
    cr_assert_eq(ctl_cli_run(1, none, out, err), CTL_EXIT_USAGE);
    cr_assert_eq(ctl_cli_run(2, unknown, out, err), CTL_EXIT_USAGE);
    cr_assert_eq(ctl_cli_run(3, badflag, out, err), CTL_EXIT_USAGE);
    cr_assert_eq(ctl_cli_run(4, badurl, out, err), CTL_EXIT_USAGE);
    fclose(out);
    fclose(err);
    cr_assert(strstr(o, "status") != NULL);
    cr_assert(strstr(e, "frobnicate") != NULL);
    free(o);
    free(e);
}
