/*
 * An O(1) source hash: the client address and port hashed (murmur3's fmix64) onto the
 * destination list; an ineligible destination defers the connection to the native
 * fallback scheduler. The benches use it as the smallest useful plugin.
 */
#include "rvs_plugin.h"

static uint64_t fmix64(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return k;
}

static int32_t hash_pick(const rvs_area_t *a) {
    uint32_t n = a->hdr.n_dests;
    if (n == 0) return RVS_NONE;
    const uint64_t *s = (const uint64_t *)a->flow.saddr;
    uint64_t h = fmix64(s[0] ^ fmix64(s[1] ^ a->flow.sport));
    uint32_t i = (uint32_t)(((h & 0xffffffffu) * (uint64_t)n) >> 32);
    return rvs_eligible(&rvs_dests(a)[i], &rvs_loads(a)[i]) ? (int32_t)i : RVS_DEFER;
}

RVS_PLUGIN(hash_pick)
