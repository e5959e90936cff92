#include "err.h"

const char *cm_strerror(int err)
{
    switch (err) {
#define CM_ERR_CASE(name, value, text)                                                             \
    case name:                                                                                     \
        return text;
        CM_ERRORS(CM_ERR_CASE)
#undef CM_ERR_CASE
    default:
        return "unknown error";
    }
}
