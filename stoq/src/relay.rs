//! Not part of the transport. [`DelayRelay`] is a user-space UDP relay: it
//! listens on `[::1]` and forwards every datagram between one client and a
//! server after a fixed one-way delay (so the round trip through it is
//! twice that), recording when each datagram reached the relay, which way
//! it went and its size. Dial [`DelayRelay::addr`] instead of the server
//! and time the handshake in round trips; [`flights`] then reads the
//! client's and the server's first flights from the log, which tells
//! whether the server's first flight fitted QUIC's anti-amplification
//! budget (three times what the client sent before its address was
//! validated).
//!
//! The relay is IPv6 loopback only and serves one client at a time: replies
//! go to the address the latest client datagram came from. Its tasks stop
//! when it is dropped.
//!
//! [`DelayRelay`]: crate::relay::DelayRelay
//! [`DelayRelay::addr`]: crate::relay::DelayRelay::addr
//! [`flights`]: crate::relay::flights()

use std::io;
use std::net::{Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Largest UDP payload the relay forwards whole.
const MAX_DATAGRAM: usize = 65_536;

/// Which way a datagram went through the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the client to the server.
    ToServer,
    /// From the server to the client.
    ToClient,
}

/// A datagram seen by the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// When it reached the relay (it leaves one one-way delay later).
    pub at: Instant,
    /// Which way it went.
    pub dir: Direction,
    /// UDP payload bytes.
    pub len: usize,
}

type Log = Arc<Mutex<Vec<Seen>>>;

fn record(log: &Log, dir: Direction, len: usize) -> Instant {
    let at = Instant::now();
    log.lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(Seen { at, dir, len });
    at
}

/// A UDP relay on `[::1]` that delays every datagram by a fixed one-way
/// delay and logs it. Its tasks are aborted when it is dropped.
#[derive(Debug)]
pub struct DelayRelay {
    addr: SocketAddr,
    one_way: Duration,
    log: Log,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for DelayRelay {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl DelayRelay {
    /// Starts a relay to `server` (an IPv6 address reachable from `[::1]`)
    /// that holds every datagram for `one_way` before passing it on. Must
    /// be called within a Tokio runtime (it spawns its tasks there).
    ///
    /// Fails if `server` is not IPv6 or a socket cannot be bound.
    pub async fn start(server: SocketAddr, one_way: Duration) -> io::Result<DelayRelay> {
        if !server.is_ipv6() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("the delay relay is IPv6 only, got {server}"),
            ));
        }
        let loopback = SocketAddr::new(Ipv6Addr::LOCALHOST.into(), 0);
        let front = Arc::new(UdpSocket::bind(loopback).await?);
        let back = Arc::new(UdpSocket::bind(loopback).await?);
        back.connect(server).await?;
        let addr = front.local_addr()?;
        let log: Log = Arc::default();
        let client: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
        let (to_server, mut to_server_rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
        let (to_client, mut to_client_rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
        let mut tasks = Vec::with_capacity(4);
        let (f, l, c) = (front.clone(), log.clone(), client.clone());
        tasks.push(tokio::spawn(async move {
            let mut buf = vec![0u8; MAX_DATAGRAM];
            loop {
                // Errors (ICMP unreachable after the peer left) are skipped.
                if let Ok((n, from)) = f.recv_from(&mut buf).await {
                    *c.lock().unwrap_or_else(|p| p.into_inner()) = Some(from);
                    let at = record(&l, Direction::ToServer, n);
                    let _ = to_server.send((at + one_way, buf[..n].to_vec()));
                }
            }
        }));
        let b = back.clone();
        tasks.push(tokio::spawn(async move {
            while let Some((due, data)) = to_server_rx.recv().await {
                tokio::time::sleep_until(due.into()).await;
                let _ = b.send(&data).await;
            }
        }));
        let (b, l) = (back, log.clone());
        tasks.push(tokio::spawn(async move {
            let mut buf = vec![0u8; MAX_DATAGRAM];
            loop {
                if let Ok(n) = b.recv(&mut buf).await {
                    let at = record(&l, Direction::ToClient, n);
                    let _ = to_client.send((at + one_way, buf[..n].to_vec()));
                }
            }
        }));
        tasks.push(tokio::spawn(async move {
            while let Some((due, data)) = to_client_rx.recv().await {
                tokio::time::sleep_until(due.into()).await;
                let dest = *client.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(dest) = dest {
                    let _ = front.send_to(&data, dest).await;
                }
            }
        }));
        Ok(DelayRelay {
            addr,
            one_way,
            log,
            tasks,
        })
    }

    /// The address clients dial instead of the server.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The delay added to each datagram (half the round trip through the
    /// relay).
    pub fn one_way(&self) -> Duration {
        self.one_way
    }

    /// A snapshot of every datagram seen so far, in arrival order.
    pub fn log(&self) -> Vec<Seen> {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// [`flights`] of the log so far.
    pub fn flights(&self) -> Option<Flights> {
        flights(&self.log(), self.one_way)
    }
}

/// The first flights of a handshake, read from a relay log.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Flights {
    /// Bytes the client sent before the server's first datagram reached it.
    pub client_first: usize,
    /// Datagrams in the client's first flight.
    pub client_first_datagrams: usize,
    /// Bytes the server sent before the client's second flight reached it:
    /// before its address is validated, QUIC caps this at
    /// [`Flights::amplification_budget`].
    pub server_first: usize,
    /// Datagrams in the server's first flight.
    pub server_first_datagrams: usize,
}

impl Flights {
    /// QUIC's anti-amplification budget for the server's first flight:
    /// three times the client's first flight.
    pub fn amplification_budget(&self) -> usize {
        3 * self.client_first
    }
}

/// Reads the first flights from a relay log (in arrival order) taken with
/// a relay of `one_way` delay. `None` when the log does not hold a reply
/// from the server and a second flight from the client.
pub fn flights(log: &[Seen], one_way: Duration) -> Option<Flights> {
    // The first server datagram reaches the client one_way after the relay
    // got it; what the client sent before is its first flight.
    let reply_at_client = log.iter().find(|s| s.dir == Direction::ToClient)?.at + one_way;
    let (first, later): (Vec<&Seen>, Vec<&Seen>) = log
        .iter()
        .filter(|s| s.dir == Direction::ToServer)
        .partition(|s| s.at < reply_at_client);
    // The server cannot answer the client's second flight before it
    // arrives: everything it sent until then is its first flight.
    let second_at_server = later.first()?.at + one_way;
    let server: Vec<&Seen> = log
        .iter()
        .filter(|s| s.dir == Direction::ToClient && s.at < second_at_server)
        .collect();
    Some(Flights {
        client_first: first.iter().map(|s| s.len).sum(),
        client_first_datagrams: first.len(),
        server_first: server.iter().map(|s| s.len).sum(),
        server_first_datagrams: server.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE_WAY: Duration = Duration::from_millis(30);
    const WAIT: Duration = Duration::from_secs(10);

    #[tokio::test]
    async fn relays_an_echo_with_the_delay_and_logs_both_ways() {
        let loopback = SocketAddr::new(Ipv6Addr::LOCALHOST.into(), 0);
        let server = UdpSocket::bind(loopback).await.unwrap();
        let server_addr = server.local_addr().unwrap();
        // Echo server: answers each datagram with a longer one, and tells
        // when the request arrived.
        let echo = tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            let (n, from) = server.recv_from(&mut buf).await.unwrap();
            let arrived = Instant::now();
            let reply = vec![0xAB; n * 2 + 50];
            server.send_to(&reply, from).await.unwrap();
            (n, arrived)
        });
        let relay = DelayRelay::start(server_addr, ONE_WAY).await.unwrap();
        assert_eq!(relay.one_way(), ONE_WAY);
        assert!(relay.addr().ip().is_loopback() && relay.addr().is_ipv6());
        let client = UdpSocket::bind(loopback).await.unwrap();

        let sent = Instant::now();
        client.send_to(&[7u8; 100], relay.addr()).await.unwrap();
        let mut buf = [0u8; 2048];
        let (n, from) = tokio::time::timeout(WAIT, client.recv_from(&mut buf))
            .await
            .expect("echo through the relay")
            .unwrap();
        let received = Instant::now();
        let (request_len, arrived) = tokio::time::timeout(WAIT, echo).await.unwrap().unwrap();

        assert_eq!(request_len, 100);
        assert_eq!(n, 250);
        assert!(buf[..n].iter().all(|&b| b == 0xAB));
        assert_eq!(from, relay.addr());
        assert!(arrived - sent >= ONE_WAY, "to the server in {:?}", arrived - sent);
        assert!(
            received - arrived >= ONE_WAY,
            "back to the client in {:?}",
            received - arrived
        );

        let log = relay.log();
        assert_eq!(log.len(), 2, "{log:?}");
        assert_eq!((log[0].dir, log[0].len), (Direction::ToServer, 100));
        assert_eq!((log[1].dir, log[1].len), (Direction::ToClient, 250));
        assert!(log[0].at >= sent && log[1].at >= log[0].at + ONE_WAY);
        // No second flight from the client: no flights to read.
        assert_eq!(relay.flights(), None);
    }

    #[test]
    fn reads_first_flights_from_a_log() {
        let t0 = Instant::now();
        let ms = |m: u64| t0 + Duration::from_millis(m);
        let seen = |at, dir, len| Seen { at, dir, len };
        let one_way = Duration::from_millis(25);
        let log = [
            // Client Initials.
            seen(ms(0), Direction::ToServer, 1200),
            seen(ms(1), Direction::ToServer, 1200),
            // Server's first flight, reaching the client from 50 ms.
            seen(ms(25), Direction::ToClient, 1200),
            seen(ms(26), Direction::ToClient, 1200),
            seen(ms(27), Direction::ToClient, 900),
            // A client ACK before the reply reached it.
            seen(ms(40), Direction::ToServer, 60),
            // Client's second flight, reaching the server at 85 ms.
            seen(ms(60), Direction::ToServer, 1200),
            seen(ms(84), Direction::ToClient, 300),
            // Sent after the second flight reached the server.
            seen(ms(86), Direction::ToClient, 500),
        ];
        let f = flights(&log, one_way).unwrap();
        assert_eq!(
            f,
            Flights {
                client_first: 2460,
                client_first_datagrams: 3,
                server_first: 3600,
                server_first_datagrams: 4,
            }
        );
        assert_eq!(f.amplification_budget(), 7380);
        assert_eq!(flights(&log[..4], one_way), None);
        assert_eq!(flights(&[], one_way), None);
    }
}
