//! What a TLS connection costs the server in heap, measured with a counting allocator on
//! rustls connections driven in memory (no sockets: the bytes are rustls's own).
//!
//! One test alone in this binary, so that nothing else allocates while it counts.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicIsize, Ordering};

use rustls::{ClientConnection, ServerConnection};
use upcase::tls;

struct Counting;

static HELD: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; the counter is only
// arithmetic on the sizes it was given.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        HELD.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc` is the system allocator's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        HELD.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        HELD.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: as for `dealloc`, and `new_size` is the caller's, per `realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn held() -> isize {
    HELD.load(Ordering::Relaxed)
}

/// Moves every pending TLS byte from one side to the other until neither has any.
fn pump(client: &mut ClientConnection, server: &mut ServerConnection) {
    let mut wire = Vec::new();
    loop {
        let mut moved = false;
        while client.wants_write() {
            wire.clear();
            client.write_tls(&mut wire).unwrap();
            let mut rd = &wire[..];
            while !rd.is_empty() {
                server.read_tls(&mut rd).unwrap();
                server.process_new_packets().unwrap();
            }
            moved = true;
        }
        while server.wants_write() {
            wire.clear();
            server.write_tls(&mut wire).unwrap();
            let mut rd = &wire[..];
            while !rd.is_empty() {
                client.read_tls(&mut rd).unwrap();
                client.process_new_packets().unwrap();
            }
            moved = true;
        }
        if !moved {
            return;
        }
    }
}

/// The heap bounds `docs/PROTOCOL.md` (TLS, Memory per TLS connection) states, per server connection, beyond what a plain
/// connection costs.
const IDLE_BOUND: isize = 12 * 1024;
const BUSY_BOUND: isize = 128 * 1024;

#[test]
fn an_idle_tls_connection_holds_little_and_a_busy_one_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let store = tls::self_signed(&ca).unwrap();
    let server_config = tls::server_config(store).unwrap();
    let client_config = tls::client_config(Some(&ca), false).unwrap();
    let name = tls::server_name("localhost", None).unwrap();

    const N: usize = 200;
    let mut pairs: Vec<(ClientConnection, ServerConnection)> = (0..N)
        .map(|_| {
            let mut client = ClientConnection::new(client_config.clone(), name.clone()).unwrap();
            let mut server = ServerConnection::new(server_config.clone()).unwrap();
            pump(&mut client, &mut server);
            assert!(!client.is_handshaking() && !server.is_handshaking());
            // One exchange, so the connections have carried data and gone idle again.
            client.writer().write_all(b"hello\n").unwrap();
            pump(&mut client, &mut server);
            let mut got = [0u8; 6];
            server.reader().read_exact(&mut got).unwrap();
            server.writer().write_all(b"HELLO\n").unwrap();
            pump(&mut client, &mut server);
            client.reader().read_exact(&mut got).unwrap();
            (client, server)
        })
        .collect();

    // Idle: what dropping the server sides gives back.
    let (clients, servers): (Vec<_>, Vec<_>) = pairs.drain(..).unzip();
    let before = held();
    drop(servers);
    let idle = (before - held()) / N as isize;
    eprintln!("idle TLS server connection: {idle} bytes of heap");
    assert!(idle <= IDLE_BOUND, "idle: {idle} bytes");
    drop(clients);

    // Busy: a server writing far more than a client reads. rustls takes plaintext only up
    // to its buffer limit (the connection core writes more only when the socket takes the
    // records), so what it holds stays bounded.
    let mut client = ClientConnection::new(client_config.clone(), name.clone()).unwrap();
    let mut server = ServerConnection::new(server_config.clone()).unwrap();
    pump(&mut client, &mut server);
    let chunk = vec![b'x'; 64 * 1024];
    // And a client sending a full record the server has not read yet.
    let mut incoming = Vec::new();
    client.writer().write_all(&chunk[..16 * 1024]).unwrap();
    client.write_tls(&mut incoming).unwrap();
    let before = held();
    let mut taken = 0;
    for _ in 0..64 {
        taken += server.writer().write(&chunk).unwrap();
    }
    let mut rd = &incoming[..];
    while !rd.is_empty() {
        server.read_tls(&mut rd).unwrap();
    }
    let busy = held() - before;
    eprintln!("busy TLS server connection: {busy} bytes of heap ({taken} bytes taken to send)");
    assert!(busy <= BUSY_BOUND, "busy: {busy} bytes");
    assert!(
        taken < 64 * chunk.len(),
        "the writer stops at its buffer limit"
    );
}
