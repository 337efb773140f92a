#![cfg(feature = "dpdk-tests")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The safe DPDK layer against a real EAL, with a `net_ring` vdev (its tx ring is its rx ring, so
//! whatever is sent comes straight back). Vdevs only, never PCI. Run as root:
//! `cargo test --features dpdk-tests --test dpdk_vdev`.
//!
//! The EAL can be initialised once per process, so every check lives in one `#[test]`, in steps.

#[path = "common/frames.rs"]
mod frames;

use frames::{eth, BROADCAST};
use rvs::dpdk::{self, Eal, Mbuf, Mempool, Port, PortConfig, DEFAULT_DATA_ROOM, HEADROOM};
use rvs::packet::PacketBuf;

fn eal_args() -> Vec<String> {
    [
        "--no-pci",
        "--no-huge",
        "-m",
        "256",
        "--file-prefix",
        "rvs-dpdk-vdev-test",
        "-l",
        "0-1",
        "--vdev",
        "net_ring0",
        "--log-level",
        "*:warning",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// A recognisable Ethernet frame: broadcast dst, fixed src, type 0x88b5 (local experimental),
/// then `i` and a pattern (each byte its offset in the frame XOR `i`), `len` bytes in all.
fn frame(i: u16, len: usize) -> Vec<u8> {
    let mut payload = i.to_be_bytes().to_vec();
    payload.extend((16..len).map(|at| (at as u8) ^ (i as u8)));
    eth([0x02, 0, 0, 0, 0, 1], BROADCAST, 0x88b5, &payload)
}

fn mbuf_with(pool: &Mempool, bytes: &[u8]) -> Mbuf {
    let mut m = pool.alloc().expect("pool has mbufs");
    assert!(m.extend_from_slice(bytes));
    m
}

#[test]
fn dpdk_layer_on_net_ring() {
    let eal = Eal::init(&eal_args()).expect("EAL init (run as root)");

    // A second init is refused, not undefined behaviour.
    let again = Eal::init(&eal_args()).unwrap_err();
    assert_eq!(again.code(), -114, "{again}");

    assert!(dpdk::version().starts_with("DPDK "));
    assert!(dpdk::tsc_hz() > 0);
    let t0 = dpdk::tsc();
    assert!(dpdk::tsc() >= t0);

    check_lcores();

    let pool = Mempool::new(
        "rvs_test_pool",
        2047,
        32,
        DEFAULT_DATA_ROOM,
        dpdk::socket_id(),
    )
    .expect("mempool");
    assert_eq!(pool.size(), 2047);
    assert_eq!(pool.in_use(), 0);
    assert_eq!(pool.available(), 2047);
    // Same name twice is a DPDK error with a message.
    let dup = Mempool::new(
        "rvs_test_pool",
        63,
        0,
        DEFAULT_DATA_ROOM,
        dpdk::SOCKET_ID_ANY,
    );
    assert!(dup.is_err());
    assert!(Mempool::new("a_name_much_longer_than_dpdk_allows", 63, 0, 2176, -1).is_err());

    check_mbuf_edits(&pool);
    check_alloc_accounting(&pool);
    check_port(&pool);

    assert_eq!(pool.in_use(), 0, "every mbuf is back in the pool");
    drop(pool);
    drop(eal);
}

fn check_lcores() {
    let main = dpdk::main_lcore();
    assert_eq!(dpdk::lcore_id(), main);
    assert!(dpdk::socket_id() >= 0);
    let workers = dpdk::worker_lcores();
    assert!(!workers.contains(&main));
    // Launching on the main lcore is refused.
    assert!(dpdk::launch(main, || 0).is_err());
    let Some(&w) = workers.first() else {
        eprintln!("no worker lcore; skipping launch checks");
        return;
    };
    let h = dpdk::launch(w, || 42).expect("launch");
    assert_eq!(h.lcore(), w);
    assert_eq!(h.wait(), 42);

    // The closure runs on the worker lcore itself.
    let h = dpdk::launch(w, || dpdk::lcore_id() as i32).expect("launch");
    // A second launch before waiting is an error, not a mix-up.
    let busy = dpdk::launch(w, || 0).unwrap_err();
    assert_eq!(busy.code(), -16, "{busy}");
    assert_eq!(h.wait(), w as i32);

    // A panic on the worker comes back as a value.
    let h = dpdk::launch(w, || panic!("boom on a worker")).expect("launch");
    assert_eq!(h.wait(), dpdk::LAUNCH_PANICKED);

    // Dropping a handle waits too, and the lcore is free again afterwards.
    drop(dpdk::launch(w, || 1).expect("launch"));
    assert_eq!(dpdk::launch(w, || 5).expect("launch").wait(), 5);

    assert!(dpdk::launch(9999, || 0).is_err());
}

fn check_mbuf_edits(pool: &Mempool) {
    let mut m = pool.alloc().unwrap();
    assert_eq!(pool.in_use(), 1);
    assert!(m.is_empty());
    assert_eq!(m.nb_segs(), 1);
    assert_eq!(m.headroom(), HEADROOM);
    let room = DEFAULT_DATA_ROOM - HEADROOM;
    assert_eq!(m.tailroom(), room);
    assert_eq!(m.rss_hash(), None);
    m.set_rss_hash(0xdead_beef);
    assert_eq!(m.rss_hash(), Some(0xdead_beef));

    assert!(m.extend_from_slice(&[1, 2, 3, 4]));
    assert_eq!(m.data(), &[1, 2, 3, 4]);

    // prepend: headroom shrinks, new bytes are writable.
    assert!(m.prepend(2));
    assert_eq!(m.len(), 6);
    assert_eq!(m.headroom(), HEADROOM - 2);
    m.data_mut()[..2].copy_from_slice(&[9, 8]);
    assert_eq!(m.data(), &[9, 8, 1, 2, 3, 4]);
    assert!(!m.prepend(usize::from(HEADROOM)), "not enough headroom");
    assert_eq!(m.len(), 6);

    // adj: drop bytes at the front.
    assert!(m.adj(3));
    assert_eq!(m.data(), &[2, 3, 4]);
    assert_eq!(m.headroom(), HEADROOM + 1);
    assert!(!m.adj(4));
    assert_eq!(m.len(), 3);

    // append: grow at the end.
    let tail = m.tailroom();
    assert!(m.append(2));
    assert_eq!(m.len(), 5);
    assert_eq!(m.tailroom(), tail - 2);
    m.data_mut()[3..].copy_from_slice(&[5, 6]);
    assert_eq!(m.data(), &[2, 3, 4, 5, 6]);
    assert!(!m.append(usize::from(m.tailroom()) + 1));
    assert!(
        m.append(usize::from(m.tailroom())),
        "exactly the tailroom fits"
    );
    assert_eq!(m.tailroom(), 0);

    // truncate: like rte_pktmbuf_trim; longer is a no-op.
    m.truncate(4);
    assert_eq!(m.data(), &[2, 3, 4, 5]);
    m.truncate(100);
    assert_eq!(m.len(), 4);
    m.truncate(0);
    assert!(m.is_empty());

    // The same PacketBuf contract as Vec<u8> for a whole frame.
    let f = frame(7, 60);
    let mut m2 = mbuf_with(pool, &f);
    assert_eq!(m2.data(), &f[..]);
    assert!(m2.prepend(4)); // e.g. a VLAN tag's worth
    assert!(m2.adj(4));
    assert_eq!(m2.data(), &f[..]);
    assert!(format!("{m2:?}").contains("len: 60"));

    drop(m);
    drop(m2);
    assert_eq!(pool.in_use(), 0);
}

fn check_alloc_accounting(pool: &Mempool) {
    let mut v: Vec<Mbuf> = Vec::with_capacity(64);
    assert!(pool.alloc_bulk(&mut v, 40));
    assert_eq!(v.len(), 40);
    assert_eq!(pool.in_use(), 40);
    // All or nothing.
    assert!(!pool.alloc_bulk(&mut v, 100_000));
    assert_eq!(v.len(), 40);
    assert_eq!(pool.in_use(), 40);

    let one = pool.alloc().unwrap();
    assert_eq!(pool.in_use(), 41);
    v.push(one);
    let cap = v.capacity();
    dpdk::free_bulk(&mut v);
    assert!(v.is_empty());
    assert_eq!(v.capacity(), cap, "capacity kept for the next burst");
    assert_eq!(pool.in_use(), 0);
    dpdk::free_bulk(&mut v); // empty is fine

    // Exhaust the pool: alloc says None, nothing breaks, all comes back.
    let mut all = Vec::new();
    while let Some(m) = pool.alloc() {
        all.push(m);
    }
    assert_eq!(all.len(), 2047);
    assert_eq!(pool.available(), 0);
    assert!(pool.alloc().is_none());
    drop(all); // one rte_pktmbuf_free per Mbuf
    assert_eq!(pool.in_use(), 0);
}

fn check_port(pool: &Mempool) {
    assert!(Port::count() >= 1);
    let id = Port::find("net_ring0").expect("net_ring0 exists");
    let missing = Port::find("net_nothing9").unwrap_err();
    assert!(missing.to_string().contains("net_nothing9"), "{missing}");

    // Too many queues: a clear error naming the limit, and the port is still usable after.
    let greedy = PortConfig {
        rx_queues: 64,
        ..PortConfig::default()
    };
    let e = Port::start(id, &greedy, pool).unwrap_err();
    assert!(e.to_string().contains("supports at most"), "{e}");

    let cfg = PortConfig {
        rx_queues: 1,
        tx_queues: 1,
        rx_desc: 512,
        tx_desc: 512,
        mtu: Some(1500),
        promiscuous: true,
        rss: true,
        rss_key: Some(rvs::flow::rss::RSS_KEY),
    };
    let (port, mut rxq, mut txq) = Port::start(id, &cfg, pool).expect("start net_ring0");
    assert_eq!((rxq.len(), txq.len()), (1, 1));
    let (mut rx, mut tx) = (rxq.remove(0), txq.remove(0));
    assert_eq!(
        (rx.port(), rx.queue(), tx.port(), tx.queue()),
        (id, 0, id, 0)
    );
    assert_eq!(port.id(), id);
    let info = port.info().clone();
    assert_eq!(info.driver, "net_ring");
    assert_eq!(info.name, "net_ring0");
    assert!(info.max_rx_queues >= 1 && info.max_tx_queues >= 1);
    assert!(!info.rss_enabled, "one rx queue: no RSS");
    assert!(
        info.mtu_set,
        "net_ring cannot set an MTU, but 1500 is what it has"
    );
    assert!(info.warnings.is_empty(), "{:?}", info.warnings);
    assert_eq!(info.mtu, 1500);
    assert!(info.promiscuous);
    eprintln!("net_ring0: {info:?} mac {:02x?}", port.mac());
    let link = port.link();
    assert!(link.up, "{link:?}");
    let _ = port.mac();

    // Send frames and read them back: the ring loops tx to rx.
    let mut out: Vec<Mbuf> = (0..32u16)
        .map(|i| mbuf_with(pool, &frame(i, 60 + usize::from(i))))
        .collect();
    assert_eq!(pool.in_use(), 32);
    assert_eq!(tx.tx_burst(&mut out), 32);
    assert!(out.is_empty());
    assert_eq!(pool.in_use(), 32, "in the ring, not freed");

    let mut back: Vec<Mbuf> = Vec::with_capacity(64);
    // At most `max` and at most the spare capacity.
    assert_eq!(rx.rx_burst(&mut back, 10), 10);
    let cap = back.capacity();
    assert_eq!(rx.rx_burst(&mut back, 1000), 22);
    assert_eq!(back.capacity(), cap, "no allocation in rx_burst");
    assert_eq!(rx.rx_burst(&mut back, 64), 0, "ring drained");
    for (i, m) in back.iter().enumerate() {
        assert_eq!(m.data(), &frame(i as u16, 60 + i)[..], "frame {i}");
    }
    dpdk::free_bulk(&mut back);
    assert_eq!(pool.in_use(), 0);

    // A full spare capacity receives nothing.
    let mut tiny: Vec<Mbuf> = Vec::new();
    assert_eq!(rx.rx_burst(&mut tiny, 32), 0);

    // Overfill the ring: the unsent tail stays with the caller, in order, at the front.
    let total = 1100u16;
    let mut out: Vec<Mbuf> = (0..total).map(|i| mbuf_with(pool, &frame(i, 64))).collect();
    let sent = tx.tx_burst(&mut out);
    assert!(sent > 0 && sent < usize::from(total), "sent {sent}");
    assert_eq!(out.len(), usize::from(total) - sent);
    for (k, m) in out.iter().enumerate() {
        assert_eq!(m.data(), &frame((sent + k) as u16, 64)[..], "unsent {k}");
    }
    // The ring is full, so another try takes nothing and changes nothing.
    let unsent = out.len();
    assert_eq!(tx.tx_burst(&mut out), 0);
    assert_eq!(out.len(), unsent);
    let (s, dropped) = tx.tx_burst_or_free(&mut out);
    assert_eq!((s, dropped), (0, unsent));
    assert!(out.is_empty());
    assert_eq!(pool.in_use() as usize, sent);

    // Drain it in bursts, checking order.
    let mut got = 0usize;
    let mut burst: Vec<Mbuf> = Vec::with_capacity(32);
    loop {
        let n = rx.rx_burst(&mut burst, 32);
        if n == 0 {
            break;
        }
        for m in &burst {
            assert_eq!(m.data(), &frame(got as u16, 64)[..]);
            got += 1;
        }
        dpdk::free_bulk(&mut burst);
    }
    assert_eq!(got, sent);
    assert_eq!(pool.in_use(), 0);

    let stats = port.stats();
    eprintln!("stats {stats:?}");
    assert_eq!(stats.opackets, 32 + sent as u64);
    assert_eq!(stats.ipackets, 32 + sent as u64);
    let xstats = port.xstats();
    eprintln!("xstats {xstats:?}");
    assert!(xstats
        .iter()
        .any(|(n, v)| n == "rx_good_packets" && *v == 32 + sent as u64));

    drop(port);
    assert_eq!(pool.in_use(), 0);

    // Multi-queue with RSS asked for, on a device without RSS: started, RSS off, a warning.
    let id1 = Port::attach_vdev("net_ring1", "").expect("attach net_ring1");
    // (Closing net_ring0 released its port id, so net_ring1 may well get the same one.)
    assert_eq!(Port::find("net_ring1").unwrap(), id1);
    assert!(
        Port::attach_vdev("net_ring1", "").is_err(),
        "already exists"
    );
    let cfg = PortConfig {
        rx_queues: 2,
        tx_queues: 2,
        ..PortConfig::default()
    };
    let (port1, rxq, txq) = Port::start(id1, &cfg, pool).expect("start net_ring1");
    assert_eq!((rxq.len(), txq.len()), (2, 2));
    assert_eq!(rxq[1].queue(), 1);
    let info = port1.info();
    assert_eq!((info.rx_queues, info.tx_queues), (2, 2));
    assert!(!info.rss_enabled);
    assert!(!info.rss_key_set, "no key is programmed where RSS is off");
    assert!(info.warnings.iter().any(|w| w.contains("RSS")), "{info:?}");
    assert!(!info.mtu_set);
    drop((rxq, txq));
    drop(port1);
    assert_eq!(pool.in_use(), 0);
}
