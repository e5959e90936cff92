/* ObjectMeta records (see meta.h). */
#include "store/meta.h"

#include "alloc.h"
#include "err.h"

Hw__ObjectMeta *nd_meta_unpack(const char *v, size_t n)
{
    return hw__object_meta__unpack(NULL, n, (const uint8_t *)v);
}

int nd_meta_pack(const Hw__ObjectMeta *m, char **out, size_t *len)
{
    *len = hw__object_meta__get_packed_size(m);
    *out = cm_malloc(*len ? *len : 1);
    if (*out == NULL)
        return CM_ENOMEM;
    hw__object_meta__pack(m, (uint8_t *)*out);
    return 0;
}

int nd_meta_put(struct nd_batch *b, const struct nd_skey *k, const Hw__ObjectMeta *m)
{
    char *v;
    size_t n;
    if (nd_meta_pack(m, &v, &n) != 0)
        return CM_ENOMEM;
    nd_batch_put(b, k, v, n);
    cm_free(v);
    return b->oom ? CM_ENOMEM : 0;
}

int nd_meta_get(struct nd_store *s, const struct nd_skey *k, Hw__ObjectMeta **out)
{
    char *v;
    size_t n;
    *out = NULL;
    int rv = nd_store_get(s, k, &v, &n);
    if (rv != 0)
        return rv;
    *out = nd_meta_unpack(v, n);
    cm_free(v);
    return *out != NULL ? 0 : CM_EPROTO;
}
