//! The cluster's virtual address, as keepalived and a TCP load balancer in front of the API servers
//! give it to clients: a listener on the VIP that forwards each connection to the API server, open
//! only while some keepalived instance holds the address.
//!
//! - Clients reach the control plane through the VIP, never one API server's own address: kubeadm's
//!   HA guide puts the API servers behind a load balancer named by `--control-plane-endpoint`
//!   (kubernetes.io/docs/setup/production-environment/tools/kubeadm/high-availability/).
//! - Workers (their kubelets) reach the API servers through that load balancer: "The kube-apiserver
//!   is exposed to worker nodes using a load balancer" (same docs, ha-topology/).
//! - keepalived holds the VIP and haproxy listens on it, forwarding TCP to every API server
//!   (kubernetes/kubeadm docs/ha-considerations.md, "keepalived and haproxy").
//! - Nobody holding the VIP (every keepalived stopped, or a failover window): nothing listens there,
//!   so a connection is refused.
//! - When the VIP moves (or is lost), the connections made through it end: the new holder knows none
//!   of them (RFC 3768 section 8.1: a new master sends gratuitous ARP; the old flows are not its).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::server::Shared;

/// How often the listener looks at who holds the VIP.
const POLL: Duration = Duration::from_millis(50);

/// Serves the VIP at `vip`, forwarding to the API server at `backend`, until aborted.
pub(crate) async fn serve(shared: Arc<Shared>, vip: SocketAddr, backend: SocketAddr) {
    let mut listener: Option<TcpListener> = None;
    let mut holder: Option<String> = None;
    let (generation, _) = watch::channel(0u64);
    let mut bind_error_said = false;
    loop {
        let now = shared.vip_holder();
        if now != holder {
            // Moved or lost: the connections through the old holder end.
            generation.send_modify(|g| *g += 1);
            holder = now;
        }
        match (&holder, &listener) {
            (Some(_), None) => match TcpListener::bind(vip).await {
                Ok(l) => {
                    listener = Some(l);
                    bind_error_said = false;
                }
                Err(e) => {
                    if !bind_error_said {
                        eprintln!("kup-lab apiserver: cannot listen on the virtual address {vip}: {e}");
                        bind_error_said = true;
                    }
                }
            },
            (None, Some(_)) => listener = None,
            _ => {}
        }
        let Some(l) = &listener else {
            tokio::time::sleep(POLL).await;
            continue;
        };
        tokio::select! {
            accepted = l.accept() => {
                if let Ok((client, _)) = accepted {
                    let ended = generation.subscribe();
                    tokio::spawn(forward(client, backend, ended));
                }
            }
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

/// One connection through the VIP, until either side closes it or the VIP moves.
async fn forward(mut client: TcpStream, backend: SocketAddr, mut moved: watch::Receiver<u64>) {
    let _ = client.set_nodelay(true);
    let Ok(mut server) = TcpStream::connect(backend).await else {
        return;
    };
    let _ = server.set_nodelay(true);
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = moved.changed() => {}
    }
}
