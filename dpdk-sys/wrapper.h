/* The DPDK surface rvs binds (see build.rs for the allowlist that keeps the bindings small). */
#include <rte_config.h>
#include <rte_version.h>
#include <rte_errno.h>
#include <rte_eal.h>
#include <rte_lcore.h>
#include <rte_launch.h>
#include <rte_cycles.h>
#include <rte_mempool.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <rte_ethdev.h>
#include <rte_eth_ring.h>
#include <rte_bus_vdev.h>

/*
 * `rte_errno` is a per-lcore thread-local variable (RTE_PER_LCORE), which Rust cannot name as an
 * extern static. As a `static inline` function it goes through bindgen's generated wrappers
 * like every other inline function here.
 */
static inline int rvs_rte_errno(void) { return rte_errno; }

/*
 * Values that DPDK defines with function-like macros (RTE_BIT64 and friends), which bindgen's
 * macro evaluator cannot expand. As `const` variables clang evaluates them and bindgen emits
 * plain Rust constants.
 */
static const uint64_t RVS_ETH_RSS_IP = RTE_ETH_RSS_IP;
static const uint64_t RVS_ETH_RSS_TCP = RTE_ETH_RSS_TCP;
static const uint64_t RVS_ETH_RSS_UDP = RTE_ETH_RSS_UDP;
static const uint64_t RVS_ETH_RX_OFFLOAD_RSS_HASH = RTE_ETH_RX_OFFLOAD_RSS_HASH;
static const uint64_t RVS_MBUF_F_RX_RSS_HASH = RTE_MBUF_F_RX_RSS_HASH;
static const uint32_t RVS_LCORE_ID_ANY = LCORE_ID_ANY;
static const int RVS_SOCKET_ID_ANY = SOCKET_ID_ANY;
static const uint16_t RVS_PKTMBUF_HEADROOM = RTE_PKTMBUF_HEADROOM;
static const uint16_t RVS_MBUF_DEFAULT_BUF_SIZE = RTE_MBUF_DEFAULT_BUF_SIZE;
static const uint32_t RVS_MEMPOOL_NAMESIZE = RTE_MEMPOOL_NAMESIZE;
