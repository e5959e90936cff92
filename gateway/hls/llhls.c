/* LL-HLS origin rules, the pure part (see llhls.h). */
#include "hls/llhls.h"

#include <string.h>

#include "err.h"

/* ---- numbers ---- */

/* A decimal integer of the whole [s, s + n), at most max. */
static int dec_u64(const char *s, size_t n, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (n == 0 || n > 19)
        return CM_EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return CM_EINVAL;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > max)
        return CM_EINVAL;
    *out = v;
    return 0;
}

/* A decimal number of seconds ("6", "0.2", "1.000") in ms, at most a day. */
static int dec_ms(const char *s, size_t n, uint32_t *out)
{
    const char *dot = memchr(s, '.', n);
    size_t ilen = dot != NULL ? (size_t)(dot - s) : n;
    uint64_t secs, frac = 0;
    if (dec_u64(s, ilen, 86400, &secs) != 0)
        return CM_EINVAL;
    if (dot != NULL) {
        size_t flen = n - ilen - 1;
        if (flen == 0 || flen > 9)
            return CM_EINVAL;
        uint64_t scale = 100;
        for (size_t i = 0; i < flen; i++) {
            char c = dot[1 + i];
            if (c < '0' || c > '9')
                return CM_EINVAL;
            frac += (uint64_t)(c - '0') * scale;
            scale /= 10;
        }
    }
    *out = (uint32_t)(secs * 1000 + frac);
    return 0;
}

/* ---- attribute lists (§4.2: NAME=value, comma separated, quoted strings may hold commas) ---- */

/* The value of attribute name in list [s, s + n): 1 and *v, *vn; 0 when absent. */
static int attr(const char *s, size_t n, const char *name, const char **v, size_t *vn)
{
    size_t nl = strlen(name), i = 0;
    while (i < n) {
        size_t start = i;
        while (i < n && s[i] != '=' && s[i] != ',')
            i++;
        size_t klen = i - start;
        if (i >= n || s[i] == ',') {
            i++;
            continue;
        }
        i++; /* '=' */
        size_t vstart = i;
        if (i < n && s[i] == '"') {
            i++;
            while (i < n && s[i] != '"')
                i++;
            if (i < n)
                i++;
        }
        while (i < n && s[i] != ',')
            i++;
        if (klen == nl && memcmp(s + start, name, nl) == 0) {
            *v = s + vstart;
            *vn = i - vstart;
            return 1;
        }
        i++;
    }
    return 0;
}

static int attr_ms(const char *s, size_t n, const char *name, uint32_t *out)
{
    const char *v;
    size_t vn;
    return attr(s, n, name, &v, &vn) ? dec_ms(v, vn, out) : 0;
}

/* ---- the playlist ---- */

static int starts(const char *line, size_t n, const char *tag, const char **rest, size_t *rn)
{
    size_t tl = strlen(tag);
    if (n < tl || memcmp(line, tag, tl) != 0)
        return 0;
    *rest = line + tl;
    *rn = n - tl;
    return 1;
}

/* A complete segment ended (its URI line): its parts are the ones listed since the last one. */
static void segment_done(struct gw_hls_playlist *p, uint64_t count)
{
    for (uint64_t k = 0; k < count && k < GW_HLS_RECENT; k++) {
        memmove(p->recent, p->recent + 1, (GW_HLS_RECENT - 1) * sizeof(p->recent[0]));
        p->recent[GW_HLS_RECENT - 1] = k + 1 == count ? p->parts_open : 0;
    }
    p->segments += count;
    p->parts_open = 0;
}

static int parse_line(struct gw_hls_playlist *p, const char *l, size_t n, int *inf)
{
    const char *r;
    size_t rn;
    uint64_t v;
    if (n == 0)
        return 0;
    if (l[0] != '#') { /* a URI: a segment when an EXTINF announced it */
        if (*inf)
            segment_done(p, 1);
        *inf = 0;
        return 0;
    }
    if (starts(l, n, "#EXTINF:", &r, &rn)) {
        *inf = 1;
    } else if (starts(l, n, "#EXT-X-TARGETDURATION:", &r, &rn)) {
        if (dec_u64(r, rn, 86400, &v) != 0)
            return CM_EINVAL;
        p->target_ms = (uint32_t)(v * 1000);
    } else if (starts(l, n, "#EXT-X-MEDIA-SEQUENCE:", &r, &rn)) {
        if (dec_u64(r, rn, GW_HLS_MAX_NUMBER, &p->media_sequence) != 0)
            return CM_EINVAL;
    } else if (starts(l, n, "#EXT-X-PART-INF:", &r, &rn)) {
        if (attr_ms(r, rn, "PART-TARGET", &p->part_target_ms) != 0)
            return CM_EINVAL;
    } else if (starts(l, n, "#EXT-X-PART:", &r, &rn)) {
        if (p->parts_open < UINT32_MAX)
            p->parts_open++;
    } else if (starts(l, n, "#EXT-X-PRELOAD-HINT:", &r, &rn)) {
        p->preload_hint = 1;
    } else if (starts(l, n, "#EXT-X-SKIP:", &r, &rn)) {
        const char *sv;
        size_t sn;
        if (!attr(r, rn, "SKIPPED-SEGMENTS", &sv, &sn) ||
            dec_u64(sv, sn, GW_HLS_MAX_NUMBER, &v) != 0)
            return CM_EINVAL;
        segment_done(p, v);
    } else if (starts(l, n, "#EXT-X-SERVER-CONTROL:", &r, &rn)) {
        const char *bv;
        size_t bn;
        p->can_block_reload =
            attr(r, rn, "CAN-BLOCK-RELOAD", &bv, &bn) && bn == 3 && memcmp(bv, "YES", 3) == 0;
        p->can_skip_dateranges =
            attr(r, rn, "CAN-SKIP-DATERANGES", &bv, &bn) && bn == 3 && memcmp(bv, "YES", 3) == 0;
        if (attr_ms(r, rn, "CAN-SKIP-UNTIL", &p->can_skip_until_ms) != 0 ||
            attr_ms(r, rn, "PART-HOLD-BACK", &p->part_hold_back_ms) != 0)
            return CM_EINVAL;
    } else if (n == 14 && memcmp(l, "#EXT-X-ENDLIST", 14) == 0) {
        p->endlist = 1;
    }
    return 0;
}

int gw_hls_parse(const char *text, size_t len, struct gw_hls_playlist *out)
{
    memset(out, 0, sizeof(*out));
    size_t i = 0, line = 0;
    int inf = 0;
    while (i < len) {
        const char *nl = memchr(text + i, '\n', len - i);
        size_t end = nl != NULL ? (size_t)(nl - text) : len, n = end - i;
        const char *l = text + i;
        if (n > 0 && l[n - 1] == '\r')
            n--;
        if (line++ == 0 && !(n == 7 && memcmp(l, "#EXTM3U", 7) == 0))
            return CM_EINVAL;
        int rv = parse_line(out, l, n, &inf);
        if (rv != 0)
            return rv;
        i = end + 1;
    }
    return line > 0 ? 0 : CM_EINVAL;
}

/* ---- directives ---- */

int gw_hls_directives_parse(const char *query, size_t len, struct gw_hls_directives *out)
{
    memset(out, 0, sizeof(*out));
    size_t i = 0;
    while (i < len) {
        const char *amp = memchr(query + i, '&', len - i);
        size_t end = amp != NULL ? (size_t)(amp - query) : len;
        const char *kv = query + i, *eq = memchr(kv, '=', end - i);
        size_t klen = eq != NULL ? (size_t)(eq - kv) : end - i;
        const char *v = eq != NULL ? eq + 1 : kv + klen;
        size_t vn = (size_t)(query + end - v);
        if (klen == 8 && memcmp(kv, "_HLS_msn", 8) == 0) {
            if (out->has_msn || dec_u64(v, vn, GW_HLS_MAX_NUMBER, &out->msn) != 0)
                return CM_EINVAL;
            out->has_msn = 1;
        } else if (klen == 9 && memcmp(kv, "_HLS_part", 9) == 0) {
            if (out->has_part || dec_u64(v, vn, GW_HLS_MAX_NUMBER, &out->part) != 0)
                return CM_EINVAL;
            out->has_part = 1;
        } else if (klen == 9 && memcmp(kv, "_HLS_skip", 9) == 0) {
            if (out->skip != 0)
                return CM_EINVAL;
            if (vn == 3 && memcmp(v, "YES", 3) == 0)
                out->skip = 1;
            else if (vn == 2 && memcmp(v, "v2", 2) == 0)
                out->skip = 2;
            else
                return CM_EINVAL;
        }
        i = end + 1;
    }
    return out->has_part && !out->has_msn ? CM_EINVAL : 0;
}

/* ---- readiness ---- */

/* Parts listed for complete segment m (0: none listed, or too old to be kept). */
static uint64_t parts_of(const struct gw_hls_playlist *p, uint64_t m)
{
    uint64_t next = p->media_sequence + p->segments, back = next - 1 - m;
    return back < GW_HLS_RECENT ? p->recent[GW_HLS_RECENT - 1 - back] : 0;
}

static uint64_t advance_part_limit(const struct gw_hls_playlist *p)
{
    return p->part_target_ms > 0 && p->part_target_ms < 1000 ? 3000 / p->part_target_ms : 3;
}

enum gw_hls_ready gw_hls_ready(const struct gw_hls_playlist *p, const struct gw_hls_directives *d)
{
    if (!d->has_msn || p->endlist)
        return GW_HLS_NOW;
    uint64_t next = p->media_sequence + p->segments; /* the segment in progress */
    uint64_t m = d->msn, n = d->part;
    if (m > next + 1)
        return GW_HLS_BAD; /* more than two past the last segment (next - 1) */
    if (m < next) {
        uint64_t pc = parts_of(p, m);
        if (!d->has_part || pc == 0 || n < pc)
            return GW_HLS_NOW;
        m++; /* past M's last part: part 0 of M + 1 */
        n = 0;
        if (m < next)
            return GW_HLS_NOW;
    }
    if (!d->has_part)
        return GW_HLS_HOLD; /* segment M is not complete yet */
    if (m == next && n < p->parts_open)
        return GW_HLS_NOW;
    /* How many parts past the last one listed: the rest of the segment in progress (at least
     * as many parts as the last complete one had) and n + 1 of M + 1. */
    uint64_t ahead;
    if (m == next) {
        ahead = n + 1 - p->parts_open;
    } else {
        uint64_t pps = parts_of(p, next - 1);
        ahead = (pps > p->parts_open ? pps - p->parts_open : 0) + n + 1;
    }
    return ahead > advance_part_limit(p) ? GW_HLS_BAD : GW_HLS_HOLD;
}

uint64_t gw_hls_hold_ms(const struct gw_hls_playlist *p)
{
    return 3ull * (p->target_ms ? p->target_ms : 1000);
}

/* ---- delta updates (§6.2.5.1, EXT-X-SKIP §4.4.5.2) ---- */

/* Tags of the playlist as a whole: kept where they stand in a delta update. Everything else
 * (EXTINF, BYTERANGE, DISCONTINUITY, PROGRAM-DATE-TIME, PART, DATERANGE, KEY, MAP, unknown
 * tags, comments, URIs) belongs to the media segment it precedes. */
static int playlist_tag(const char *l, size_t n)
{
    static const char *const tags[] = {"#EXTM3U",
                                       "#EXT-X-VERSION:",
                                       "#EXT-X-TARGETDURATION:",
                                       "#EXT-X-MEDIA-SEQUENCE:",
                                       "#EXT-X-DISCONTINUITY-SEQUENCE:",
                                       "#EXT-X-ENDLIST",
                                       "#EXT-X-PLAYLIST-TYPE:",
                                       "#EXT-X-I-FRAMES-ONLY",
                                       "#EXT-X-PART-INF:",
                                       "#EXT-X-SERVER-CONTROL:",
                                       "#EXT-X-INDEPENDENT-SEGMENTS",
                                       "#EXT-X-START:",
                                       "#EXT-X-DEFINE:",
                                       "#EXT-X-PRELOAD-HINT:",
                                       "#EXT-X-RENDITION-REPORT:",
                                       "#EXT-X-SKIP:"};
    for (size_t i = 0; i < sizeof(tags) / sizeof(tags[0]); i++) {
        size_t tl = strlen(tags[i]);
        if (n >= tl && memcmp(l, tags[i], tl) == 0)
            return 1;
    }
    return 0;
}

struct line {
    const char *p;
    size_t n;   /* without the line end */
    size_t end; /* offset past the line end */
};

static int next_line(const char *text, size_t len, size_t *i, struct line *out)
{
    if (*i >= len)
        return 0;
    const char *nl = memchr(text + *i, '\n', len - *i);
    size_t end = nl != NULL ? (size_t)(nl - text) : len;
    out->p = text + *i;
    out->n = end - *i;
    if (out->n > 0 && out->p[out->n - 1] == '\r')
        out->n--;
    out->end = end < len ? end + 1 : len;
    *i = out->end;
    return 1;
}

/* How many leading complete segments end at least can_skip_until before the playlist's end. */
static int skippable(const char *text, size_t len, uint32_t until_ms, uint64_t *out)
{
    uint32_t durs[4096];
    uint64_t total = 0, n = 0;
    size_t i = 0;
    struct line l;
    uint32_t pending = 0;
    int inf = 0;
    while (next_line(text, len, &i, &l)) {
        const char *r;
        size_t rn;
        if (starts(l.p, l.n, "#EXTINF:", &r, &rn)) {
            const char *comma = memchr(r, ',', rn);
            if (dec_ms(r, comma != NULL ? (size_t)(comma - r) : rn, &pending) != 0)
                return CM_EINVAL;
            inf = 1;
        } else if (starts(l.p, l.n, "#EXT-X-SKIP:", &r, &rn)) {
            return CM_EINVAL; /* already a delta update */
        } else if (l.n > 0 && l.p[0] != '#' && inf) {
            if (n == sizeof(durs) / sizeof(durs[0]))
                break; /* a longer window keeps its newest segments whole */
            durs[n++] = pending;
            total += pending;
            inf = 0;
        }
    }
    uint64_t k = 0, end = 0;
    while (k < n && end + durs[k] + until_ms <= total)
        end += durs[k++];
    *out = k;
    return 0;
}

int gw_hls_delta(const char *text, size_t len, int v2, struct cm_sbuf *out)
{
    struct gw_hls_playlist p;
    uint64_t k = 0;
    if (gw_hls_parse(text, len, &p) != 0 || p.can_skip_until_ms == 0 || p.endlist)
        return 0;
    v2 = v2 && p.can_skip_dateranges; /* v2 where date ranges may not be skipped: as YES */
    int rv = skippable(text, len, p.can_skip_until_ms, &k);
    if (rv != 0)
        return rv;
    if (k == 0)
        return 0;
    size_t i = 0;
    struct line l, key = {0}, map = {0};
    uint64_t seg = 0;
    int inf = 0, skip_done = 0;
    while (next_line(text, len, &i, &l)) {
        const char *r;
        size_t rn;
        if (seg >= k || playlist_tag(l.p, l.n)) {
            if (seg >= k && !skip_done) {
                cm_sbuf_printf(out, "#EXT-X-SKIP:SKIPPED-SEGMENTS=%llu%s\n", (unsigned long long)k,
                               v2 ? ",RECENTLY-REMOVED-DATERANGES=\"\"" : "");
                /* the key and init section in force for the first segment kept */
                if (key.p != NULL)
                    cm_sbuf_append(out, key.p, key.end - (size_t)(key.p - text));
                if (map.p != NULL)
                    cm_sbuf_append(out, map.p, map.end - (size_t)(map.p - text));
                skip_done = 1;
            }
            cm_sbuf_append(out, l.p, l.end - (size_t)(l.p - text));
            if (l.end == len && text[len - 1] != '\n')
                cm_sbuf_puts(out, "\n");
            continue;
        }
        /* a line of a skipped segment */
        if (starts(l.p, l.n, "#EXTINF:", &r, &rn)) {
            inf = 1;
        } else if (starts(l.p, l.n, "#EXT-X-KEY:", &r, &rn)) {
            key = l;
        } else if (starts(l.p, l.n, "#EXT-X-MAP:", &r, &rn)) {
            map = l;
        } else if (starts(l.p, l.n, "#EXT-X-DATERANGE:", &r, &rn) && !v2) {
            cm_sbuf_append(out, l.p, l.end - (size_t)(l.p - text)); /* YES keeps date ranges */
        } else if (l.n > 0 && l.p[0] != '#' && inf) {
            seg++;
            inf = 0;
        }
    }
    return out->oom ? CM_ENOMEM : (int)(k > INT32_MAX ? INT32_MAX : k);
}
