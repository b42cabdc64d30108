/* Misbehaving on purpose: answers an index past the end of the destination list. */
#include "rvs_plugin.h"

static int32_t range_pick(const rvs_area_t *a) { return (int32_t)a->hdr.n_dests + 3; }

RVS_PLUGIN(range_pick)
