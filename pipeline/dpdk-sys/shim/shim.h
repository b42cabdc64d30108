/*
 * rvs dpdk-sys shim: the DPDK headers rvs binds, plus out-of-line wrappers for the static
 * inline functions bindgen cannot link to (burst functions, mbuf allocation and headroom
 * arithmetic, ring bursts, lcore id, TSC), and a few constants that DPDK spells as
 * function-like macros (RTE_BIT64) and bindgen therefore cannot evaluate.
 *
 * Compiled with the verbatim `pkg-config --cflags libdpdk` (it carries
 * `-include rte_config.h -march=corei7`, which rte_memcpy.h needs).
 */
#ifndef RVS_DPDK_SHIM_H
#define RVS_DPDK_SHIM_H

#include <stddef.h>
#include <stdint.h>

#include <rte_common.h>
#include <rte_cycles.h>
#include <rte_dev.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_ring.h>
#include <rte_version.h>

/* Constants built from RTE_BIT64() or other expressions bindgen's macro evaluator skips. */
static const uint64_t RVS_ETH_TX_OFFLOAD_IPV4_CKSUM = RTE_ETH_TX_OFFLOAD_IPV4_CKSUM;
static const uint64_t RVS_ETH_TX_OFFLOAD_UDP_CKSUM = RTE_ETH_TX_OFFLOAD_UDP_CKSUM;
static const uint64_t RVS_ETH_TX_OFFLOAD_TCP_CKSUM = RTE_ETH_TX_OFFLOAD_TCP_CKSUM;
static const uint64_t RVS_ETH_TX_OFFLOAD_MBUF_FAST_FREE = RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE;
static const uint64_t RVS_ETH_RX_OFFLOAD_RSS_HASH = RTE_ETH_RX_OFFLOAD_RSS_HASH;
static const uint64_t RVS_ETH_RSS_IP = RTE_ETH_RSS_IP;
static const uint64_t RVS_ETH_RSS_TCP = RTE_ETH_RSS_TCP;
static const uint64_t RVS_ETH_RSS_UDP = RTE_ETH_RSS_UDP;
static const uint64_t RVS_MBUF_F_RX_RSS_HASH = RTE_MBUF_F_RX_RSS_HASH;
static const uint64_t RVS_MBUF_F_TX_TCP_CKSUM = RTE_MBUF_F_TX_TCP_CKSUM;
static const uint64_t RVS_MBUF_F_TX_UDP_CKSUM = RTE_MBUF_F_TX_UDP_CKSUM;
static const uint64_t RVS_MBUF_F_TX_L4_MASK = RTE_MBUF_F_TX_L4_MASK;
static const uint64_t RVS_MBUF_F_TX_IP_CKSUM = RTE_MBUF_F_TX_IP_CKSUM;
static const uint64_t RVS_MBUF_F_TX_IPV4 = RTE_MBUF_F_TX_IPV4;
static const uint64_t RVS_MBUF_F_TX_IPV6 = RTE_MBUF_F_TX_IPV6;
static const uint32_t RVS_LCORE_ID_ANY = LCORE_ID_ANY;
static const uint32_t RVS_RTE_MAX_LCORE = RTE_MAX_LCORE;
static const uint32_t RVS_RTE_MAX_ETHPORTS = RTE_MAX_ETHPORTS;
static const uint16_t RVS_PKTMBUF_HEADROOM = RTE_PKTMBUF_HEADROOM;
static const uint16_t RVS_MBUF_DEFAULT_BUF_SIZE = RTE_MBUF_DEFAULT_BUF_SIZE;
static const uint32_t RVS_RING_F_SP_ENQ = RING_F_SP_ENQ;
static const uint32_t RVS_RING_F_SC_DEQ = RING_F_SC_DEQ;
static const uint32_t RVS_RING_F_EXACT_SZ = RING_F_EXACT_SZ;
static const int32_t RVS_SOCKET_ID_ANY = SOCKET_ID_ANY;
static const uint32_t RVS_ETH_LINK_UP = RTE_ETH_LINK_UP;

/* Ethernet device bursts. */
uint16_t rvs_eth_rx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **rx_pkts, uint16_t nb_pkts);
uint16_t rvs_eth_tx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **tx_pkts, uint16_t nb_pkts);

/* Packet mbufs. */
struct rte_mbuf *rvs_pktmbuf_alloc(struct rte_mempool *mp);
int rvs_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned int count);
void rvs_pktmbuf_free(struct rte_mbuf *m);
char *rvs_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len);
char *rvs_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
char *rvs_pktmbuf_adj(struct rte_mbuf *m, uint16_t len);
int rvs_pktmbuf_trim(struct rte_mbuf *m, uint16_t len);
uint16_t rvs_pktmbuf_headroom(const struct rte_mbuf *m);
uint16_t rvs_pktmbuf_tailroom(const struct rte_mbuf *m);
void rvs_pktmbuf_reset(struct rte_mbuf *m);
uint16_t rvs_mbuf_refcnt_read(const struct rte_mbuf *m);
uint16_t rvs_pktmbuf_data_room_size(struct rte_mempool *mp);
uint64_t rvs_mbuf_tx_offload(uint64_t il2, uint64_t il3, uint64_t il4, uint64_t tso, uint64_t ol3, uint64_t ol2);

/* Rings. */
unsigned int rvs_ring_enqueue_burst(struct rte_ring *r, void *const *obj_table, unsigned int n,
                                    unsigned int *free_space);
unsigned int rvs_ring_dequeue_burst(struct rte_ring *r, void **obj_table, unsigned int n, unsigned int *available);
unsigned int rvs_ring_count(const struct rte_ring *r);
unsigned int rvs_ring_free_count(const struct rte_ring *r);

/* Lcores, time, errors. */
unsigned int rvs_lcore_id(void);
uint64_t rvs_rdtsc(void);
int rvs_errno(void);

/* Layout of struct rte_mbuf as the C compiler sees it, for the Rust-side layout test. */
struct rvs_mbuf_layout {
	size_t size;
	size_t align;
	size_t buf_addr;
	size_t buf_iova;
	size_t data_off;
	size_t refcnt;
	size_t nb_segs;
	size_t port;
	size_t ol_flags;
	size_t packet_type;
	size_t pkt_len;
	size_t data_len;
	size_t vlan_tci;
	size_t hash;
	size_t vlan_tci_outer;
	size_t buf_len;
	size_t pool;
	size_t next;
	size_t tx_offload;
};
void rvs_mbuf_layout(struct rvs_mbuf_layout *out);

#endif
