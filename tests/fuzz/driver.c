/* Standalone fuzz driver (no libFuzzer): loads the seeds given as arguments (files, or
 * directories of files: the target's corpus), replays each, then mutates them
 * deterministically HW_FUZZ_ITERS times. The targets' properties and the sanitizers check. */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

#define HW_FUZZ_MAX_INPUT 65536
#define MAX_SEEDS 512

struct seed {
    uint8_t *data;
    size_t len;
};

static struct seed seeds[MAX_SEEDS];
static size_t nseeds;
static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Insert a run copied from elsewhere in the input (or from another seed). */
static size_t splice(uint8_t *buf, size_t len, size_t cap, size_t pos)
{
    const struct seed *s = &seeds[next() % nseeds];
    if (s->len == 0 || len >= cap)
        return len;
    size_t from = next() % s->len;
    size_t n = 1 + next() % (s->len - from);
    if (n > cap - len)
        n = cap - len;
    memmove(buf + pos + n, buf + pos, len - pos);
    memcpy(buf + pos, s->data + from, n);
    return len + n;
}

static size_t mutate_once(uint8_t *buf, size_t len, size_t cap)
{
    static const uint8_t v[] = {0,   0xff, 0x7f, 0x80, '\r', '\n', ',', '-', '"', ' ',
                                '%', '/',  '.',  '9',  '\\', '=',  '&', '?', ':', ';'};
    size_t pos = len ? next() % len : 0;
    size_t n;
    switch (next() % 8) {
    case 0: /* flip a bit */
        if (len)
            buf[pos] ^= (uint8_t)(1u << (next() % 8));
        return len;
    case 1: /* random byte */
        if (len)
            buf[pos] = (uint8_t)next();
        return len;
    case 2: /* insert a byte */
        if (len >= cap)
            return len;
        memmove(buf + pos + 1, buf + pos, len - pos);
        buf[pos] = v[next() % sizeof(v)];
        return len + 1;
    case 3: /* delete a run */
        if (len == 0)
            return len;
        n = 1 + next() % (len - pos);
        memmove(buf + pos, buf + pos + n, len - pos - n);
        return len - n;
    case 4: /* truncate */
        return pos;
    case 5: /* duplicate a run */
        if (len == 0 || len >= cap)
            return len;
        n = 1 + next() % (len - pos);
        if (n > cap - len)
            n = cap - len;
        memmove(buf + pos + n, buf + pos, len - pos);
        return len + n;
    case 6:
        return splice(buf, len, cap, pos);
    default: /* interesting bytes */
        if (len)
            buf[pos] = v[next() % sizeof(v)];
        return len;
    }
}

static size_t mutate(uint8_t *buf, size_t len, size_t cap)
{
    int rounds = 1 + (int)(next() % 8);
    for (int r = 0; r < rounds; r++)
        len = mutate_once(buf, len, cap);
    return len;
}

static int add_file(const char *path)
{
    static uint8_t buf[HW_FUZZ_MAX_INPUT];
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        return -1;
    }
    size_t n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    if (nseeds == MAX_SEEDS) {
        fprintf(stderr, "fuzz: more than %d seeds, %s ignored\n", MAX_SEEDS, path);
        return 0;
    }
    seeds[nseeds].data = malloc(n ? n : 1);
    if (seeds[nseeds].data == NULL)
        return -1;
    memcpy(seeds[nseeds].data, buf, n);
    seeds[nseeds++].len = n;
    return 0;
}

static int add_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        perror(path);
        return -1;
    }
    if (!S_ISDIR(st.st_mode))
        return add_file(path);
    struct dirent **names;
    int n = scandir(path, &names, NULL, alphasort); /* sorted: the run is reproducible */
    if (n < 0) {
        perror(path);
        return -1;
    }
    int rv = 0;
    for (int i = 0; i < n; i++) {
        char full[4096];
        if (names[i]->d_name[0] != '.' && rv == 0) {
            snprintf(full, sizeof(full), "%s/%s", path, names[i]->d_name);
            rv = add_file(full);
        }
        free(names[i]);
    }
    free(names);
    return rv;
}

static const uint8_t *cur;
static size_t cur_len;

/* A property failed (abort): show the input, C-escaped, so it can become a corpus file. */
static void on_abort(int sig)
{
    fprintf(stderr, "fuzz: failing input (%zu bytes): \"", cur_len);
    for (size_t i = 0; i < cur_len; i++) {
        if (cur[i] >= 0x20 && cur[i] < 0x7f && cur[i] != '"' && cur[i] != '\\')
            fputc(cur[i], stderr);
        else
            fprintf(stderr, "\\x%02x", cur[i]);
    }
    fprintf(stderr, "\"\n");
    signal(sig, SIG_DFL);
    raise(sig);
}

/* The target gets an exactly sized copy, so ASan sees a read one byte past the input. */
static int run_one(const uint8_t *data, size_t len)
{
    uint8_t *exact = malloc(len ? len : 1);
    if (exact == NULL)
        return -1;
    memcpy(exact, data, len);
    cur = exact, cur_len = len;
    LLVMFuzzerTestOneInput(exact, len);
    free(exact);
    return 0;
}

int main(int argc, char **argv)
{
    static uint8_t buf[HW_FUZZ_MAX_INPUT];
    long iters = getenv("HW_FUZZ_ITERS") ? atol(getenv("HW_FUZZ_ITERS")) : 20000;
    signal(SIGABRT, on_abort);
    for (int i = 1; i < argc; i++) {
        if (add_path(argv[i]) != 0)
            return 2;
    }
    if (nseeds == 0) {
        fprintf(stderr, "fuzz: no seeds (pass the corpus directory)\n");
        return 2;
    }
    for (size_t i = 0; i < nseeds; i++) {
        if (run_one(seeds[i].data, seeds[i].len) != 0)
            return 2;
    }
    for (long i = 0; i < iters; i++) {
        const struct seed *s = &seeds[next() % nseeds];
        memcpy(buf, s->data, s->len);
        if (run_one(buf, mutate(buf, s->len, sizeof(buf))) != 0)
            return 2;
    }
    for (size_t i = 0; i < nseeds; i++)
        free(seeds[i].data);
    printf("fuzz: %ld mutated inputs over %zu seeds, no property failed\n", iters, nseeds);
    return 0;
}
