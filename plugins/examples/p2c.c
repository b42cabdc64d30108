/*
 * Power of two choices (Mitzenmacher, "The Power of Two Choices in Randomized Load
 * Balancing", 2001): draw two destinations at random from the host's per-flow random bits,
 * take the one with fewer active connections (the first on a tie). An ineligible draw is
 * replaced by the other; when both are ineligible, the first eligible destination after
 * the first draw; none eligible: RVS_NONE.
 */
#include "rvs_plugin.h"

static int32_t p2c_pick(const rvs_area_t *a) {
    const rvs_dest_t *d = rvs_dests(a);
    const rvs_load_t *l = rvs_loads(a);
    uint32_t n = a->hdr.n_dests;
    if (n == 0) return RVS_NONE;
    uint64_t r = a->flow.rand;
    uint32_t i = (uint32_t)(((r & 0xffffffffu) * (uint64_t)n) >> 32);
    uint32_t j = (uint32_t)(((r >> 32) * (uint64_t)n) >> 32);
    int ei = rvs_eligible(&d[i], &l[i]);
    int ej = rvs_eligible(&d[j], &l[j]);
    if (ei && ej) return l[j].active < l[i].active ? (int32_t)j : (int32_t)i;
    if (ei) return (int32_t)i;
    if (ej) return (int32_t)j;
    for (uint32_t k = 1; k < n; k++) {
        uint32_t x = (i + k) % n;
        if (rvs_eligible(&d[x], &l[x])) return (int32_t)x;
    }
    return RVS_NONE;
}

RVS_PLUGIN(p2c_pick)
