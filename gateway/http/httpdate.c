#include "http/httpdate.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static const char *const month[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

void gw_httpdate_format(int64_t unix_s, char out[GW_HTTPDATE_LEN])
{
    time_t t = (time_t)unix_s;
    struct tm tm;
    gmtime_r(&t, &tm);
    /* The daemons never call setlocale: %a and %b are the C locale's English names. */
    if (strftime(out, GW_HTTPDATE_LEN, "%a, %d %b %Y %H:%M:%S GMT", &tm) == 0)
        out[0] = '\0';
}

static int month_of(const char *m)
{
    for (int i = 0; i < 12; i++)
        if (strncmp(m, month[i], 3) == 0)
            return i;
    return -1;
}

/* Does s[0..len) have the shape of tmpl: 'd' a digit, 'D' a digit or space, 'a' a letter, any
 * other byte itself? (sscanf alone would take signs, spaces and short numbers.) */
static int shape(const char *s, size_t len, const char *tmpl)
{
    if (strlen(tmpl) != len)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i], t = tmpl[i];
        int digit = c >= '0' && c <= '9';
        int alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        if (t == 'd' ? !digit : t == 'D' ? !digit && c != ' ' : t == 'a' ? !alpha : c != t)
            return 0;
    }
    return 1;
}

/* One of the three forms, digit for digit (RFC 850's weekday is spelled out). */
static int date_shape(const char *s, size_t len)
{
    if (shape(s, len, "aaa, dd aaa dddd dd:dd:dd GMT") || shape(s, len, "aaa aaa Dd dd:dd:dd dddd"))
        return 1;
    const char *comma = memchr(s, ',', len);
    size_t wd = comma ? (size_t)(comma - s) : 0;
    if (wd < 6 || wd > 9 || !shape(comma, len - wd, ", dd-aaa-dd dd:dd:dd GMT"))
        return 0;
    return shape(s, wd, &"aaaaaaaaa"[9 - wd]);
}

static int days_in_month(int m, int year)
{
    static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    return d[m] + (m == 1 && leap);
}

int gw_httpdate_parse(const char *s, size_t len, int64_t *unix_s)
{
    char buf[64], mon[4] = {0}, wd[16] = {0};
    struct tm tm;
    int day, year, h, mi, sec, n = 0;
    if (len == 0 || len >= sizeof(buf))
        return -1;
    if (!date_shape(s, len))
        return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    memset(&tm, 0, sizeof(tm));
    /* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
    if (sscanf(buf, "%3s, %2d %3s %4d %2d:%2d:%2d GMT%n", wd, &day, mon, &year, &h, &mi, &sec,
               &n) == 7 &&
        (size_t)n == len) {
    } else if (sscanf(buf, "%15[A-Za-z], %2d-%3s-%2d %2d:%2d:%2d GMT%n", wd, &day, mon, &year, &h,
                      &mi, &sec, &n) == 7 &&
               (size_t)n == len) {
        year += year < 70 ? 2000 : 1900; /* RFC 850: two-digit year */
    } else if (sscanf(buf, "%3s %3s %2d %2d:%2d:%2d %4d%n", wd, mon, &day, &h, &mi, &sec, &year,
                      &n) == 7 &&
               (size_t)n == len) {
    } else {
        return -1;
    }
    int m = month_of(mon);
    if (m < 0 || day < 1 || day > days_in_month(m, year) || h > 23 || mi > 59 || sec > 60 ||
        year < 1970)
        return -1;
    tm.tm_year = year - 1900;
    tm.tm_mon = m;
    tm.tm_mday = day;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    *unix_s = (int64_t)timegm(&tm);
    return 0;
}
