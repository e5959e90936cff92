/* Volume records and pointers (store/vol.h): the encodings, and whole-buffer file I/O. Pure
 * but for the I/O; big-endian. */
#ifndef ND_STORE_VOLREC_H
#define ND_STORE_VOLREC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "store/skey.h"

#define ND_VOL_HEADER 40u
#define ND_VOL_PTR_LEN 21u
#define ND_VOL_ALIGN 4096u /* records start on this boundary (direct I/O), padded to it */

/* Where a chunk's bytes are: the value of its chunk record in the index. */
struct nd_vptr {
    uint32_t vol;
    uint64_t pos; /* of the payload */
    uint32_t len, crc;
};

void nd_volrec_put_u32(char *p, uint32_t v);
uint32_t nd_volrec_get_u32(const char *p);
void nd_vptr_encode(const struct nd_vptr *p, char out[ND_VOL_PTR_LEN]);
int nd_vptr_decode(const char *v, size_t vlen, struct nd_vptr *p);
int nd_volrec_is_chunk(const char *k, size_t klen);
/* A record's header: "HWV2" (padded to ND_VOL_ALIGN). Decoding also takes "HWV1" records
 * (unpadded, before direct I/O); *span = the bytes the record takes up to the next one. */
void nd_volrec_header_encode(char h[ND_VOL_HEADER], const char *key, uint32_t len, uint32_t crc);
int nd_volrec_header_decode(char h[ND_VOL_HEADER], char key[ND_SKEY_CHUNK_LEN], uint32_t *len,
                            uint32_t *crc, uint64_t *span);
/* The bytes a padded record of len payload bytes takes. */
uint64_t nd_volrec_span(uint32_t len);
uint64_t nd_volrec_align_up(uint64_t n);
int nd_volrec_errno(int e);
int nd_volrec_pwrite(int fd, struct iovec *iov, int n, uint64_t pos);
int nd_volrec_pread(int fd, void *dst, size_t len, uint64_t pos);
/* fsync a directory (its entries durable). */
int nd_volrec_dir_sync(const char *dir);

#endif
