/*
 * rendload: the issue-10 load generator (live renditions, or concurrent object writers) for
 * tests/bench/renditions.py and tests/bench/floor.py. One libuv loop, one keep-alive HTTP/1.1
 * connection per writer and per reader, responses parsed with http_parser.
 *
 *   rendload --port P --renditions N [--warmup S] [--duration S] [--prefix /live]
 *            [--seg-bytes 512000]
 *   rendload --port P --writers W [--obj-bytes 204800] [--keys 8] [--warmup S] [--duration S]
 *
 * Prints "START" when the measured window opens and "END" when it closes (the driver samples
 * CPU and injects stalls between them), then one JSON line with the figures of the window.
 *
 * Map.
 *   Happy path (renditions): every second a rendition's writer PUTs prefix/rN/seg_K.ts, then
 *     its playlist prefix/rN/index.m3u8 (6-segment window), then DELETEs seg_{K-6}.ts, one
 *     after the other on its connection. Two readers per rendition GET the playlist every
 *     0.5 s and then GET, in order, every segment it lists that they have not fetched yet; a
 *     reader is behind when a segment arrives after the next one is due (1 s after the second
 *     its writer was scheduled to PUT it), and skips a poll when the previous poll and its
 *     fetches are still running when the next one is due.
 *   Happy path (writers): each writer PUTs prefix/wI/obj_J.bin, J cycling over --keys, back
 *     to back.
 *   Failures: a connect, write or read error or a close before the response ends finishes the
 *     request with status 0; the connection is closed and the next request reconnects. A
 *     writer still busy when its next second ticks counts as late and starts at once after.
 *   Close: at the end of the window timers stop; in-flight requests get a 5 s grace, then every
 *     handle is closed and the loop runs until uv_loop_close() succeeds.
 */
#include <http_parser.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define RL_WINDOW 6
#define RL_READERS 2
#define RL_CAPTURE 8192
#define RL_MAX_SECONDS 4096
#define RL_SCHED 64

struct rl_conn;
typedef void (*rl_done_cb)(struct rl_conn *c, int status);

enum rl_conn_state { RL_IDLE, RL_CONNECTING, RL_BUSY, RL_CLOSING };

struct rl_conn {
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_write_t wreq;
    http_parser parser;
    enum rl_conn_state state;
    int connected;
    int complete;     /* response complete */
    int status;       /* response status, 0 = transport failure */
    int fail_pending; /* finish with status 0 in the close callback */
    char hdr[512];
    size_t hdr_len;
    const char *body; /* borrowed */
    size_t body_len;
    char *capture; /* owned, RL_CAPTURE bytes, or NULL */
    size_t captured;
    uint64_t rx_bytes;
    double t0;
    rl_done_cb on_done;
    void *owner;
    struct rl_load *load;
};

struct rl_stats {
    double *lat; /* owned */
    size_t n, cap;
};

struct rl_rend;

struct rl_reader {
    struct rl_conn conn;
    struct rl_rend *rend;
    uv_timer_t timer;
    long last; /* highest segment fetched, -1 none */
    long queue[RL_WINDOW * 2];
    double learned[RL_WINDOW * 2];
    int qlen, qpos;
    int busy;
};

struct rl_rend {
    int id;
    struct rl_load *load;
    struct rl_conn conn;
    uv_timer_t timer;
    long seg;   /* segment being written */
    long ticks; /* segments scheduled so far; segment K was due at sched[K % RL_SCHED] */
    double sched[RL_SCHED];
    int step; /* 0 seg PUT, 1 playlist PUT, 2 DELETE */
    int busy;
    int pending;         /* ticks that found the writer busy */
    char playlist[1024]; /* the body of the playlist PUT in flight */
    struct rl_reader readers[RL_READERS];
};

struct rl_load {
    uv_loop_t *loop;
    struct sockaddr_in addr;
    int port;
    int renditions, writers, keys;
    double warmup, duration;
    const char *prefix;
    char *seg_body; /* owned */
    size_t seg_bytes, obj_bytes;
    double t_start, t_meas, t_end;
    int stopping;
    uv_timer_t phase;
    int phase_no;
    struct rl_rend *rends;  /* owned */
    struct rl_conn *wconns; /* owned, writers mode */
    long *wnext;            /* owned, writers mode */
    struct rl_stats seg_put, get_lat, obj_put;
    double sec_max[RL_MAX_SECONDS];
    long seg_put_fail, seg_put_slow, pl_put_fail, del_fail, writer_late;
    long seg_get, seg_get_fail, reader_behind, reader_missed, pl_get_fail, reader_poll_skipped;
    long obj_put_fail;
    uint64_t bytes_put, bytes_got, obj_bytes_acked;
    long open_conns;
    uint64_t rng;
};

static double rl_now(void)
{
    return (double)uv_hrtime() / 1e9;
}

static uint64_t rl_rand(struct rl_load *l)
{
    l->rng ^= l->rng << 13;
    l->rng ^= l->rng >> 7;
    l->rng ^= l->rng << 17;
    return l->rng;
}

static int rl_in_window(const struct rl_load *l, double t)
{
    return t >= l->t_meas && t < l->t_end;
}

static void rl_stats_add(struct rl_stats *s, double v)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 1024;
        double *p = realloc(s->lat, cap * sizeof(*p));
        if (p == NULL)
            return; /* a lost sample in a benchmark tool; never a crash */
        s->lat = p;
        s->cap = cap;
    }
    s->lat[s->n++] = v;
}

static int rl_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double rl_pct(struct rl_stats *s, double p)
{
    if (s->n == 0)
        return 0.0;
    qsort(s->lat, s->n, sizeof(double), rl_cmp);
    double k = p / 100.0 * (double)s->n;
    size_t i = (size_t)k;
    if ((double)i < k)
        i++;
    if (i > 0)
        i--;
    return s->lat[i < s->n ? i : s->n - 1];
}

/* ---- one keep-alive HTTP/1.1 client connection ------------------------------------------ */

static int on_resp_body(http_parser *p, const char *at, size_t len)
{
    struct rl_conn *c = p->data;
    c->rx_bytes += len;
    if (c->capture != NULL && c->captured < RL_CAPTURE - 1) {
        size_t n = RL_CAPTURE - 1 - c->captured;
        n = len < n ? len : n;
        memcpy(c->capture + c->captured, at, n);
        c->captured += n;
    }
    return 0;
}

static int on_resp_complete(http_parser *p)
{
    struct rl_conn *c = p->data;
    c->complete = 1;
    c->status = (int)p->status_code;
    return 0;
}

static const http_parser_settings rl_settings = {
    .on_body = on_resp_body,
    .on_message_complete = on_resp_complete,
};

static void rl_conn_finish(struct rl_conn *c, int status)
{
    rl_done_cb cb = c->on_done;
    c->on_done = NULL;
    if (c->capture != NULL)
        c->capture[c->captured] = '\0';
    if (cb != NULL)
        cb(c, status);
}

static void on_conn_closed(uv_handle_t *h)
{
    struct rl_conn *c = h->data;
    c->state = RL_IDLE;
    c->connected = 0;
    c->load->open_conns--;
    if (c->fail_pending) {
        c->fail_pending = 0;
        rl_conn_finish(c, c->complete ? c->status : 0);
    }
}

static void rl_conn_drop(struct rl_conn *c, int finish)
{
    if (c->state == RL_CLOSING)
        return;
    c->fail_pending = finish;
    c->state = RL_CLOSING;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static char scratch[65536]; /* one loop thread: the bytes are parsed before the next read */
    (void)h;
    (void)suggested;
    buf->base = scratch;
    buf->len = sizeof(scratch);
}

static void on_conn_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct rl_conn *c = s->data;
    if (nread == 0)
        return;
    if (nread < 0 || c->state != RL_BUSY) { /* error, EOF, or bytes nobody asked for */
        rl_conn_drop(c, c->state == RL_BUSY);
        return;
    }
    size_t done = http_parser_execute(&c->parser, &rl_settings, buf->base, (size_t)nread);
    if (!c->complete) {
        if (HTTP_PARSER_ERRNO(&c->parser) != HPE_OK || done != (size_t)nread)
            rl_conn_drop(c, 1);
        return;
    }
    if (!http_should_keep_alive(&c->parser) || done != (size_t)nread) {
        rl_conn_drop(c, 1); /* finishes with the status it got, in the close callback */
        return;
    }
    c->state = RL_IDLE;
    rl_conn_finish(c, c->status);
}

static void on_conn_written(uv_write_t *w, int status)
{
    struct rl_conn *c = w->data;
    if (status < 0 && c->state == RL_BUSY)
        rl_conn_drop(c, 1);
}

static void rl_conn_send(struct rl_conn *c)
{
    uv_buf_t bufs[2] = {uv_buf_init(c->hdr, (unsigned)c->hdr_len),
                        uv_buf_init((char *)c->body, (unsigned)c->body_len)};
    http_parser_init(&c->parser, HTTP_RESPONSE);
    c->parser.data = c;
    c->wreq.data = c;
    c->state = RL_BUSY;
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, bufs, c->body_len ? 2 : 1, on_conn_written) != 0)
        rl_conn_drop(c, 1);
}

static void on_conn_connected(uv_connect_t *req, int status)
{
    struct rl_conn *c = req->data;
    if (c->state != RL_CONNECTING)
        return;
    if (status < 0) {
        c->state = RL_BUSY;
        rl_conn_drop(c, 1);
        return;
    }
    c->connected = 1;
    uv_tcp_nodelay(&c->tcp, 1);
    /* Reads stay on while connected, so a server closing an idle connection is seen. */
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_conn_read) != 0) {
        c->state = RL_BUSY;
        rl_conn_drop(c, 1);
        return;
    }
    rl_conn_send(c);
}

static int rl_conn_connect(struct rl_conn *c)
{
    if (uv_tcp_init(c->load->loop, &c->tcp) != 0)
        return -1;
    c->load->open_conns++;
    c->tcp.data = c;
    c->creq.data = c;
    c->state = RL_CONNECTING;
    if (uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&c->load->addr,
                       on_conn_connected) != 0) {
        c->state = RL_BUSY;
        rl_conn_drop(c, 1); /* fires on_done later, from the close callback */
    }
    return 0;
}

/* Starts method path with body (borrowed until on_done). on_done fires exactly once, later. */
static void rl_conn_request(struct rl_conn *c, const char *method, const char *path,
                            const char *ctype, const char *body, size_t len, rl_done_cb cb)
{
    int n = snprintf(c->hdr, sizeof(c->hdr),
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: %s\r\n"
                     "Content-Length: %zu\r\n\r\n",
                     method, path, c->load->port, ctype, len);
    c->hdr_len = n > 0 && (size_t)n < sizeof(c->hdr) ? (size_t)n : 0;
    c->body = body;
    c->body_len = len;
    c->on_done = cb;
    c->complete = 0;
    c->status = 0;
    c->captured = 0;
    c->t0 = rl_now();
    if (c->connected) {
        rl_conn_send(c);
        return;
    }
    if (rl_conn_connect(c) != 0) {
        c->fail_pending = 1; /* no handle: cannot happen on a live loop; report as failed */
        rl_conn_finish(c, 0);
    }
}

static void rl_conn_init(struct rl_conn *c, struct rl_load *l, void *owner, int capture)
{
    memset(c, 0, sizeof(*c));
    c->load = l;
    c->owner = owner;
    c->state = RL_IDLE;
    c->capture = capture ? malloc(RL_CAPTURE) : NULL;
}

static void rl_conn_close(struct rl_conn *c)
{
    if (c->state != RL_CLOSING && (c->connected || c->state != RL_IDLE))
        rl_conn_drop(c, c->state != RL_IDLE);
}

/* ---- a live rendition: segment, playlist, delete, every second --------------------------- */

static void rend_step(struct rl_rend *r);

static void rl_note_ack(struct rl_load *l, double t0, double lat)
{
    if (!rl_in_window(l, t0))
        return;
    size_t sec = (size_t)(t0 - l->t_meas);
    if (sec < RL_MAX_SECONDS && lat > l->sec_max[sec])
        l->sec_max[sec] = lat;
}

static void on_rend_done(struct rl_conn *c, int status)
{
    struct rl_rend *r = c->owner;
    struct rl_load *l = r->load;
    double lat = rl_now() - c->t0;
    int ok = status >= 200 && status < 300;
    int counted = rl_in_window(l, c->t0);
    rl_note_ack(l, c->t0, lat);
    if (r->step == 0 && counted) {
        rl_stats_add(&l->seg_put, lat * 1000.0);
        l->seg_put_fail += !ok;
        l->seg_put_slow += lat > 1.0;
        l->bytes_put += ok ? l->seg_bytes : 0;
    } else if (r->step == 1 && counted) {
        l->pl_put_fail += !ok;
    } else if (r->step == 2 && counted) {
        l->del_fail += !ok && status != 404;
    }
    r->step++;
    if (r->step == 2 && r->seg < RL_WINDOW)
        r->step = 3; /* nothing has left the window yet */
    if (r->step < 3 && !l->stopping) {
        rend_step(r);
        return;
    }
    r->busy = 0;
    r->seg++;
    if (r->pending > 0 && !l->stopping) {
        r->pending--;
        r->busy = 1;
        r->step = 0;
        rend_step(r);
    }
}

static size_t rend_playlist(const struct rl_rend *r, char *out, size_t cap)
{
    long first = r->seg >= RL_WINDOW ? r->seg - RL_WINDOW + 1 : 0;
    int n = snprintf(out, cap,
                     "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n"
                     "#EXT-X-MEDIA-SEQUENCE:%ld\n",
                     first);
    size_t len = n > 0 ? (size_t)n : 0;
    for (long k = first; k <= r->seg && len < cap; k++) {
        n = snprintf(out + len, cap - len, "#EXTINF:1.000,\nseg_%ld.ts\n", k);
        len += n > 0 ? (size_t)n : 0;
    }
    return len < cap ? len : cap - 1;
}

static void rend_step(struct rl_rend *r)
{
    struct rl_load *l = r->load;
    char path[256];
    if (r->step == 0) {
        snprintf(path, sizeof(path), "%s/r%d/seg_%ld.ts", l->prefix, r->id, r->seg);
        rl_conn_request(&r->conn, "PUT", path, "video/mp2t", l->seg_body, l->seg_bytes,
                        on_rend_done);
    } else if (r->step == 1) {
        size_t len = rend_playlist(r, r->playlist, sizeof(r->playlist));
        snprintf(path, sizeof(path), "%s/r%d/index.m3u8", l->prefix, r->id);
        rl_conn_request(&r->conn, "PUT", path, "application/vnd.apple.mpegurl", r->playlist, len,
                        on_rend_done);
    } else {
        snprintf(path, sizeof(path), "%s/r%d/seg_%ld.ts", l->prefix, r->id, r->seg - RL_WINDOW);
        rl_conn_request(&r->conn, "DELETE", path, "video/mp2t", NULL, 0, on_rend_done);
    }
}

static void on_rend_tick(uv_timer_t *t)
{
    struct rl_rend *r = t->data;
    if (r->load->stopping)
        return;
    r->sched[r->ticks % RL_SCHED] = rl_now();
    r->ticks++;
    if (r->busy) {
        r->pending++;
        if (rl_in_window(r->load, rl_now()))
            r->load->writer_late++;
        return;
    }
    r->busy = 1;
    r->step = 0;
    rend_step(r);
}

/* ---- a CDN-like reader: poll the playlist, fetch every new segment in order -------------- */

static void reader_next(struct rl_reader *rd);

static void on_reader_seg(struct rl_conn *c, int status)
{
    struct rl_reader *rd = c->owner;
    struct rl_load *l = rd->rend->load;
    double now = rl_now();
    if (rl_in_window(l, c->t0)) {
        l->seg_get++;
        l->seg_get_fail += status != 200;
        l->bytes_got += status == 200 ? c->rx_bytes : 0;
        /* Behind: fetched after the next segment was due (one segment after this one). */
        long k = rd->queue[rd->qpos];
        struct rl_rend *r = rd->rend;
        double due = k > r->ticks - RL_SCHED ? r->sched[k % RL_SCHED] : rd->learned[rd->qpos];
        l->reader_behind += now > due + 1.0;
        rl_stats_add(&l->get_lat, (now - c->t0) * 1000.0);
    }
    rd->last = rd->queue[rd->qpos];
    rd->qpos++;
    reader_next(rd);
}

static void reader_next(struct rl_reader *rd)
{
    struct rl_load *l = rd->rend->load;
    char path[256];
    if (rd->qpos >= rd->qlen || l->stopping) {
        rd->busy = 0;
        return;
    }
    snprintf(path, sizeof(path), "%s/r%d/seg_%ld.ts", l->prefix, rd->rend->id, rd->queue[rd->qpos]);
    rd->conn.rx_bytes = 0;
    rl_conn_request(&rd->conn, "GET", path, "video/mp2t", NULL, 0, on_reader_seg);
}

/* Queues the segments of the playlist text newer than the last one fetched. */
static void reader_parse(struct rl_reader *rd, const char *text, double now)
{
    struct rl_load *l = rd->rend->load;
    long listed[RL_WINDOW * 2];
    int n = 0;
    for (const char *p = strstr(text, "seg_"); p != NULL && n < RL_WINDOW * 2;
         p = strstr(p + 4, "seg_")) {
        char *end;
        long k = strtol(p + 4, &end, 10);
        if (end != p + 4 && strncmp(end, ".ts", 3) == 0)
            listed[n++] = k;
    }
    rd->qlen = rd->qpos = 0;
    if (n == 0)
        return;
    if (rd->last < 0)
        rd->last = listed[n - 1] - 1; /* join at the live edge */
    for (int i = 0; i < n; i++) {
        if (listed[i] <= rd->last)
            continue;
        if (rd->qlen == 0 && listed[i] > rd->last + 1 && rl_in_window(l, now))
            l->reader_missed += listed[i] - rd->last - 1; /* left the window unfetched */
        rd->queue[rd->qlen] = listed[i];
        rd->learned[rd->qlen++] = now;
    }
}

static void on_reader_playlist(struct rl_conn *c, int status)
{
    struct rl_reader *rd = c->owner;
    struct rl_load *l = rd->rend->load;
    if (status != 200) {
        /* Before the first playlist exists a 404 is expected; later it is a failure. */
        if (rd->last >= 0 && rl_in_window(l, c->t0))
            l->pl_get_fail++;
        rd->busy = 0;
        return;
    }
    reader_parse(rd, c->capture, rl_now());
    reader_next(rd);
}

static void on_reader_tick(uv_timer_t *t)
{
    struct rl_reader *rd = t->data;
    struct rl_load *l = rd->rend->load;
    char path[256];
    if (l->stopping)
        return;
    if (rd->busy) { /* the last poll and its fetches outlasted the poll period */
        l->reader_poll_skipped += rl_in_window(l, rl_now());
        return;
    }
    rd->busy = 1;
    snprintf(path, sizeof(path), "%s/r%d/index.m3u8", l->prefix, rd->rend->id);
    rl_conn_request(&rd->conn, "GET", path, "application/vnd.apple.mpegurl", NULL, 0,
                    on_reader_playlist);
}

/* ---- writers mode: back-to-back PUTs of one object size over a bounded key set ----------- */

static void writer_put(struct rl_conn *c);

static void on_writer_done(struct rl_conn *c, int status)
{
    struct rl_load *l = c->load;
    double now = rl_now();
    int ok = status >= 200 && status < 300;
    /* Counted when acknowledged inside the window: MB/s of acknowledged objects. */
    if (rl_in_window(l, now)) {
        rl_stats_add(&l->obj_put, (now - c->t0) * 1000.0);
        l->obj_put_fail += !ok;
        l->obj_bytes_acked += ok ? l->obj_bytes : 0;
    }
    rl_note_ack(l, c->t0, now - c->t0);
    if (!l->stopping)
        writer_put(c);
}

static void writer_put(struct rl_conn *c)
{
    struct rl_load *l = c->load;
    long *next = c->owner;
    char path[256];
    snprintf(path, sizeof(path), "%s/w%ld/obj_%ld.bin", l->prefix, (long)(next - l->wnext),
             *next % l->keys);
    (*next)++;
    rl_conn_request(c, "PUT", path, "application/octet-stream", l->seg_body, l->obj_bytes,
                    on_writer_done);
}

/* ---- phases, report, main ------------------------------------------------------------------ */

static int rl_all_idle(const struct rl_load *l)
{
    for (int i = 0; i < l->renditions; i++) {
        const struct rl_rend *r = &l->rends[i];
        if (r->busy || r->readers[0].busy || r->readers[1].busy)
            return 0;
    }
    for (int i = 0; i < l->writers; i++)
        if (l->wconns[i].state == RL_BUSY || l->wconns[i].state == RL_CONNECTING)
            return 0;
    return 1;
}

static void rl_close_all(struct rl_load *l)
{
    for (int i = 0; i < l->renditions; i++) {
        struct rl_rend *r = &l->rends[i];
        uv_close((uv_handle_t *)&r->timer, NULL);
        rl_conn_close(&r->conn);
        for (int j = 0; j < RL_READERS; j++) {
            uv_close((uv_handle_t *)&r->readers[j].timer, NULL);
            rl_conn_close(&r->readers[j].conn);
        }
    }
    for (int i = 0; i < l->writers; i++)
        rl_conn_close(&l->wconns[i]);
    uv_close((uv_handle_t *)&l->phase, NULL);
}

static void on_phase_tick(uv_timer_t *t)
{
    struct rl_load *l = t->data;
    double now = rl_now();
    if (l->phase_no == 0 && now >= l->t_meas) {
        l->phase_no = 1;
        printf("START\n");
        fflush(stdout);
    }
    if (l->phase_no == 1 && now >= l->t_end) {
        l->phase_no = 2;
        l->stopping = 1;
        printf("END\n");
        fflush(stdout);
        for (int i = 0; i < l->renditions; i++) {
            uv_timer_stop(&l->rends[i].timer);
            for (int j = 0; j < RL_READERS; j++)
                uv_timer_stop(&l->rends[i].readers[j].timer);
        }
    }
    if (l->phase_no == 2 && (rl_all_idle(l) || now >= l->t_end + 5.0)) {
        l->phase_no = 3;
        rl_close_all(l);
    }
}

static double rl_max_ack(const struct rl_load *l, FILE *f)
{
    double mx = 0.0;
    size_t secs = (size_t)l->duration;
    fprintf(f, "\"ack_max_per_second_ms\":[");
    for (size_t i = 0; i < secs && i < RL_MAX_SECONDS; i++) {
        fprintf(f, "%s%.1f", i ? "," : "", l->sec_max[i] * 1000.0);
        mx = l->sec_max[i] > mx ? l->sec_max[i] : mx;
    }
    fprintf(f, "],");
    return mx * 1000.0;
}

static void rl_report(struct rl_load *l)
{
    FILE *f = stdout;
    double secs = l->duration;
    fprintf(f, "{\"mode\":\"%s\",\"renditions\":%d,\"writers\":%d,\"duration_s\":%.1f,",
            l->writers ? "writers" : "renditions", l->renditions, l->writers, secs);
    double mx = rl_max_ack(l, f);
    fprintf(f, "\"ack_max_ms\":%.1f,", mx);
    if (l->writers) {
        fprintf(f, "\"puts\":%zu,\"put_p50_ms\":%.2f,\"put_p99_ms\":%.2f,\"put_fail\":%ld,",
                l->obj_put.n, rl_pct(&l->obj_put, 50), rl_pct(&l->obj_put, 99), l->obj_put_fail);
        fprintf(f, "\"acked_bytes\":%llu,\"acked_mb_s\":%.2f}\n",
                (unsigned long long)l->obj_bytes_acked, (double)l->obj_bytes_acked / 1e6 / secs);
        return;
    }
    double smax = l->seg_put.n ? rl_pct(&l->seg_put, 100) : 0.0;
    fprintf(f, "\"seg_puts\":%zu,\"seg_put_p50_ms\":%.2f,\"seg_put_p99_ms\":%.2f,", l->seg_put.n,
            rl_pct(&l->seg_put, 50), rl_pct(&l->seg_put, 99));
    fprintf(f, "\"seg_put_max_ms\":%.2f,\"seg_put_fail\":%ld,\"seg_put_over_1s\":%ld,", smax,
            l->seg_put_fail, l->seg_put_slow);
    fprintf(f, "\"playlist_put_fail\":%ld,\"delete_fail\":%ld,\"writer_late\":%ld,", l->pl_put_fail,
            l->del_fail, l->writer_late);
    fprintf(f, "\"seg_gets\":%ld,\"seg_get_fail\":%ld,\"seg_get_p99_ms\":%.2f,", l->seg_get,
            l->seg_get_fail, rl_pct(&l->get_lat, 99));
    fprintf(f, "\"playlist_get_fail\":%ld,\"reader_behind\":%ld,\"reader_missed\":%ld,",
            l->pl_get_fail, l->reader_behind, l->reader_missed);
    fprintf(f, "\"reader_poll_skipped\":%ld,", l->reader_poll_skipped);
    fprintf(f, "\"put_mb_s\":%.2f,\"get_mb_s\":%.2f}\n", (double)l->bytes_put / 1e6 / secs,
            (double)l->bytes_got / 1e6 / secs);
}

static int rl_usage(void)
{
    fprintf(stderr, "usage: rendload --port P (--renditions N | --writers W) [--warmup S]\n"
                    "  [--duration S] [--prefix /live] [--seg-bytes B] [--obj-bytes B]\n"
                    "  [--keys K]\n");
    return 2;
}

static int rl_parse(struct rl_load *l, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL)
            return -1;
        i++;
        if (strcmp(k, "--port") == 0)
            l->port = atoi(v);
        else if (strcmp(k, "--renditions") == 0)
            l->renditions = atoi(v);
        else if (strcmp(k, "--writers") == 0)
            l->writers = atoi(v);
        else if (strcmp(k, "--keys") == 0)
            l->keys = atoi(v);
        else if (strcmp(k, "--warmup") == 0)
            l->warmup = atof(v);
        else if (strcmp(k, "--duration") == 0)
            l->duration = atof(v);
        else if (strcmp(k, "--prefix") == 0)
            l->prefix = v;
        else if (strcmp(k, "--seg-bytes") == 0)
            l->seg_bytes = (size_t)atol(v);
        else if (strcmp(k, "--obj-bytes") == 0)
            l->obj_bytes = (size_t)atol(v);
        else
            return -1;
    }
    if (l->port <= 0 || l->port > 65535 || (l->renditions > 0) == (l->writers > 0) ||
        l->renditions < 0 || l->renditions > 4096 || l->writers < 0 || l->writers > 4096 ||
        l->keys < 1 || l->warmup < 0 || l->duration < 1 || l->duration >= RL_MAX_SECONDS ||
        l->seg_bytes < 1 || l->seg_bytes > (64u << 20) || l->obj_bytes < 1 ||
        l->obj_bytes > (64u << 20) || strlen(l->prefix) > 128)
        return -1;
    return 0;
}

static int rl_setup(struct rl_load *l)
{
    size_t body = l->seg_bytes > l->obj_bytes ? l->seg_bytes : l->obj_bytes;
    l->seg_body = malloc(body);
    l->rends = calloc((size_t)l->renditions + 1, sizeof(*l->rends));
    l->wconns = calloc((size_t)l->writers + 1, sizeof(*l->wconns));
    l->wnext = calloc((size_t)l->writers + 1, sizeof(*l->wnext));
    if (l->seg_body == NULL || l->rends == NULL || l->wconns == NULL || l->wnext == NULL)
        return -1;
    for (size_t i = 0; i < body; i++)
        l->seg_body[i] = (char)(rl_rand(l) >> 24);
    double now = rl_now();
    l->t_start = now;
    l->t_meas = now + l->warmup;
    l->t_end = l->t_meas + l->duration;
    for (int i = 0; i < l->renditions; i++) {
        struct rl_rend *r = &l->rends[i];
        r->id = i;
        r->load = l;
        rl_conn_init(&r->conn, l, r, 0);
        uv_timer_init(l->loop, &r->timer);
        r->timer.data = r;
        uv_timer_start(&r->timer, on_rend_tick, rl_rand(l) % 1000, 1000);
        for (int j = 0; j < RL_READERS; j++) {
            struct rl_reader *rd = &r->readers[j];
            rd->rend = r;
            rd->last = -1;
            rl_conn_init(&rd->conn, l, rd, 1);
            if (rd->conn.capture == NULL)
                return -1;
            uv_timer_init(l->loop, &rd->timer);
            rd->timer.data = rd;
            uv_timer_start(&rd->timer, on_reader_tick, 200 + rl_rand(l) % 500, 500);
        }
    }
    for (int i = 0; i < l->writers; i++) {
        rl_conn_init(&l->wconns[i], l, &l->wnext[i], 0);
        writer_put(&l->wconns[i]);
    }
    uv_timer_init(l->loop, &l->phase);
    l->phase.data = l;
    uv_timer_start(&l->phase, on_phase_tick, 50, 50);
    return 0;
}

static void rl_free(struct rl_load *l)
{
    for (int i = 0; l->rends != NULL && i < l->renditions; i++)
        for (int j = 0; j < RL_READERS; j++)
            free(l->rends[i].readers[j].conn.capture);
    free(l->rends);
    free(l->wconns);
    free(l->wnext);
    free(l->seg_body);
    free(l->seg_put.lat);
    free(l->get_lat.lat);
    free(l->obj_put.lat);
}

int main(int argc, char **argv)
{
    static struct rl_load l; /* large (per-second maxima): not on the stack */
    int rc = 1;
    l.loop = uv_default_loop();
    l.keys = 8;
    l.warmup = 3;
    l.duration = 20;
    l.prefix = "/live";
    l.seg_bytes = 500000;
    l.obj_bytes = 204800;
    l.rng = uv_hrtime() | 1;
    if (rl_parse(&l, argc, argv) != 0)
        return rl_usage();
    uv_ip4_addr("127.0.0.1", l.port, &l.addr);
    if (rl_setup(&l) != 0) {
        fprintf(stderr, "rendload: out of memory\n");
        goto err_after_setup;
    }
    uv_run(l.loop, UV_RUN_DEFAULT);
    rl_report(&l);
    rc = uv_loop_close(l.loop) == 0 ? 0 : 1;
err_after_setup:
    rl_free(&l);
    return rc;
}
