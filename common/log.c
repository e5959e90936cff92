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

void cm_log_write(enum cm_log_level level, const char *fmt, ...)
{
    static const char letters[] = "DIWE";
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %c %s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, letters[level & 3], log_name);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2;
    line[len++] = '\n';
    fwrite(line, 1, len, stderr); /* one call: lines from threads do not interleave */
}
