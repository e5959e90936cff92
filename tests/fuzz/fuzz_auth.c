/* Cluster handshake (common/auth.h), accepting side: any byte stream, in any fragmentation,
 * is refused or waits for more; the read window never exceeds what is left of the current
 * step, and garbage never authenticates. */
#include <string.h>

#include "auth.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char secret[] = "fuzzing-secret-0123456789";
    struct cm_auth *a = NULL;
    struct cm_auth_hs hs;
    if (cm_auth_new_secret(secret, sizeof(secret) - 1, CM_AUTH_ROLE_NODE, 1, &a) != 0)
        return 0;
    if (cm_auth_hs_init(&hs, a, 0, CM_AUTH_CHAN_RAFT, 0, "127.0.0.1:7102") != 0) {
        cm_auth_free(a);
        return 0;
    }
    size_t off = 0;
    int rv = 0;
    while (off < size && rv == 0) {
        uint8_t *p;
        size_t space;
        cm_auth_hs_space(&hs, &p, &space);
        HW_FUZZ_ASSERT(space > 0 && space <= CM_AUTH_HELLO_MAX);
        size_t n = size - off;
        size_t frag = 1 + (size_t)(data[off] % 61);
        if (n > frag)
            n = frag;
        if (n > space)
            n = space;
        memcpy(p, data + off, n);
        off += n;
        const uint8_t *send;
        size_t sendlen;
        rv = cm_auth_hs_advance(&hs, n, &send, &sendlen);
        HW_FUZZ_ASSERT(rv != 1); /* no proof from garbage */
    }
    cm_auth_free(a);
    return 0;
}
