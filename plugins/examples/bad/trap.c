/* Misbehaving on purpose: traps (unreachable) on every pick, after logging once. */
#include "rvs_plugin.h"

static int32_t trap_pick(const rvs_area_t *a) {
    (void)a;
    rvs_log(RVS_LOG_WARN, "trap example: about to trap");
    __builtin_trap();
}

RVS_PLUGIN(trap_pick)
