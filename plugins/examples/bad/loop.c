/* Misbehaving on purpose: never returns from a pick. The host's deadline stops it. */
#include "rvs_plugin.h"

static int32_t loop_pick(const rvs_area_t *a) {
    volatile uint32_t spin = a->hdr.n_dests;
    for (;;) spin++;
    return 0;
}

RVS_PLUGIN(loop_pick)
