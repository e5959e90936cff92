/* Volume records and pointers (see volrec.h). */
#include "store/volrec.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "crc32c.h"
#include "err.h"

#define ND_VOL_MAGIC "HWV2"
#define ND_VOL_MAGIC_V1 "HWV1"

void nd_volrec_put_u32(char *p, uint32_t v)
{
    p[0] = (char)(v >> 24);
    p[1] = (char)(v >> 16);
    p[2] = (char)(v >> 8);
    p[3] = (char)v;
}

uint32_t nd_volrec_get_u32(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;
    return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | u[3];
}

void nd_vptr_encode(const struct nd_vptr *p, char out[ND_VOL_PTR_LEN])
{
    out[0] = 'V';
    nd_volrec_put_u32(out + 1, p->vol);
    nd_put_u64(out + 5, p->pos);
    nd_volrec_put_u32(out + 13, p->len);
    nd_volrec_put_u32(out + 17, p->crc);
}

int nd_vptr_decode(const char *v, size_t vlen, struct nd_vptr *p)
{
    if (vlen != ND_VOL_PTR_LEN || v[0] != 'V')
        return CM_EIO;
    p->vol = nd_volrec_get_u32(v + 1);
    p->pos = nd_get_u64(v + 5);
    p->len = nd_volrec_get_u32(v + 13);
    p->crc = nd_volrec_get_u32(v + 17);
    return 0;
}

int nd_volrec_is_chunk(const char *k, size_t klen)
{
    return klen == ND_SKEY_CHUNK_LEN && k[0] == 'u';
}

void nd_volrec_header_encode(char h[ND_VOL_HEADER], const char *key, uint32_t len, uint32_t crc)
{
    memcpy(h, ND_VOL_MAGIC, 4);
    nd_volrec_put_u32(h + 4, len);
    nd_volrec_put_u32(h + 8, crc);
    nd_volrec_put_u32(h + 12, 0);
    memcpy(h + 16, key + 1, ND_UPLOAD_ID_LEN + 8); /* upload id and offset, as in the key */
    nd_volrec_put_u32(h + 12, cm_crc32c(0, h, ND_VOL_HEADER));
}

uint64_t nd_volrec_align_up(uint64_t n)
{
    return (n + ND_VOL_ALIGN - 1) / ND_VOL_ALIGN * ND_VOL_ALIGN;
}

uint64_t nd_volrec_span(uint32_t len)
{
    return nd_volrec_align_up(ND_VOL_HEADER + (uint64_t)len);
}

/* 0 and the record's chunk key, or CM_EIO: not a whole valid header. */
int nd_volrec_header_decode(char h[ND_VOL_HEADER], char key[ND_SKEY_CHUNK_LEN], uint32_t *len,
                            uint32_t *crc, uint64_t *span)
{
    int v1 = memcmp(h, ND_VOL_MAGIC_V1, 4) == 0;
    if (!v1 && memcmp(h, ND_VOL_MAGIC, 4) != 0)
        return CM_EIO;
    uint32_t hcrc = nd_volrec_get_u32(h + 12);
    nd_volrec_put_u32(h + 12, 0);
    if (cm_crc32c(0, h, ND_VOL_HEADER) != hcrc)
        return CM_EIO;
    *len = nd_volrec_get_u32(h + 4);
    *crc = nd_volrec_get_u32(h + 8);
    *span = v1 ? ND_VOL_HEADER + (uint64_t)*len : nd_volrec_span(*len);
    key[0] = 'u';
    memcpy(key + 1, h + 16, ND_UPLOAD_ID_LEN + 8);
    return 0;
}

int nd_volrec_errno(int e)
{
    return e == ENOSPC || e == EDQUOT ? CM_ENOSPC : CM_EIO;
}

int nd_volrec_pwrite(int fd, struct iovec *iov, int n, uint64_t pos)
{
    while (n > 0) {
        ssize_t w = pwritev(fd, iov, n, (off_t)pos);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return nd_volrec_errno(w < 0 ? errno : ENOSPC);
        pos += (uint64_t)w;
        while (n > 0 && (size_t)w >= iov->iov_len) {
            w -= (ssize_t)iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + w;
            iov->iov_len -= (size_t)w;
        }
    }
    return 0;
}

int nd_volrec_pread(int fd, void *dst, size_t len, uint64_t pos)
{
    char *p = dst;
    while (len > 0) {
        ssize_t r = pread(fd, p, len, (off_t)pos);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return CM_EIO; /* 0: past the end (a torn tail) */
        p += r;
        len -= (size_t)r;
        pos += (uint64_t)r;
    }
    return 0;
}

int nd_volrec_dir_sync(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return nd_volrec_errno(errno);
    int rv = fsync(fd) == 0 ? 0 : nd_volrec_errno(errno);
    close(fd);
    return rv;
}
