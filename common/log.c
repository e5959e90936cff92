#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* The log sink: set once before threads start (allowed process global). */
static char log_name[32] = "headwater";
static enum cm_log_level log_level = CM_LOG_INFO;

void cm_log_init(const char *name, enum cm_log_level level)
{
    snprintf(log_name, sizeof(log_name), "%s", name);
    log_level = level;
}

int cm_log_enabled(enum cm_log_level level)
{
    return level >= log_level;
}

int cm_log_level_parse(const char *s)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(s, names[i]) == 0)
            return i;
    }
    return -1;
}

size_t cm_log_escape(const char *in, size_t n, char *out, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        int plain = (c >= 0x20 && c != 0x7f && c != '\\') || c == '\t';
        size_t need = plain ? 1 : c == '\\' ? 2 : 4;
        if (o + need >= cap)
            break;
        if (plain) {
            out[o++] = (char)c;
        } else if (c == '\\') {
            out[o++] = '\\';
            out[o++] = '\\';
        } else {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    if (cap > 0)
        out[o] = '\0';
    return o;
}

/* One write per line. The message is formatted first, then escaped into the line, so a value
 * carrying CR/LF (from a URL, a header, a node's answer) cannot start a forged line. */
void cm_log_write(enum cm_log_level level, const char *fmt, ...)
{
    static const char letters[] = "DIWE";
    char msg[2048], line[4096];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %c %s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, letters[level & 3], log_name);
    if (n < 0 || (size_t)n >= sizeof(line) - 1)
        n = 0;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    size_t mlen = m < 0 ? 0 : (size_t)m < sizeof(msg) ? (size_t)m : sizeof(msg) - 1;
    /* the last byte of line is kept for the newline */
    size_t len = (size_t)n + cm_log_escape(msg, mlen, line + n, sizeof(line) - (size_t)n - 1);
    line[len++] = '\n';
    fwrite(line, 1, len, stderr); /* one call: lines from threads do not interleave */
}
