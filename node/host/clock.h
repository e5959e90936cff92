/* Clock and randomness seam: wall time, monotonic time and random numbers come from here, so
 * expiry, staged-upload GC, repair pacing and read timeouts run on a fake clock in tests. */
#ifndef ND_HOST_CLOCK_H
#define ND_HOST_CLOCK_H

#include <stdint.h>

struct nd_clock {
    int64_t (*now_ms)(struct nd_clock *c);   /* unix time in ms */
    uint64_t (*mono_ms)(struct nd_clock *c); /* monotonic ms */
    uint64_t (*random)(struct nd_clock *c);  /* uniformly random 64 bits */
    void *data;
};

/* The process's clocks; random from a per-clock xorshift seeded from the time. */
void nd_clock_system(struct nd_clock *c, uint64_t *seed_storage);

/* Tests: time moves only when told; random is a seeded, reproducible sequence. */
struct nd_fake_clock {
    struct nd_clock clock;
    int64_t wall_ms;
    uint64_t mono_ms;
    uint64_t seed;
};

void nd_fake_clock_init(struct nd_fake_clock *f, int64_t wall_ms, uint64_t seed);
void nd_fake_clock_advance(struct nd_fake_clock *f, uint64_t ms);

static inline int64_t nd_now_ms(struct nd_clock *c)
{
    return c->now_ms(c);
}

static inline uint64_t nd_mono_ms(struct nd_clock *c)
{
    return c->mono_ms(c);
}

static inline uint64_t nd_random(struct nd_clock *c)
{
    return c->random(c);
}

#endif
