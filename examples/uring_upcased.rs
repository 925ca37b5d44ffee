//! A bare server on the io_uring driver, for measuring it before `upcased --io uring` exists:
//! `uring_upcased ADDR [THREADS]` serves ADDR (one `SO_REUSEPORT` listener and ring per
//! thread) with the default policy until killed.

#[cfg(all(target_os = "linux", feature = "uring"))]
fn main() -> std::process::ExitCode {
    use std::time::Duration;
    use upcase::{limits, transform::Mode, uring};

    let mut args = std::env::args().skip(1);
    let Some(addr) = args
        .next()
        .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
    else {
        eprintln!("usage: uring_upcased ADDR [THREADS]");
        return std::process::ExitCode::from(2);
    };
    let threads: usize = args.next().and_then(|t| t.parse().ok()).unwrap_or(1);
    if let Err(why) = uring::probe() {
        eprintln!("uring_upcased: {why}");
        return std::process::ExitCode::FAILURE;
    }
    let opts = uring::Options {
        policy: uring::Policy {
            mode: Mode::Unicode,
            idle_timeout: Some(limits::DEFAULT_IDLE_TIMEOUT),
            linger_timeout: Duration::from_secs(2),
            read_limit: limits::READ_CHUNK,
        },
        max_connections: 100_000,
    };
    let handle = uring::Handle::new().expect("eventfd");
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let s = socket2::Socket::new(
                socket2::Domain::for_address(addr),
                socket2::Type::STREAM,
                None,
            )
            .expect("socket");
            s.set_reuse_address(true).expect("SO_REUSEADDR");
            s.set_reuse_port(true).expect("SO_REUSEPORT");
            s.bind(&addr.into()).expect("bind");
            s.listen(4096).expect("listen");
            let l: std::net::TcpListener = s.into();
            let (opts, h) = (opts, handle.clone());
            std::thread::spawn(move || {
                let stats = uring::Stats::default();
                uring::run(&[l], &opts, &stats, &h)
            })
        })
        .collect();
    for w in workers {
        if let Ok(Err(e)) = w.join() {
            eprintln!("uring_upcased: {e}");
            return std::process::ExitCode::FAILURE;
        }
    }
    std::process::ExitCode::SUCCESS
}

#[cfg(not(all(target_os = "linux", feature = "uring")))]
fn main() {
    eprintln!("uring_upcased: built without the io_uring driver");
}
