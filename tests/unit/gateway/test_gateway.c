/* The whole gateway in-process against fake nodes over real loopback sockets: writes fan out
 * and commit, reads stream back, errors are JSON, pipelining keeps order, node failures give
 * the documented answers, and shutdown closes every handle. */
#include "flow.h"

Test(gateway, put_get_head_delete_roundtrip)
{
    struct t t;
    setup(&t);
    struct hc h;
    struct cm_sbuf req;
    cm_sbuf_init(&req);
    size_t size = 3 * 1024 * 1024 + 123;
    put_body(&req, "/live/ch1/seg_1.m4s", size, 'a');
    exchange(&t, &h, t.listen, req.p, req.len, 1, 0, 100000);
    cr_assert_eq(h.n, 1);
    cr_assert_eq(h.r[0].status, 201, "status %d body %s", h.r[0].status, h.r[0].body.p);
    struct fc_object *o = fc_find(&t.fc, "/live/ch1/seg_1.m4s");
    cr_assert_not_null(o);
    cr_assert_eq(o->data.len, size);
    const char *body = strstr(req.p, "\r\n\r\n") + 4;
    cr_assert_eq(memcmp(o->data.p, body, size), 0);
    cr_assert_str_eq(o->ctype, "video/mp4");
    cr_assert_eq(o->holders, 3);
    hc_free(&h);

    const char *get = "GET /live/ch1/seg_1.m4s?x=1 HTTP/1.1\r\n\r\n";
    exchange(&t, &h, t.listen, get, strlen(get), 1, 0, 0);
    cr_assert_eq(h.n, 1);
    cr_assert_eq(h.r[0].status, 200);
    cr_assert_eq(h.r[0].body.len, size);
    cr_assert_eq(memcmp(h.r[0].body.p, body, size), 0);
    cr_assert(has_header(&h.r[0], "content-type: video/mp4\n"), "%s", h.r[0].headers.p);
    cr_assert(has_header(&h.r[0], "etag: \"1\"\n"), "%s", h.r[0].headers.p);
    cr_assert(has_header(&h.r[0], "last-modified: Sun, 06 Nov 1994 08:49:37 GMT\n"));
    hc_free(&h);

    cm_sbuf_reset(&req);
    put_body(&req, "/live/ch1/seg_1.m4s", 10, 'b');
    cm_sbuf_puts(&req, "HEAD /live/ch1/seg_1.m4s HTTP/1.1\r\n\r\n"
                       "DELETE /live/ch1/seg_1.m4s HTTP/1.1\r\n\r\n"
                       "GET /live/ch1/seg_1.m4s HTTP/1.1\r\n\r\n"
                       "DELETE /live/ch1/seg_1.m4s HTTP/1.1\r\n\r\n");
    exchange(&t, &h, t.listen, req.p, req.len, 5, 1u << 1, 0);
    cr_assert_eq(h.n, 5);
    cr_assert_eq(h.r[0].status, 204, "replace answers 204");
    cr_assert_eq(h.r[1].status, 200);
    cr_assert(has_header(&h.r[1], "content-length: 10\n"), "%s", h.r[1].headers.p);
    cr_assert_eq(h.r[1].body.len, 0);
    cr_assert_eq(h.r[2].status, 204);
    cr_assert_eq(h.r[3].status, 404);
    cr_assert(strstr(h.r[3].body.p, "\"error\":\"not_found\"") != NULL);
    cr_assert_eq(h.r[4].status, 404);
    hc_free(&h);
    cm_sbuf_free(&req);
    teardown(&t);
}

Test(gateway, chunked_pipelined_ffmpeg_style)
{
    struct t t;
    setup(&t);
    struct hc h;
    struct cm_sbuf req;
    cm_sbuf_init(&req);
    cm_sbuf_puts(&req, "POST /live/ch2/index.m3u8 HTTP/1.1\r\nIcy-MetaData: 1\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 200; i++)
        cm_sbuf_printf(&req, "%x\r\n#EXT-%04d\n\r\n", 10, i);
    cm_sbuf_puts(&req, "0\r\n\r\nGET /live/ch2/index.m3u8 HTTP/1.1\r\n\r\n"
                       "PUT /live/ch2/empty.ts HTTP/1.1\r\nContent-Length: 0\r\n\r\n"
                       "GET /live/ch2/empty.ts HTTP/1.0\r\n\r\n");
    exchange(&t, &h, t.listen, req.p, req.len, 4, 0, 7);
    cr_assert_eq(h.n, 4);
    cr_assert_eq(h.r[0].status, 201, "%s", h.r[0].body.p);
    cr_assert_eq(h.r[1].status, 200);
    cr_assert_eq(h.r[1].body.len, 2000);
    cr_assert_eq(memcmp(h.r[1].body.p, "#EXT-0000\n#EXT-0001\n", 20), 0);
    cr_assert(has_header(&h.r[1], "content-type: application/vnd.apple.mpegurl\n"));
    cr_assert_eq(h.r[2].status, 201);
    cr_assert_eq(h.r[3].status, 200);
    cr_assert(has_header(&h.r[3], "content-length: 0\n"));
    cr_assert(has_header(&h.r[3], "connection: close\n"), "HTTP/1.0 closes");
    hc_free(&h);
    cm_sbuf_free(&req);
    teardown(&t);
}

Test(gateway, errors_are_json)
{
    struct t t;
    setup(&t);
    struct hc h;
    const char *bad = "GET /live/%2e%2e/x HTTP/1.1\r\n\r\n";
    exchange(&t, &h, t.listen, bad, strlen(bad), 1, 0, 0);
    cr_assert_eq(h.r[0].status, 400);
    cr_assert(strstr(h.r[0].body.p, "\"error\":\"bad_key\"") != NULL);
    hc_free(&h);

    const char *nolen = "PUT /a/b.ts HTTP/1.1\r\n\r\n";
    exchange(&t, &h, t.listen, nolen, strlen(nolen), 1, 0, 0);
    cr_assert_eq(h.r[0].status, 411);
    cr_assert(strstr(h.r[0].body.p, "\"error\":\"length_required\"") != NULL);
    cr_assert(strstr(h.r[0].body.p, "\"committed\":false") != NULL);
    hc_free(&h);

    const char *big = "PUT /a/big.ts HTTP/1.1\r\nContent-Length: 999999999\r\n\r\nxx";
    exchange(&t, &h, t.listen, big, strlen(big), 1, 0, 0);
    cr_assert_eq(h.r[0].status, 413);
    cr_assert(strstr(h.r[0].body.p, "\"error\":\"too_large\"") != NULL);
    cr_assert(has_header(&h.r[0], "connection: close\n"), "connection closed after 413");
    hc_free(&h);

    /* chunked over the limit: 413 while streaming, nothing stored */
    struct cm_sbuf req;
    cm_sbuf_init(&req);
    cm_sbuf_puts(&req, "PUT /a/big2.ts HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
    static char block[65536];
    memset(block, 'z', sizeof(block));
    for (int i = 0; i < 140; i++) {
        cm_sbuf_printf(&req, "%zx\r\n", sizeof(block));
        cm_sbuf_append(&req, block, sizeof(block));
        cm_sbuf_puts(&req, "\r\n");
    }
    cm_sbuf_puts(&req, "0\r\n\r\n");
    exchange(&t, &h, t.listen, req.p, req.len, 1, 0, 0);
    cr_assert_eq(h.r[0].status, 413);
    cr_assert_null(fc_find(&t.fc, "/a/big2.ts"));
    hc_free(&h);
    cm_sbuf_free(&req);

    const char *garbage = "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03garbage\r\n\r\n";
    exchange(&t, &h, t.listen, garbage, strlen(garbage), 1, 0, 0);
    cr_assert_eq(h.r[0].status, 400);
    cr_assert(has_header(&h.r[0], "connection: close\n"));
    hc_free(&h);

    const char *ok = "GET /nope/x.ts HTTP/1.1\r\n\r\n";
    exchange(&t, &h, t.listen, ok, strlen(ok), 1, 0, 0);
    cr_assert_eq(h.r[0].status, 404, "gateway still serves after garbage");
    hc_free(&h);
    teardown(&t);
}

Test(gateway, admin_endpoints)
{
    struct t t;
    setup(&t);
    struct hc h;
    const char *req = "GET /healthz HTTP/1.1\r\n\r\nGET /readyz HTTP/1.1\r\n\r\n"
                      "GET /status HTTP/1.1\r\n\r\nGET /nope HTTP/1.1\r\n\r\n";
    exchange(&t, &h, t.admin, req, strlen(req), 4, 0, 0);
    cr_assert_eq(h.n, 4);
    cr_assert_eq(h.r[0].status, 200);
    cr_assert_str_eq(h.r[0].body.p, "{\"ok\":true}\n");
    cr_assert_eq(h.r[1].status, 200);
    cr_assert_eq(h.r[2].status, 200);
    const char *s = h.r[2].body.p;
    cr_assert(strstr(s, "{\"quorum\":true,\"leader\":1,\"shards\":1,\"epoch\":1,\"nodes\":[") == s,
              "%s", s);
    cr_assert(strstr(s, "\"id\":2,\"address\":\"127.0.0.1:") != NULL, "%s", s);
    cr_assert(strstr(s, "\"zone\":\"z1\",\"role\":\"follower\",\"term\":2") != NULL, "%s", s);
    cr_assert(strstr(s, "\"lag\":0,\"repair_backlog\":0,\"reachable\":true}") != NULL, "%s", s);
    cr_assert_eq(h.r[3].status, 404);
    hc_free(&h);
    teardown(&t);
}

Test(gateway, one_replica_down_still_writes)
{
    struct t t;
    setup(&t);
    fc_node_down(&t.fc, 2);
    struct hc h;
    struct cm_sbuf req;
    cm_sbuf_init(&req);
    put_body(&req, "/live/ch3/seg.ts", 100000, 'c');
    exchange(&t, &h, t.listen, req.p, req.len, 1, 0, 0);
    cr_assert_eq(h.r[0].status, 201, "%s", h.r[0].body.p);
    cr_assert_eq(fc_find(&t.fc, "/live/ch3/seg.ts")->holders, 2);
    hc_free(&h);
    const char *get = "GET /live/ch3/seg.ts HTTP/1.1\r\n\r\n";
    exchange(&t, &h, t.listen, get, strlen(get), 1, 0, 0);
    cr_assert_eq(h.r[0].status, 200);
    cr_assert_eq(h.r[0].body.len, 100000);
    hc_free(&h);
    cm_sbuf_free(&req);
    teardown(&t);
}

Test(gateway, silent_replica_does_not_block_the_write)
{
    struct t t;
    setup(&t);
    t.fc.n[2].silent = 1;
    struct hc h;
    struct cm_sbuf req;
    cm_sbuf_init(&req);
    put_body(&req, "/live/ch4/seg.ts", 50000, 'd');
    uint64_t t0 = cm_mono_ms();
    exchange(&t, &h, t.listen, req.p, req.len, 1, 0, 0);
    cr_assert_eq(h.r[0].status, 201, "%s", h.r[0].body.p);
    cr_assert_lt(cm_mono_ms() - t0, 1500, "grace after quorum is short");
    hc_free(&h);
    cm_sbuf_free(&req);
    teardown(&t);
}

Test(gateway, no_quorum_answers_503_fast_and_recovers)
{
    struct t t;
    setup(&t);
    fc_node_down(&t.fc, 1);
    fc_node_down(&t.fc, 2);
    struct hc h;
    struct cm_sbuf req;
    cm_sbuf_init(&req);
    put_body(&req, "/live/ch5/seg.ts", 1000, 'e');
    uint64_t t0 = cm_mono_ms();
    exchange(&t, &h, t.listen, req.p, req.len, 1, 0, 0);
    cr_assert_eq(h.r[0].status, 503, "%s", h.r[0].body.p);
    cr_assert_leq(cm_mono_ms() - t0, 3200);
    cr_assert(strstr(h.r[0].body.p, "\"error\":\"no_quorum\"") != NULL);
    cr_assert(strstr(h.r[0].body.p, "\"committed\":false") != NULL);
    cr_assert(has_header(&h.r[0], "retry-after: 1\n"));
    hc_free(&h);
    fc_node_up(&t.fc, 1);
    fc_node_up(&t.fc, 2);
    exchange(&t, &h, t.listen, req.p, req.len, 1, 0, 0);
    cr_assert_eq(h.r[0].status, 201, "%s", h.r[0].body.p);
    hc_free(&h);
    cm_sbuf_free(&req);
    teardown(&t);
}

/* A replica whose disk is full answers STAGE with NO_SPACE: it is left out and the write
 * commits on the other two; the next upload within GW_FULL_REMEMBER_MS does not stage to it. */
Test(gateway, a_full_replica_is_left_out_of_the_upload)
{
    struct t t;
    setup(&t);
    t.fc.n[2].nospace = 1;
    struct hc h;
    struct cm_sbuf req;
    cm_sbuf_init(&req);
    put_body(&req, "/live/full1/seg.ts", 100000, 'f');
    exchange(&t, &h, t.listen, req.p, req.len, 1, 0, 0);
    cr_assert_eq(h.r[0].status, 201, "%s", h.r[0].body.p);
    cr_assert_eq(fc_find(&t.fc, "/live/full1/seg.ts")->holders, 2);
    hc_free(&h);
    int stages = t.fc.n[2].stages;
    cr_assert_geq(stages, 1);
    cm_sbuf_reset(&req);
    put_body(&req, "/live/full1/seg2.ts", 1000, 'g');
    exchange(&t, &h, t.listen, req.p, req.len, 1, 0, 0);
    cr_assert_eq(h.r[0].status, 201, "%s", h.r[0].body.p);
    cr_assert_eq(t.fc.n[2].stages, stages, "a node reported full lately is left out");
    hc_free(&h);
    cm_sbuf_free(&req);
    teardown(&t);
}

/* Two of three full: 507 with the JSON error and committed:false (never 503 "too few
 * replicas"); once they have space again (and the gateway's memory of it ran out) writes are
 * 201 again. */
Test(gateway, too_few_replicas_with_space_is_507)
{
    struct t t;
    setup(&t);
    t.fc.n[1].nospace = 1;
    t.fc.n[2].nospace = 1;
    struct hc h;
    struct cm_sbuf req;
    cm_sbuf_init(&req);
    put_body(&req, "/live/full2/seg.ts", 50000, 'h');
    exchange(&t, &h, t.listen, req.p, req.len, 1, 0, 0);
    cr_assert_eq(h.r[0].status, 507, "%s", h.r[0].body.p);
    cr_assert_str_eq(gw_http_reason(507), "Insufficient Storage");
    cr_assert(strstr(h.r[0].body.p, "\"error\":\"insufficient_storage\"") != NULL);
    cr_assert(strstr(h.r[0].body.p, "\"committed\":false") != NULL);
    cr_assert_null(fc_find(&t.fc, "/live/full2/seg.ts"));
    hc_free(&h);
    /* still remembered as full: refused again without staging to them */
    exchange(&t, &h, t.listen, req.p, req.len, 1, 0, 0);
    cr_assert_eq(h.r[0].status, 507, "%s", h.r[0].body.p);
    hc_free(&h);
    t.fc.n[1].nospace = 0;
    t.fc.n[2].nospace = 0;
    int status = 0;
    for (uint64_t end = cm_mono_ms() + 5000; status != 201 && cm_mono_ms() < end;) {
        exchange(&t, &h, t.listen, req.p, req.len, 1, 0, 0);
        status = h.r[0].status;
        cr_assert(status == 201 || status == 507, "%d %s", status, h.r[0].body.p);
        hc_free(&h);
        if (status != 201)
            usleep(50 * 1000); /* poll interval */
    }
    cr_assert_eq(status, 201, "writes resume once space returns");
    cm_sbuf_free(&req);
    teardown(&t);
}

/* Every COMMIT attempt is refused with NO_LEADER: never proposed, so 503 committed:false once
 * the 3 s deadline passes. */
Test(gateway, no_leader_until_deadline_is_503)
{
    struct t t;
    setup(&t);
    t.fc.no_leader = 1;
    struct hc h;
    struct cm_sbuf req;
    cm_sbuf_init(&req);
    put_body(&req, "/live/ch6/seg.ts", 1000, 'f');
    uint64_t t0 = cm_mono_ms();
    exchange(&t, &h, t.listen, req.p, req.len, 1, 0, 0);
    uint64_t took = cm_mono_ms() - t0;
    cr_assert_eq(h.r[0].status, 503, "%s", h.r[0].body.p);
    cr_assert(strstr(h.r[0].body.p, "\"committed\":false") != NULL);
    cr_assert(took >= 2500 && took <= 3500, "took %llu ms", (unsigned long long)took);
    hc_free(&h);
    cm_sbuf_free(&req);
    teardown(&t);
}

/* The leader takes the COMMIT and never answers: the outcome is unknown -> 504, committed null. */
Test(gateway, commit_without_answer_is_504_null)
{
    struct t t;
    setup(&t);
    t.fc.commit_silent = 1;
    struct hc h;
    struct cm_sbuf req;
    cm_sbuf_init(&req);
    put_body(&req, "/live/ch7/seg.ts", 1000, 'g');
    uint64_t t0 = cm_mono_ms();
    exchange(&t, &h, t.listen, req.p, req.len, 1, 0, 0);
    uint64_t took = cm_mono_ms() - t0;
    cr_assert_eq(h.r[0].status, 504, "%s", h.r[0].body.p);
    cr_assert(strstr(h.r[0].body.p, "\"error\":\"timeout\"") != NULL);
    cr_assert(strstr(h.r[0].body.p, "\"committed\":null") != NULL);
    cr_assert(took >= 2500 && took <= 3500, "took %llu ms", (unsigned long long)took);
    hc_free(&h);
    cm_sbuf_free(&req);
    teardown(&t);
}

/* Replicas answering UNAVAILABLE are skipped; the read succeeds on the one that has it. */
Test(gateway, read_falls_over_to_next_replica)
{
    struct t t;
    setup(&t);
    struct hc h;
    const char *put = "PUT /live/ch8/a.vtt HTTP/1.1\r\nCache-Control: max-age=5\r\n"
                      "Content-Length: 3\r\n\r\nabc";
    exchange(&t, &h, t.listen, put, strlen(put), 1, 0, 0);
    cr_assert_eq(h.r[0].status, 201);
    hc_free(&h);
    t.fc.n[0].get_unavailable = 1;
    t.fc.n[1].get_unavailable = 1;
    const char *get = "GET /live/ch8/a.vtt HTTP/1.1\r\n\r\nHEAD /live/ch8/a.vtt HTTP/1.1\r\n\r\n";
    exchange(&t, &h, t.listen, get, strlen(get), 2, 2, 0);
    cr_assert_eq(h.r[0].status, 200);
    cr_assert_str_eq(h.r[0].body.p, "abc");
    cr_assert(has_header(&h.r[0], "content-type: text/vtt\n"));
    cr_assert(has_header(&h.r[0], "cache-control: max-age=5\n"), "%s", h.r[0].headers.p);
    cr_assert_eq(h.r[1].status, 200);
    cr_assert_geq(t.fc.n[2].gets, 2);
    hc_free(&h);
    t.fc.n[2].get_unavailable = 1;
    exchange(&t, &h, t.listen, get, strlen(get), 1, 0, 0);
    cr_assert_eq(h.r[0].status, 503);
    cr_assert(strstr(h.r[0].body.p, "\"error\":\"unavailable\"") != NULL);
    hc_free(&h);
    teardown(&t);
}

/* If-Match / If-None-Match travel in the COMMIT; the leader's PRECONDITION_FAILED answer becomes
 * 412 precondition_failed with committed:false, and the object keeps its content. */
Test(gateway, conditional_put_rides_in_the_commit)
{
    struct t t;
    setup(&t);
    struct hc h;
    const char *create = "PUT /live/cas/index.m3u8 HTTP/1.1\r\nIf-None-Match: *\r\n"
                         "Content-Length: 3\r\n\r\none";
    exchange(&t, &h, t.listen, create, strlen(create), 1, 0, 0);
    cr_assert_eq(h.r[0].status, 201, "%s", h.r[0].body.p);
    cr_assert(has_header(&h.r[0], "etag: \"1\"\n"), "%s", h.r[0].headers.p);
    hc_free(&h);
    exchange(&t, &h, t.listen, create, strlen(create), 1, 0, 0);
    cr_assert_eq(h.r[0].status, 412, "%s", h.r[0].body.p);
    cr_assert(strstr(h.r[0].body.p, "\"error\":\"precondition_failed\"") != NULL);
    cr_assert(strstr(h.r[0].body.p, "\"committed\":false") != NULL);
    hc_free(&h);
    const char *stale = "PUT /live/cas/index.m3u8 HTTP/1.1\r\nIf-Match: \"7\"\r\n"
                        "Content-Length: 3\r\n\r\ntwo";
    exchange(&t, &h, t.listen, stale, strlen(stale), 1, 0, 0);
    cr_assert_eq(h.r[0].status, 412, "%s", h.r[0].body.p);
    hc_free(&h);
    const struct fc_object *o = fc_find(&t.fc, "/live/cas/index.m3u8");
    cr_assert(o != NULL && o->version == 1 && o->data.len == 3 && memcmp(o->data.p, "one", 3) == 0);
    const char *match = "PUT /live/cas/index.m3u8 HTTP/1.1\r\nIf-Match: \"1\"\r\n"
                        "Content-Length: 5\r\n\r\nthree";
    exchange(&t, &h, t.listen, match, strlen(match), 1, 0, 0);
    cr_assert_eq(h.r[0].status, 204, "%s", h.r[0].body.p);
    hc_free(&h);
    cr_assert_eq(t.fc.n[0].gets, 0, "no separate HEAD to check the precondition");
    teardown(&t);
}

/* The client goes away mid-body: nothing is stored, nothing leaks, the gateway keeps serving. */
Test(gateway, client_abort_mid_upload)
{
    struct t t;
    setup(&t);
    struct hc h;
    struct cm_sbuf req;
    cm_sbuf_init(&req);
    cm_sbuf_puts(&req, "PUT /live/ch9/seg.ts HTTP/1.1\r\nContent-Length: 5000000\r\n\r\n");
    for (int i = 0; i < 100000; i++)
        cm_sbuf_puts(&req, "0123456789");
    /* want 1 answer that never comes: the client closes after the server stays silent */
    memset(&h, 0, sizeof(h));
    exchange(&t, &h, t.listen, req.p, req.len, 0, 0, 0);
    cr_assert_eq(h.n, 0);
    for (int i = 0; i < 20; i++)
        uv_run(&t.loop, UV_RUN_NOWAIT);
    cr_assert_null(fc_find(&t.fc, "/live/ch9/seg.ts"));
    const char *get = "GET /live/ch9/seg.ts HTTP/1.1\r\n\r\n";
    exchange(&t, &h, t.listen, get, strlen(get), 1, 0, 0);
    cr_assert_eq(h.r[0].status, 404);
    hc_free(&h);
    cm_sbuf_free(&req);
    teardown(&t);
}

static void on_flag_timer(uv_timer_t *tm)
{
    *(int *)tm->data = 1;
}

/* Let the loop (fake nodes) run for ms milliseconds. */
static void run_for(struct t *t, unsigned ms)
{
    uv_timer_t tm;
    int flag = 0;
    uv_timer_init(&t->loop, &tm);
    tm.data = &flag;
    uv_timer_start(&tm, on_flag_timer, ms, 0);
    run_until(t, &flag, ms + 5000);
    uv_close((uv_handle_t *)&tm, NULL);
    uv_run(&t->loop, UV_RUN_NOWAIT);
}

/* --threads: worker loops share the data port (SO_REUSEPORT); every connection is served by
 * one of them; stop + join leaves nothing open. */
Test(gateway, worker_threads_share_the_port)
{
    struct t t;
    memset(&t, 0, sizeof(t));
    signal(SIGPIPE, SIG_IGN);
    cm_log_init("test", CM_LOG_WARN);
    uv_loop_init(&t.loop);
    fc_start(&t.fc, &t.loop);
    static char nodes[256];
    snprintf(nodes, sizeof(nodes), "%s", t.fc.n[0].addr);
    t.cfg.threads = 3;
    t.cfg.max_object_size = 1 << 20;
    t.cfg.log_level = "warn";
    t.cfg.insecure = 1;
    t.cfg.nodes = nodes;
    char err[256];
    struct gw_workers *ws = NULL;
    for (int port = 41000 + (getpid() * 11) % 20000;; port += 2) {
        snprintf(t.listen, sizeof(t.listen), "127.0.0.1:%d", port);
        snprintf(t.admin, sizeof(t.admin), "127.0.0.1:%d", port + 1);
        t.cfg.listen = t.listen;
        t.cfg.admin_listen = t.admin;
        cr_assert_eq(gw_config_validate(&t.cfg, err, sizeof(err)), 0, "%s", err);
        if (gw_ctx_start(&t.ctx, &t.loop, &t.cfg, GW_CTX_ADMIN | GW_CTX_REUSEPORT, err,
                         sizeof(err)) == 0)
            break;
        uv_run(&t.loop, UV_RUN_NOWAIT);
    }
    cr_assert_eq(gw_workers_start(&t.cfg, 2, &ws, err, sizeof(err)), 0, "%s", err);
    run_for(&t, 700); /* every loop learns the cluster map */
    int created = 0;
    for (int i = 0; i < 12; i++) {
        struct hc h;
        char req[256];
        int n = snprintf(req, sizeof(req),
                         "PUT /live/thr/s%d.ts HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcd"
                         "GET /live/thr/s%d.ts HTTP/1.1\r\n\r\n",
                         i, i);
        exchange(&t, &h, t.listen, req, (size_t)n, 2, 0, 0);
        cr_assert_eq(h.n, 2);
        created += h.r[0].status == 201;
        cr_assert_eq(h.r[1].status, 200);
        cr_assert_str_eq(h.r[1].body.p, "abcd");
        hc_free(&h);
    }
    cr_assert_eq(created, 12);
    gw_workers_stop(ws);
    gw_ctx_stop(&t.ctx);
    /* the fake nodes live on this loop: keep it running until the workers are gone */
    run_for(&t, 300);
    cr_assert_eq(gw_workers_join(ws), 0);
    fc_stop(&t.fc);
    uv_run(&t.loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&t.loop), 0);
}
