/*
 * rvs_plugin.h: the C SDK for rvs scheduler plugins, ABI 1.0 (see plugins/ABI.md).
 *
 * A plugin includes this header, defines one function
 *
 *     int32_t my_pick(const rvs_area_t *area);
 *
 * and exports it with RVS_PLUGIN(my_pick). Optional hooks: RVS_CONFIGURE(fn) and
 * RVS_TABLE_UPDATE(fn). Build:
 *
 *     clang --target=wasm32-unknown-unknown -O2 -nostdlib -mbulk-memory \
 *           -Wl,--no-entry -Wl,--stack-first -I plugins/sdk/include -o p.wasm p.c
 *
 * (-mbulk-memory turns struct copies into memory.copy; without it, -nostdlib leaves
 * memcpy/memset undefined. This header also supplies both, weakly, for older compilers.
 * --stack-first puts the shadow stack below the data so an overflow traps.)
 */
#ifndef RVS_PLUGIN_H
#define RVS_PLUGIN_H

typedef unsigned char uint8_t;
typedef unsigned short uint16_t;
typedef unsigned int uint32_t;
typedef unsigned long long uint64_t;
typedef int int32_t;
typedef long long int64_t;
typedef unsigned long size_t;

#define RVS_ABI_MAJOR 1
#define RVS_ABI_MINOR 0

/* Answers of a pick. */
#define RVS_NONE (-1)  /* no destination can take the connection */
#define RVS_DEFER (-2) /* let the native fallback scheduler pick */

/* Destination flags (static part). */
#define RVS_DEST_INHIBITED 0x1u
#define RVS_DEST_UNAVAILABLE 0x2u
/* Counter flags. */
#define RVS_LOAD_OVERLOADED 0x1u

/* Log levels. */
#define RVS_LOG_ERROR 0
#define RVS_LOG_WARN 1
#define RVS_LOG_INFO 2
#define RVS_LOG_DEBUG 3
#define RVS_LOG_TRACE 4

/* Most destinations the default area holds; define before including to change it. */
#ifndef RVS_MAX_DESTS
#define RVS_MAX_DESTS 1024
#endif

typedef struct rvs_header {
    uint32_t abi;        /* host's version: major << 16 | minor */
    uint32_t generation; /* bumped at every rewrite of the static part */
    uint32_t n_dests;
    uint32_t capacity;
    uint32_t dests_off;
    uint32_t loads_off;
    uint32_t flow_off;
    uint16_t lcore;
    uint16_t svc_port;
    uint64_t seed;
    uint32_t sched_flags;
    uint8_t svc_proto;
    uint8_t svc_af;
    uint16_t reserved;
    uint8_t vip[16];
} rvs_header_t;

typedef struct rvs_flow {
    uint8_t saddr[16];
    uint8_t daddr[16];
    uint16_t sport;
    uint16_t dport;
    uint8_t proto;
    uint8_t af;
    uint16_t payload_len;
    uint8_t payload[16];
    uint64_t rand;
} rvs_flow_t;

typedef struct rvs_dest {
    uint8_t addr[16];
    uint32_t id;
    uint32_t weight;
    uint16_t port;
    uint16_t flags;
    uint8_t af;
    uint8_t fwd;
    uint16_t reserved;
} rvs_dest_t;

typedef struct rvs_load {
    uint32_t active;
    uint32_t inactive;
    uint32_t persistent;
    uint32_t flags;
} rvs_load_t;

/* The area the host writes: header, flow, then the two arrays (see ABI.md section 3). */
typedef struct rvs_area {
    rvs_header_t hdr;
    rvs_flow_t flow;
} rvs_area_t;

_Static_assert(sizeof(rvs_header_t) == 64, "header is 64 bytes");
_Static_assert(sizeof(rvs_flow_t) == 64, "flow is 64 bytes");
_Static_assert(sizeof(rvs_dest_t) == 32, "dest is 32 bytes");
_Static_assert(sizeof(rvs_load_t) == 16, "load is 16 bytes");
_Static_assert(__builtin_offsetof(rvs_header_t, seed) == 32, "header.seed");
_Static_assert(__builtin_offsetof(rvs_header_t, vip) == 48, "header.vip");
_Static_assert(__builtin_offsetof(rvs_flow_t, payload) == 40, "flow.payload");
_Static_assert(__builtin_offsetof(rvs_flow_t, rand) == 56, "flow.rand");
_Static_assert(__builtin_offsetof(rvs_dest_t, flags) == 26, "dest.flags");

static inline const rvs_dest_t *rvs_dests(const rvs_area_t *a) {
    return (const rvs_dest_t *)((const uint8_t *)a + a->hdr.dests_off);
}
static inline const rvs_load_t *rvs_loads(const rvs_area_t *a) {
    return (const rvs_load_t *)((const uint8_t *)a + a->hdr.loads_off);
}
/* IPVS's overhead: active * 256 + inactive. */
static inline uint64_t rvs_overhead(const rvs_load_t *l) {
    return ((uint64_t)l->active << 8) + (uint64_t)l->inactive;
}
/* The host's eligibility rule: weight > 0, not inhibited, available, not overloaded. */
static inline int rvs_eligible(const rvs_dest_t *d, const rvs_load_t *l) {
    return d->weight > 0 && (d->flags & (RVS_DEST_INHIBITED | RVS_DEST_UNAVAILABLE)) == 0 &&
           (l->flags & RVS_LOAD_OVERLOADED) == 0;
}

#define RVS_EXPORT(name) __attribute__((export_name(#name)))
#define RVS_IMPORT(mod, name) __attribute__((import_module(#mod), import_name(#name)))

RVS_IMPORT(rvs, log) void rvs_log_raw(int32_t level, const char *msg, int32_t len);

static inline void rvs_log(int32_t level, const char *msg) {
    int32_t n = 0;
    while (msg[n]) n++;
    rvs_log_raw(level, msg, n);
}

/* memcpy/memset for compilers that still emit calls under -nostdlib. */
__attribute__((weak)) void *memcpy(void *d, const void *s, size_t n) {
    uint8_t *o = (uint8_t *)d;
    const uint8_t *i = (const uint8_t *)s;
    while (n--) *o++ = *i++;
    return d;
}
__attribute__((weak)) void *memset(void *d, int c, size_t n) {
    uint8_t *o = (uint8_t *)d;
    while (n--) *o++ = (uint8_t)c;
    return d;
}

/* The default area: RVS_MAX_DESTS destinations, static, 8-byte aligned. */
#define RVS_AREA_BYTES(cap) (128u + (uint32_t)(cap) * 48u)
static uint64_t rvs_area_storage[RVS_AREA_BYTES(RVS_MAX_DESTS) / 8];
static inline const rvs_area_t *rvs_area(void) { return (const rvs_area_t *)rvs_area_storage; }

/*
 * RVS_PLUGIN(pick): exports the version marker, the table request and the pick function.
 */
#define RVS_PLUGIN(pick_fn)                                                                 \
    RVS_EXPORT(rvs_abi_v1) int32_t rvs_abi_v1(void) { return RVS_ABI_MINOR; }               \
    RVS_EXPORT(rvs_table) int32_t rvs_table(int32_t capacity) {                             \
        if (capacity < 0 || capacity > RVS_MAX_DESTS) return 0;                             \
        return (int32_t)(size_t)rvs_area_storage;                                           \
    }                                                                                       \
    RVS_EXPORT(rvs_pick) int32_t rvs_pick(void) { return pick_fn(rvs_area()); }

/*
 * RVS_TABLE_UPDATE(fn): int32_t fn(const rvs_area_t *area, uint32_t generation), 0 = ready.
 */
#define RVS_TABLE_UPDATE(update_fn)                                                         \
    RVS_EXPORT(rvs_table_update) int32_t rvs_table_update(int32_t generation) {             \
        return update_fn(rvs_area(), (uint32_t)generation);                                 \
    }

/*
 * RVS_CONFIGURE(fn, max): int32_t fn(const uint8_t *blob, uint32_t len), 0 = accepted;
 * blobs longer than max bytes are refused.
 */
#define RVS_CONFIGURE(configure_fn, max_len)                                                \
    static uint8_t rvs_config_storage[(max_len) > 0 ? (max_len) : 1];                       \
    RVS_EXPORT(rvs_config_buf) int32_t rvs_config_buf(int32_t len) {                        \
        if (len < 0 || len > (max_len)) return 0;                                           \
        return (int32_t)(size_t)rvs_config_storage;                                         \
    }                                                                                       \
    RVS_EXPORT(rvs_configure) int32_t rvs_configure(int32_t len) {                          \
        return configure_fn(rvs_config_storage, (uint32_t)len);                             \
    }

#endif /* RVS_PLUGIN_H */
