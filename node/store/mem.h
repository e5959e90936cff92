/* An in-memory implementation of the store seam for tests: a sorted array of records,
 * correctness over speed, with fault countdowns and a crash that loses what was not synced.
 *
 * Durability model: a write with sync, or nd_store_sync, makes every earlier write durable;
 * nd_store_mem_crash drops everything after the last durable point (what a power cut does to
 * RocksDB's unsynced WAL tail). */
#ifndef ND_STORE_MEM_H
#define ND_STORE_MEM_H

#include <stddef.h>

#include "store/store.h"

enum nd_mem_fault {
    ND_MEM_FAIL_WRITE, /* the nth write fails with CM_ESTORE (once) */
    ND_MEM_FAIL_SYNC,  /* the nth sync (nd_store_sync or a sync write) fails with CM_ESTORE */
    ND_MEM_NOSPC,      /* from the nth write on, every write fails with CM_ENOSPC (disk full) */
    ND_MEM_FAIL_READ,  /* the nth point read (get) fails with CM_ESTORE (once) */
};

int nd_store_mem_open(struct nd_store *s);
/* Arm a fault: nth = 1 is the very next call; 0 disarms that kind. */
void nd_store_mem_fault(struct nd_store *s, enum nd_mem_fault kind, unsigned nth);
/* Lose every write since the last durable point. */
void nd_store_mem_crash(struct nd_store *s);
size_t nd_store_mem_count(struct nd_store *s);   /* records held */
unsigned nd_store_mem_syncs(struct nd_store *s); /* successful syncs so far */
/* A byte-exact fingerprint of every record (key and value), to compare two stores' contents. */
unsigned long long nd_store_mem_digest(struct nd_store *s);

#endif
