//! Stream multiplexing: yamux, negotiated under two names.
//!
//! - `/yamux/1.0.0`, what every libp2p peer speaks. On it a stream's receive window stays at
//!   most 1 MiB: js-yamux (Helia) sends a frame as large as the window it is given, and
//!   rust-yamux refuses frames over 1 MiB (`FrameTooLarge` kills the connection).
//! - [`WIDE_PROTOCOL`], the same wire protocol between two archive-nodes, both rust-yamux (which
//!   splits what it sends into 16 KiB frames): windows auto-tune up to 32 MiB shared over the
//!   connection, enough for a path of 50 ms round trip at over 600 MB/s. With 1 MiB windows, a
//!   fetch moves at most a few MiB per round trip however many streams carry it.
//!
//! A dialer offers the wide name first; a peer that does not know it answers `na`, and the
//! dialer falls back to `/yamux/1.0.0` (one round trip more when connecting to such a peer).
//!
//! rust-yamux auto-tunes a stream's window from the connection's round trip and the bytes the
//! stream's reader actually took (at most twice the bandwidth-delay product), and libp2p-yamux
//! exposes only the stream count, which sets the shared budget: 1 GiB less 256 KiB per
//! possible stream. Both names share the same bound on what a peer can make us buffer.

use std::iter;

use libp2p::core::upgrade::{InboundConnectionUpgrade, OutboundConnectionUpgrade, UpgradeInfo};
use libp2p::yamux;

/// The multiplexer name two archive-nodes agree on: yamux with wide windows.
pub const WIDE_PROTOCOL: &str = "/archive-node/yamux/1.0.0";
/// The name libp2p-yamux answers to (it ignores the name it is handed).
const YAMUX_PROTOCOL: &str = "/yamux/1.0.0";

/// rust-yamux's connection budget (libp2p-yamux keeps the default) and per-stream start.
const CONNECTION_WINDOW: usize = 1024 * 1024 * 1024;
const STREAM_CREDIT: usize = 256 * 1024;

/// Streams per connection for `/yamux/1.0.0`: leaves 768 KiB to auto-tune, so a window never
/// exceeds 256 KiB + 768 KiB = 1 MiB.
const STANDARD_MAX_STREAMS: usize = 4093;
/// Streams per connection between archive-nodes: leaves 32 MiB to auto-tune.
const WIDE_MAX_STREAMS: usize = 3968;

/// The bytes a stream's window may grow by beyond its first 256 KiB, over the connection.
pub const fn tunable_window(max_streams: usize) -> usize {
    CONNECTION_WINDOW - max_streams * STREAM_CREDIT
}

/// Yamux as every libp2p peer speaks it, with windows of at most 1 MiB.
pub fn standard() -> yamux::Config {
    let mut c = yamux::Config::default();
    c.set_max_num_streams(STANDARD_MAX_STREAMS);
    c
}

/// Yamux under [`WIDE_PROTOCOL`], with windows that fill a long fat pipe.
pub fn wide() -> Wide {
    let mut c = yamux::Config::default();
    c.set_max_num_streams(WIDE_MAX_STREAMS);
    Wide(c)
}

/// libp2p-yamux's upgrade under another protocol name.
#[derive(Clone, Debug)]
pub struct Wide(yamux::Config);

impl UpgradeInfo for Wide {
    type Info = &'static str;
    type InfoIter = iter::Once<Self::Info>;

    fn protocol_info(&self) -> Self::InfoIter {
        iter::once(WIDE_PROTOCOL)
    }
}

impl<C> InboundConnectionUpgrade<C> for Wide
where
    yamux::Config: InboundConnectionUpgrade<C, Info = &'static str>,
{
    type Output = <yamux::Config as InboundConnectionUpgrade<C>>::Output;
    type Error = <yamux::Config as InboundConnectionUpgrade<C>>::Error;
    type Future = <yamux::Config as InboundConnectionUpgrade<C>>::Future;

    fn upgrade_inbound(self, io: C, _: Self::Info) -> Self::Future {
        self.0.upgrade_inbound(io, YAMUX_PROTOCOL)
    }
}

impl<C> OutboundConnectionUpgrade<C> for Wide
where
    yamux::Config: OutboundConnectionUpgrade<C, Info = &'static str>,
{
    type Output = <yamux::Config as OutboundConnectionUpgrade<C>>::Output;
    type Error = <yamux::Config as OutboundConnectionUpgrade<C>>::Error;
    type Future = <yamux::Config as OutboundConnectionUpgrade<C>>::Future;

    fn upgrade_outbound(self, io: C, _: Self::Info) -> Self::Future {
        self.0.upgrade_outbound(io, YAMUX_PROTOCOL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_windows_stay_within_a_js_yamux_frame_and_wide_ones_fill_a_fat_pipe() {
        // A stream's window: its first credit plus at most what the connection leaves to tune.
        assert_eq!(STREAM_CREDIT + tunable_window(STANDARD_MAX_STREAMS), 1024 * 1024);
        let wide = tunable_window(WIDE_MAX_STREAMS);
        assert_eq!(wide, 32 * 1024 * 1024);
        // 600 MB/s over 50 ms of round trip.
        assert!(wide >= 600_000_000 / 20);
    }

    use futures::future::Either;
    use futures::StreamExt;
    use libp2p::core::transport::{DialOpts, ListenerId, MemoryTransport, PortUse, TransportEvent};
    use libp2p::core::upgrade::{SelectUpgrade, Version};
    use libp2p::core::{Endpoint, Transport};
    use libp2p::{identity, noise, Multiaddr};

    /// Which muxer each side settled on (left: wide), the dialer offering both in our order.
    /// (`V1`, not the swarm's `V1Lazy`: a lazy dialer sends its last proposal with its first
    /// frame, and this test drops the muxers unused.)
    async fn negotiate(listener_wide: bool) -> (bool, bool) {
        let key = identity::Keypair::generate_ed25519();
        let ours = || {
            MemoryTransport::default()
                .upgrade(Version::V1)
                .authenticate(noise::Config::new(&identity::Keypair::generate_ed25519()).unwrap())
                .multiplex(SelectUpgrade::new(wide(), standard()))
                .map(|(_, m), _| matches!(m, Either::Left(_)))
                .boxed()
        };
        let mut listener = if listener_wide {
            ours()
        } else {
            MemoryTransport::default()
                .upgrade(Version::V1)
                .authenticate(noise::Config::new(&key).unwrap())
                .multiplex(standard())
                .map(|_, _| false)
                .boxed()
        };
        let addr: Multiaddr = format!("/memory/{}", rand::random::<u64>().max(1)).parse().unwrap();
        listener.listen_on(ListenerId::next(), addr.clone()).unwrap();
        let mut dialer = ours();
        let dial = dialer.dial(addr, DialOpts { role: Endpoint::Dialer, port_use: PortUse::New }).unwrap();
        let accept = async {
            loop {
                if let TransportEvent::Incoming { upgrade, .. } = listener.select_next_some().await {
                    return upgrade.await;
                }
            }
        };
        let (dialed, accepted) = futures::join!(dial, accept);
        (dialed.unwrap(), accepted.unwrap())
    }

    #[tokio::test]
    async fn two_archive_nodes_settle_on_wide_windows_and_fall_back_to_yamux_with_others() {
        assert_eq!(negotiate(true).await, (true, true));
        assert_eq!(negotiate(false).await, (false, false));
    }

    #[test]
    fn the_wide_upgrade_has_its_own_name() {
        assert_eq!(wide().protocol_info().collect::<Vec<_>>(), vec![WIDE_PROTOCOL]);
        assert_ne!(WIDE_PROTOCOL, YAMUX_PROTOCOL);
    }
}
