#include "object/content_type.h"

#include <string.h>
#include <strings.h>

static const struct {
    const char *ext;
    const char *type;
} ctype_table[] = {
    {"m3u8", "application/vnd.apple.mpegurl"},
    {"mpd", "application/dash+xml"},
    {"ts", "video/mp2t"},
    {"m4s", "video/mp4"},
    {"mp4", "video/mp4"},
    {"cmfv", "video/mp4"},
    {"cmfa", "audio/mp4"},
    {"m4a", "audio/mp4"},
    {"aac", "audio/aac"},
    {"vtt", "text/vtt"},
    {"key", "application/octet-stream"},
};

#define GW_CTYPE_DEFAULT "application/octet-stream"

const char *gw_ctype_for(const char *key, size_t keylen, const char *header)
{
    if (header != NULL && header[0] != '\0')
        return header;
    size_t i = keylen;
    while (i > 0 && key[i - 1] != '.' && key[i - 1] != '/')
        i--;
    if (i == 0 || key[i - 1] != '.')
        return GW_CTYPE_DEFAULT;
    const char *ext = key + i;
    size_t elen = keylen - i;
    for (size_t k = 0; k < sizeof(ctype_table) / sizeof(ctype_table[0]); k++) {
        if (strlen(ctype_table[k].ext) == elen && strncasecmp(ctype_table[k].ext, ext, elen) == 0)
            return ctype_table[k].type;
    }
    return GW_CTYPE_DEFAULT;
}
