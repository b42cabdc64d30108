/* rvs dpdk-sys shim: out-of-line copies of DPDK static inline functions (see shim.h). */
#include "shim.h"

uint16_t rvs_eth_rx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **rx_pkts, uint16_t nb_pkts)
{
	return rte_eth_rx_burst(port_id, queue_id, rx_pkts, nb_pkts);
}

uint16_t rvs_eth_tx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **tx_pkts, uint16_t nb_pkts)
{
	return rte_eth_tx_burst(port_id, queue_id, tx_pkts, nb_pkts);
}

struct rte_mbuf *rvs_pktmbuf_alloc(struct rte_mempool *mp)
{
	return rte_pktmbuf_alloc(mp);
}

int rvs_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned int count)
{
	return rte_pktmbuf_alloc_bulk(mp, mbufs, count);
}

void rvs_pktmbuf_free(struct rte_mbuf *m)
{
	rte_pktmbuf_free(m);
}

char *rvs_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_prepend(m, len);
}

char *rvs_pktmbuf_append(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_append(m, len);
}

char *rvs_pktmbuf_adj(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_adj(m, len);
}

int rvs_pktmbuf_trim(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_trim(m, len);
}

uint16_t rvs_pktmbuf_headroom(const struct rte_mbuf *m)
{
	return rte_pktmbuf_headroom(m);
}

uint16_t rvs_pktmbuf_tailroom(const struct rte_mbuf *m)
{
	return rte_pktmbuf_tailroom(m);
}

void rvs_pktmbuf_reset(struct rte_mbuf *m)
{
	rte_pktmbuf_reset(m);
}

uint16_t rvs_mbuf_refcnt_read(const struct rte_mbuf *m)
{
	return rte_mbuf_refcnt_read(m);
}

uint16_t rvs_pktmbuf_data_room_size(struct rte_mempool *mp)
{
	return rte_pktmbuf_data_room_size(mp);
}

uint64_t rvs_mbuf_tx_offload(uint64_t il2, uint64_t il3, uint64_t il4, uint64_t tso, uint64_t ol3, uint64_t ol2)
{
	return rte_mbuf_tx_offload(il2, il3, il4, tso, ol3, ol2, 0);
}

unsigned int rvs_ring_enqueue_burst(struct rte_ring *r, void *const *obj_table, unsigned int n,
                                    unsigned int *free_space)
{
	return rte_ring_enqueue_burst(r, obj_table, n, free_space);
}

unsigned int rvs_ring_dequeue_burst(struct rte_ring *r, void **obj_table, unsigned int n, unsigned int *available)
{
	return rte_ring_dequeue_burst(r, obj_table, n, available);
}

unsigned int rvs_ring_count(const struct rte_ring *r)
{
	return rte_ring_count(r);
}

unsigned int rvs_ring_free_count(const struct rte_ring *r)
{
	return rte_ring_free_count(r);
}

unsigned int rvs_lcore_id(void)
{
	return rte_lcore_id();
}

uint64_t rvs_rdtsc(void)
{
	return rte_rdtsc();
}

int rvs_errno(void)
{
	return rte_errno;
}

void rvs_mbuf_layout(struct rvs_mbuf_layout *out)
{
	out->size = sizeof(struct rte_mbuf);
	out->align = _Alignof(struct rte_mbuf);
	out->buf_addr = offsetof(struct rte_mbuf, buf_addr);
	out->buf_iova = offsetof(struct rte_mbuf, buf_iova);
	out->data_off = offsetof(struct rte_mbuf, data_off);
	out->refcnt = offsetof(struct rte_mbuf, refcnt);
	out->nb_segs = offsetof(struct rte_mbuf, nb_segs);
	out->port = offsetof(struct rte_mbuf, port);
	out->ol_flags = offsetof(struct rte_mbuf, ol_flags);
	out->packet_type = offsetof(struct rte_mbuf, packet_type);
	out->pkt_len = offsetof(struct rte_mbuf, pkt_len);
	out->data_len = offsetof(struct rte_mbuf, data_len);
	out->vlan_tci = offsetof(struct rte_mbuf, vlan_tci);
	out->hash = offsetof(struct rte_mbuf, hash);
	out->vlan_tci_outer = offsetof(struct rte_mbuf, vlan_tci_outer);
	out->buf_len = offsetof(struct rte_mbuf, buf_len);
	out->pool = offsetof(struct rte_mbuf, pool);
	out->next = offsetof(struct rte_mbuf, next);
	out->tx_offload = offsetof(struct rte_mbuf, tx_offload);
}
