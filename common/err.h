/* Project error codes: one X-macro table, translated from foreign codes at the edges. */
#ifndef CM_ERR_H
#define CM_ERR_H

#define CM_ERRORS(X)                                                                               \
    X(CM_OK, 0, "ok")                                                                              \
    X(CM_ENOMEM, -1, "out of memory")                                                              \
    X(CM_EINVAL, -2, "invalid argument")                                                           \
    X(CM_EIO, -3, "i/o error")                                                                     \
    X(CM_ENOTFOUND, -4, "not found")                                                               \
    X(CM_EPROTO, -5, "protocol error")                                                             \
    X(CM_ETOOBIG, -6, "too large")                                                                 \
    X(CM_ECLOSED, -7, "closed")                                                                    \
    X(CM_ETIMEDOUT, -8, "timed out")                                                               \
    X(CM_ENOTLEADER, -9, "not leader")                                                             \
    X(CM_ECHECKSUM, -10, "checksum mismatch")                                                      \
    X(CM_EUNAVAIL, -11, "unavailable")                                                             \
    X(CM_EHELP, -12, "help requested")                                                             \
    X(CM_EBUSY, -13, "busy")                                                                       \
    X(CM_ESTORE, -14, "store error")                                                               \
    X(CM_ENOSPC, -15, "no space left on the store's device")                                       \
    X(CM_EAUTH, -16, "authentication failed")

enum {
#define CM_ERR_ENUM(name, value, text) name = (value),
    CM_ERRORS(CM_ERR_ENUM)
#undef CM_ERR_ENUM
};

/* Text of a project error code; never NULL. */
const char *cm_strerror(int err);

#endif
