/*
 * Misbehaving on purpose: declares no memory maximum (wasm-ld's default) and grows its
 * memory by 1 MiB on every pick, touching the new pages, until the host's cap stops it.
 */
#include "rvs_plugin.h"

static int32_t hog_pick(const rvs_area_t *a) {
    for (;;) {
        long before = __builtin_wasm_memory_grow(0, 16);
        if (before < 0) return RVS_NONE; /* a host that refuses without trapping */
        volatile uint8_t *p = (volatile uint8_t *)(before * 65536);
        p[0] = (uint8_t)a->hdr.n_dests;
    }
}

RVS_PLUGIN(hog_pick)
