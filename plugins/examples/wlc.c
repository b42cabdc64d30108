/*
 * Weighted least-connection, exactly as rvs's native wlc and IPVS's ip_vs_wlc.c:
 * the first eligible destination in list order starts as the least loaded; a later one
 * replaces it only when strictly less loaded relative to its weight, compared by cross
 * multiplication (overhead_least * weight_d > overhead_d * weight_least, overhead =
 * active * 256 + inactive), so ties stay with the earlier destination.
 */
#include "rvs_plugin.h"

static int32_t wlc_pick(const rvs_area_t *a) {
    const rvs_dest_t *d = rvs_dests(a);
    const rvs_load_t *l = rvs_loads(a);
    uint32_t n = a->hdr.n_dests;
    int32_t least = -1;
    uint64_t loh = 0, lw = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (!rvs_eligible(&d[i], &l[i])) continue;
        uint64_t doh = rvs_overhead(&l[i]);
        uint64_t dw = d[i].weight;
        if (least < 0 || loh * dw > doh * lw) {
            least = (int32_t)i;
            loh = doh;
            lw = dw;
        }
    }
    return least < 0 ? RVS_NONE : least;
}

RVS_PLUGIN(wlc_pick)
