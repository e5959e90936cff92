/* Small filesystem helpers. */
#ifndef CM_FSUTIL_H
#define CM_FSUTIL_H

/* mkdir -p path (mode 0755): 0, or -1 with errno set. */
int cm_mkdir_p(const char *path);

#endif
