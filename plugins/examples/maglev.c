/*
 * Maglev-style consistent hashing (Eisenbud et al., "Maglev: A Fast and Reliable Software
 * Network Load Balancer", NSDI 2016, section 3.4): on each table update every destination
 * with weight > 0 that is neither inhibited nor unavailable gets a permutation of the
 * M-entry lookup table (offset and skip from two hashes of its address and port), and the
 * destinations take turns claiming their next preferred free entry, each taking
 * weight / gcd(weights) entries per round, as IPVS's ip_vs_mh.c does. A pick hashes the
 * client address (and port with the mh-port flag) into the table; an entry whose
 * destination is overloaded right now is skipped for the next hash, up to 8 times, then
 * the connection is deferred to the native scheduler.
 */
#include "rvs_plugin.h"

#define M 4093u /* prime, as IPVS's default mh table */
#define MH_PORT 0x8u

static uint16_t table[M];
static uint32_t next_pref[RVS_MAX_DESTS];
static uint32_t offset_[RVS_MAX_DESTS];
static uint32_t skip_[RVS_MAX_DESTS];
static uint32_t turns[RVS_MAX_DESTS];
static int ready;

static uint64_t fmix64(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return k;
}

static uint64_t hash_addr(const uint8_t *a16, uint64_t seed) {
    const uint64_t *w = (const uint64_t *)a16;
    return fmix64(fmix64(w[0] ^ seed) ^ w[1]);
}

static uint32_t gcd(uint32_t a, uint32_t b) {
    while (b) {
        uint32_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

static int32_t maglev_update(const rvs_area_t *a, uint32_t generation) {
    (void)generation;
    const rvs_dest_t *d = rvs_dests(a);
    uint32_t n = a->hdr.n_dests;
    uint32_t g = 0, live = 0;
    ready = 0;
    if (n > RVS_MAX_DESTS || n > 65535) return 1;
    for (uint32_t i = 0; i < n; i++) {
        int ok = d[i].weight > 0 && (d[i].flags & (RVS_DEST_INHIBITED | RVS_DEST_UNAVAILABLE)) == 0;
        turns[i] = ok ? d[i].weight : 0;
        if (ok) {
            g = gcd(g, d[i].weight);
            live++;
        }
        uint64_t h = hash_addr(d[i].addr, d[i].port);
        offset_[i] = (uint32_t)(h % M);
        skip_[i] = (uint32_t)((h >> 32) % (M - 1)) + 1;
        next_pref[i] = 0;
    }
    if (live == 0) {
        ready = 1; /* every pick answers RVS_NONE */
        for (uint32_t k = 0; k < M; k++) table[k] = 0xffff;
        return 0;
    }
    for (uint32_t i = 0; i < n; i++) turns[i] /= g;
    for (uint32_t k = 0; k < M; k++) table[k] = 0xffff;
    uint32_t filled = 0;
    while (filled < M) {
        for (uint32_t i = 0; i < n && filled < M; i++) {
            for (uint32_t t = 0; t < turns[i] && filled < M; t++) {
                uint32_t c;
                do {
                    c = (uint32_t)((offset_[i] + (uint64_t)next_pref[i] * skip_[i]) % M);
                    next_pref[i]++;
                } while (table[c] != 0xffff);
                table[c] = (uint16_t)i;
                filled++;
            }
        }
    }
    ready = 1;
    return 0;
}

static int32_t maglev_pick(const rvs_area_t *a) {
    if (!ready) return RVS_DEFER;
    const rvs_dest_t *d = rvs_dests(a);
    const rvs_load_t *l = rvs_loads(a);
    uint64_t key = (a->hdr.sched_flags & MH_PORT) ? a->flow.sport : 0;
    uint64_t h = hash_addr(a->flow.saddr, key);
    for (int tries = 0; tries < 8; tries++) {
        uint16_t i = table[h % M];
        if (i == 0xffff) return RVS_NONE;
        if (i < a->hdr.n_dests && rvs_eligible(&d[i], &l[i])) return i;
        h = fmix64(h + 1);
    }
    return RVS_DEFER;
}

RVS_PLUGIN(maglev_pick)
RVS_TABLE_UPDATE(maglev_update)
