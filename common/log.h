/* Cheap logging: the level is checked before any formatting. key=value fields. The formatted
 * message is escaped before it is written (cm_log_escape): a value from a request or the wire
 * (a key with %0d%0a in it) can never start a line of its own. */
#ifndef CM_LOG_H
#define CM_LOG_H

#include <stddef.h>

enum cm_log_level { CM_LOG_DEBUG = 0, CM_LOG_INFO = 1, CM_LOG_WARN = 2, CM_LOG_ERROR = 3 };

/* Set once before any thread starts. `name` prefixes every line (e.g. "node1"). */
void cm_log_init(const char *name, enum cm_log_level level);
int cm_log_enabled(enum cm_log_level level);
void cm_log_write(enum cm_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Copy in[0..n) to out with control bytes (other than HTAB) and DEL as \xNN and backslash as
 * \\; stops before an escape that does not fit; out is always NUL-terminated (cap >= 1).
 * Returns the length written. Pure. */
size_t cm_log_escape(const char *in, size_t n, char *out, size_t cap);
/* Parse "debug" / "info" / "warn" / "error"; returns -1 when unknown. */
int cm_log_level_parse(const char *s);

#define CM_LOG(level, ...)                                                                         \
    do {                                                                                           \
        if (cm_log_enabled(level))                                                                 \
            cm_log_write(level, __VA_ARGS__);                                                      \
    } while (0)
#define CM_DEBUG(...) CM_LOG(CM_LOG_DEBUG, __VA_ARGS__)
#define CM_INFO(...) CM_LOG(CM_LOG_INFO, __VA_ARGS__)
#define CM_WARN(...) CM_LOG(CM_LOG_WARN, __VA_ARGS__)
#define CM_ERROR(...) CM_LOG(CM_LOG_ERROR, __VA_ARGS__)

#endif
