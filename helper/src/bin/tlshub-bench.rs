//! tlshub-bench: the seed's `tlshub_bench` (a TCP echo client/server that
//! measures connection latency and throughput), plus what comparing tlshub
//! against plain TCP and against kTLS needs:
//!
//! - the time from `socket()` to the first echoed byte (the cost a secured
//!   flow adds lands there: key derivation and kTLS install), and p50/p99 of
//!   it and of the connection latency;
//! - `--ktls-key HEX|fixed`: the app installs kTLS itself on every socket
//!   (TLS 1.3, AES-128-GCM, a fixed key, distinct per direction), the "kTLS
//!   ceiling" tlshub can at best reach;
//! - `--bulk MIB` (client) / `--sink` (server): one long connection, MIB MiB
//!   one way, reported in Mbps (`--concurrency N`: N such connections at
//!   once, reported in aggregate);
//! - `--rr N` (client, against the echo server): netperf `TCP_RR`-style, one
//!   connection making N request/response round trips of `--data-size`
//!   bytes; p50/p99 of the round trip.
//!
//! Echo protocol (the seed's): per connection the client connects
//! (TCP_NODELAY), sends `--data-size` bytes, reads them back, half-closes
//! and drains until the server closes. Bulk protocol: the client sends its
//! bytes and half-closes; the sink counts them and answers with the count
//! (8 bytes, big endian), then closes.
//!
//! Times are wall-clock (`Instant`); CPU % is (user + sys) / wall of this
//! process; peak memory is its maximum RSS.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use serde::Serialize;

#[derive(Parser)]
#[command(
    name = "tlshub-bench",
    about = "TCP echo / bulk benchmark (the seed's tlshub_bench, with kTLS and percentiles)"
)]
struct Cli {
    /// Run as the client or as the server
    #[arg(long, value_enum)]
    mode: Role,
    /// Client: the server's address (IPv4 or IPv6)
    #[arg(long, value_name = "IP")]
    target_ip: Option<IpAddr>,
    /// Client: the server's port
    #[arg(long, value_name = "PORT", default_value_t = 8080)]
    target_port: u16,
    /// Server: the port to listen on (all addresses, IPv4 and IPv6)
    #[arg(long, value_name = "PORT", default_value_t = 8080)]
    listen_port: u16,
    /// Client: bytes each connection sends (and reads back)
    #[arg(long, value_name = "BYTES", default_value_t = 1024)]
    data_size: usize,
    /// Client: connections in flight at once
    #[arg(long, value_name = "N", default_value_t = 1)]
    concurrency: usize,
    /// Client: connections in all (server: stop after this many; default: never)
    #[arg(long, value_name = "N")]
    total_connections: Option<u64>,
    /// Write the summary (and per-connection rows) as JSON to FILE
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write the per-connection rows as CSV to FILE
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
    /// Print every connection
    #[arg(short, long)]
    verbose: bool,
    /// Install kTLS (TLS 1.3, AES-128-GCM) on every socket with this 16-byte
    /// key (32 hex digits, or "fixed" for a built-in one); client and server
    /// must agree. The server-to-client direction uses the key with every
    /// bit flipped, and each direction its own salt.
    #[arg(long, value_name = "HEX|fixed", value_parser = parse_key)]
    ktls_key: Option<[u8; 16]>,
    /// Client: instead of echo connections, one connection sending MIB MiB
    /// to a `--sink` server; reports Mbps
    #[arg(long, value_name = "MIB")]
    bulk: Option<u64>,
    /// Client: instead of echo connections, one connection making N
    /// request/response round trips of --data-size bytes (netperf TCP_RR)
    #[arg(long, value_name = "N", conflicts_with = "bulk")]
    rr: Option<u64>,
    /// Server: count what each connection sends and answer with the count
    /// (the peer of `--bulk`), instead of echoing
    #[arg(long)]
    sink: bool,
    /// Seconds a connection may wait for its peer before it counts as a timeout
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    timeout: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Role {
    Client,
    Server,
}

fn parse_key(s: &str) -> std::result::Result<[u8; 16], String> {
    if s == "fixed" {
        return Ok(*b"tlshub-bench-key");
    }
    if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("want 32 hex digits (16 bytes) or \"fixed\"".into());
    }
    let mut k = [0u8; 16];
    for (i, byte) in k.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
    }
    Ok(k)
}

// ---- kTLS (include/uapi/linux/tls.h, include/uapi/linux/tcp.h) ----

const SOL_TLS: libc::c_int = 282;
const TLS_TX: libc::c_int = 1;
const TLS_RX: libc::c_int = 2;
const TCP_ULP: libc::c_int = 31;
const TLS_1_3_VERSION: u16 = 0x0304;
const TLS_CIPHER_AES_GCM_128: u16 = 51;

/// `struct tls12_crypto_info_aes_gcm_128`.
#[repr(C)]
struct CryptoInfoAesGcm128 {
    version: u16,
    cipher_type: u16,
    iv: [u8; 8],
    key: [u8; 16],
    salt: [u8; 4],
    rec_seq: [u8; 8],
}

fn setsockopt(fd: i32, level: libc::c_int, name: libc::c_int, val: &[u8]) -> io::Result<()> {
    // SAFETY: `val` is valid for `val.len()` bytes for the duration of the call.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            val.as_ptr().cast(),
            val.len() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Direction keys: client-to-server is the key, server-to-client its
/// complement; salts differ too, so the two directions never share a nonce.
fn crypto_info(key: &[u8; 16], c2s: bool) -> CryptoInfoAesGcm128 {
    let mut k = *key;
    if !c2s {
        k.iter_mut().for_each(|b| *b = !*b);
    }
    CryptoInfoAesGcm128 {
        version: TLS_1_3_VERSION,
        cipher_type: TLS_CIPHER_AES_GCM_128,
        iv: [0; 8],
        key: k,
        salt: if c2s { *b"c2s0" } else { *b"s2c0" },
        rec_seq: [0; 8],
    }
}

fn install_ktls(s: &TcpStream, key: &[u8; 16], client: bool) -> io::Result<()> {
    let fd = s.as_raw_fd();
    setsockopt(fd, libc::SOL_TCP, TCP_ULP, b"tls")?;
    for (opt, c2s) in [(TLS_TX, client), (TLS_RX, !client)] {
        let info = crypto_info(key, c2s);
        // SAFETY: `CryptoInfoAesGcm128` is repr(C) plain bytes; the slice
        // covers exactly the struct, which outlives the call.
        let bytes = unsafe {
            std::slice::from_raw_parts(
                (&info as *const CryptoInfoAesGcm128).cast::<u8>(),
                std::mem::size_of::<CryptoInfoAesGcm128>(),
            )
        };
        setsockopt(fd, SOL_TLS, opt, bytes)?;
    }
    Ok(())
}

// ---- results ----

#[derive(Serialize, Clone)]
struct ConnRow {
    id: u64,
    state: &'static str,
    bytes_sent: u64,
    bytes_received: u64,
    /// socket() to connect() return
    connection_latency_ms: f64,
    /// socket() to the first echoed byte (or the sink's answer)
    first_byte_ms: Option<f64>,
    /// connect() return to the end of the connection
    transfer_time_ms: f64,
    throughput_mbps: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Serialize)]
struct Percentiles {
    avg: f64,
    min: f64,
    p50: f64,
    p99: f64,
    max: f64,
}

#[derive(Serialize)]
struct Summary {
    tool: &'static str,
    mode: &'static str,
    target: String,
    ktls: &'static str,
    data_size: usize,
    concurrency: usize,
    total_connections: u64,
    successful_connections: u64,
    failed_connections: u64,
    timeout_connections: u64,
    total_bytes_sent: u64,
    total_bytes_received: u64,
    avg_connection_latency_ms: f64,
    min_connection_latency_ms: f64,
    max_connection_latency_ms: f64,
    p50_connection_latency_ms: f64,
    p99_connection_latency_ms: f64,
    avg_first_byte_ms: f64,
    p50_first_byte_ms: f64,
    p99_first_byte_ms: f64,
    max_first_byte_ms: f64,
    /// Mean of the successful connections' throughputs (bulk: the one connection's).
    avg_throughput_mbps: f64,
    /// All bytes moved (both directions) over the whole run.
    aggregate_throughput_mbps: f64,
    connections_per_second: f64,
    total_duration_s: f64,
    cpu_percent: f64,
    peak_memory_mb: f64,
    connection_latency_ms: Option<Percentiles>,
    first_byte_ms: Option<Percentiles>,
    /// `--rr`: each request/response round trip, after the connection's first.
    #[serde(skip_serializing_if = "Option::is_none")]
    rr_ms: Option<Percentiles>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rr_per_second: Option<f64>,
    connections: Vec<ConnRow>,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    // Nearest rank.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn stats(mut v: Vec<f64>) -> Option<Percentiles> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(Percentiles {
        avg: v.iter().sum::<f64>() / v.len() as f64,
        min: v[0],
        p50: percentile(&v, 50.0),
        p99: percentile(&v, 99.0),
        max: v[v.len() - 1],
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn mbps(bytes: u64, d: Duration) -> f64 {
    let s = d.as_secs_f64();
    if s > 0.0 {
        bytes as f64 * 8.0 / s / 1e6
    } else {
        0.0
    }
}

fn rusage() -> (f64, f64) {
    // SAFETY: getrusage fills the zeroed struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a rusage.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (
        tv(ru.ru_utime) + tv(ru.ru_stime),
        ru.ru_maxrss as f64 / 1024.0,
    )
}

// ---- client ----

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

struct Outcome {
    sent: u64,
    received: u64,
    connected: Option<Instant>,
    first_byte: Option<Instant>,
    err: Option<io::Error>,
    /// `--rr`: round-trip times (ms).
    rr: Vec<f64>,
}

/// One echo connection (or the bulk one). Blocking socket with
/// SO_RCVTIMEO/SO_SNDTIMEO; echo sends and reads in turns of at most 16 KiB
/// (a kTLS record), so neither side's buffers fill.
fn one_conn(cli: &Cli, addr: SocketAddr, payload: &[u8], out: &mut Outcome) -> io::Result<()> {
    let timeout = Duration::from_secs(cli.timeout);
    let s = TcpStream::connect_timeout(&addr, timeout)?;
    out.connected = Some(Instant::now());
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    if let Some(key) = &cli.ktls_key {
        install_ktls(&s, key, true)?;
    }
    let mut s = s;
    let mut buf = vec![0u8; 64 * 1024];
    if let Some(mib) = cli.bulk {
        let total = mib * 1024 * 1024;
        while out.sent < total {
            let n = payload.len().min((total - out.sent) as usize);
            s.write_all(&payload[..n])?;
            out.sent += n as u64;
        }
        s.shutdown(Shutdown::Write)?;
        let mut ack = [0u8; 8];
        s.read_exact(&mut ack)?;
        out.first_byte = Some(Instant::now());
        out.received = 8;
        let counted = u64::from_be_bytes(ack);
        if counted != total {
            return Err(io::Error::other(format!(
                "sink counted {counted} bytes, sent {total}"
            )));
        }
        return Ok(());
    }
    if let Some(n) = cli.rr {
        let req = payload
            .get(..cli.data_size.min(payload.len()))
            .unwrap_or_default();
        if req.is_empty() {
            return Err(io::Error::other("--rr needs a --data-size of 1 to 64 KiB"));
        }
        for i in 0..n {
            let t = Instant::now();
            s.write_all(req)?;
            let mut got = 0;
            while got < req.len() {
                let r = s.read(&mut buf[..req.len() - got])?;
                if r == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "server closed early",
                    ));
                }
                got += r;
            }
            out.first_byte.get_or_insert_with(Instant::now);
            out.sent += req.len() as u64;
            out.received += got as u64;
            // The first one includes keying the flow: not a steady-state RR.
            if i > 0 {
                out.rr.push(ms(t.elapsed()));
            }
        }
        s.shutdown(Shutdown::Write)?;
        while s.read(&mut buf)? != 0 {}
        return Ok(());
    }
    let chunk = 16 * 1024;
    let size = cli.data_size as u64;
    while out.received < size {
        if out.sent < size {
            let n = chunk.min((size - out.sent) as usize);
            let off = (out.sent % payload.len() as u64) as usize;
            let n = n.min(payload.len() - off);
            s.write_all(&payload[off..off + n])?;
            out.sent += n as u64;
        }
        // Read back everything sent so far (lockstep per 16 KiB chunk).
        while out.received < out.sent {
            let r = s.read(&mut buf)?;
            if r == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "server closed early",
                ));
            }
            out.first_byte.get_or_insert_with(Instant::now);
            out.received += r as u64;
        }
    }
    s.shutdown(Shutdown::Write)?;
    loop {
        match s.read(&mut buf)? {
            0 => break,
            n => out.received += n as u64,
        }
    }
    Ok(())
}

fn client(cli: &Cli) -> Result<Summary> {
    let ip = cli
        .target_ip
        .context("--target-ip is needed with --mode client")?;
    let addr = SocketAddr::new(ip, cli.target_port);
    let concurrency = if cli.rr.is_some() {
        1
    } else {
        cli.concurrency.max(1)
    };
    // Bulk: one connection per thread, all at once; RR: one connection.
    let total = match (cli.bulk, cli.rr) {
        (Some(_), _) => concurrency as u64,
        (_, Some(_)) => 1,
        _ => cli.total_connections.unwrap_or(100),
    };
    let payload: Arc<Vec<u8>> = Arc::new(
        (0..64 * 1024)
            .map(|i| b"tlshub-bench-data"[i % 17])
            .collect(),
    );
    let next = AtomicU64::new(0);
    let rows = Mutex::new(Vec::with_capacity(total as usize));
    let rrs = Mutex::new(Vec::new());
    let start = Instant::now();
    std::thread::scope(|sc| {
        for _ in 0..concurrency {
            sc.spawn(|| loop {
                let id = next.fetch_add(1, Ordering::Relaxed);
                if id >= total {
                    break;
                }
                let t0 = Instant::now();
                let mut o = Outcome {
                    sent: 0,
                    received: 0,
                    connected: None,
                    first_byte: None,
                    err: None,
                    rr: Vec::new(),
                };
                if let Err(e) = one_conn(cli, addr, &payload, &mut o) {
                    o.err = Some(e);
                }
                rrs.lock().unwrap_or_else(|p| p.into_inner()).append(&mut o.rr);
                let end = Instant::now();
                let conn_at = o.connected.unwrap_or(end);
                let xfer = end - conn_at;
                let state = match &o.err {
                    None => "success",
                    Some(e) if is_timeout(e) => "timeout",
                    Some(_) => "failed",
                };
                let row = ConnRow {
                    id,
                    state,
                    bytes_sent: o.sent,
                    bytes_received: o.received,
                    connection_latency_ms: ms(conn_at - t0),
                    first_byte_ms: o.first_byte.map(|t| ms(t - t0)),
                    transfer_time_ms: ms(xfer),
                    throughput_mbps: mbps(o.sent + o.received, xfer),
                    error: o.err.as_ref().map(|e| e.to_string()),
                };
                if cli.verbose {
                    eprintln!(
                        "conn {id}: {state}, connect {:.3} ms, first byte {}, {} B out, {} B in, {:.3} ms, {:.2} Mbps{}",
                        row.connection_latency_ms,
                        row.first_byte_ms.map_or("-".into(), |v| format!("{v:.3} ms")),
                        row.bytes_sent,
                        row.bytes_received,
                        row.transfer_time_ms,
                        row.throughput_mbps,
                        row.error.as_ref().map_or(String::new(), |e| format!(" ({e})")),
                    );
                }
                rows.lock().unwrap_or_else(|p| p.into_inner()).push(row);
            });
        }
    });
    let wall = start.elapsed();
    let mut rows = rows.into_inner().unwrap_or_else(|p| p.into_inner());
    rows.sort_by_key(|r| r.id);
    let mut s = summarize(cli, addr.to_string(), rows, wall, concurrency);
    if cli.rr.is_some() {
        let rr = rrs.into_inner().unwrap_or_else(|p| p.into_inner());
        let sum: f64 = rr.iter().sum();
        s.rr_per_second = Some(if sum > 0.0 {
            rr.len() as f64 * 1000.0 / sum
        } else {
            0.0
        });
        s.rr_ms = stats(rr);
    }
    Ok(s)
}

fn summarize(
    cli: &Cli,
    target: String,
    rows: Vec<ConnRow>,
    wall: Duration,
    concurrency: usize,
) -> Summary {
    let ok: Vec<&ConnRow> = rows.iter().filter(|r| r.state == "success").collect();
    let lat = stats(ok.iter().map(|r| r.connection_latency_ms).collect());
    let fb = stats(ok.iter().filter_map(|r| r.first_byte_ms).collect());
    let (cpu, peak) = rusage();
    let sent: u64 = rows.iter().map(|r| r.bytes_sent).sum();
    let received: u64 = rows.iter().map(|r| r.bytes_received).sum();
    let pick = |p: &Option<Percentiles>, f: fn(&Percentiles) -> f64| p.as_ref().map_or(0.0, f);
    Summary {
        tool: "tlshub-bench",
        mode: if cli.mode == Role::Server {
            "server"
        } else if cli.bulk.is_some() {
            "bulk"
        } else if cli.rr.is_some() {
            "rr"
        } else {
            "echo"
        },
        target,
        ktls: if cli.ktls_key.is_some() {
            "app"
        } else {
            "none"
        },
        data_size: cli.data_size,
        concurrency,
        total_connections: rows.len() as u64,
        successful_connections: ok.len() as u64,
        failed_connections: rows.iter().filter(|r| r.state == "failed").count() as u64,
        timeout_connections: rows.iter().filter(|r| r.state == "timeout").count() as u64,
        total_bytes_sent: sent,
        total_bytes_received: received,
        avg_connection_latency_ms: pick(&lat, |p| p.avg),
        min_connection_latency_ms: pick(&lat, |p| p.min),
        max_connection_latency_ms: pick(&lat, |p| p.max),
        p50_connection_latency_ms: pick(&lat, |p| p.p50),
        p99_connection_latency_ms: pick(&lat, |p| p.p99),
        avg_first_byte_ms: pick(&fb, |p| p.avg),
        p50_first_byte_ms: pick(&fb, |p| p.p50),
        p99_first_byte_ms: pick(&fb, |p| p.p99),
        max_first_byte_ms: pick(&fb, |p| p.max),
        avg_throughput_mbps: if ok.is_empty() {
            0.0
        } else {
            ok.iter().map(|r| r.throughput_mbps).sum::<f64>() / ok.len() as f64
        },
        aggregate_throughput_mbps: mbps(sent + received, wall),
        connections_per_second: ok.len() as f64 / wall.as_secs_f64().max(1e-9),
        total_duration_s: wall.as_secs_f64(),
        cpu_percent: cpu / wall.as_secs_f64().max(1e-9) * 100.0,
        peak_memory_mb: peak,
        connection_latency_ms: lat,
        first_byte_ms: fb,
        rr_ms: None,
        rr_per_second: None,
        connections: rows,
    }
}

// ---- server ----

fn serve_conn(cli: &Cli, s: TcpStream) -> io::Result<(u64, u64)> {
    s.set_nodelay(true)?;
    let timeout = Duration::from_secs(cli.timeout);
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    if let Some(key) = &cli.ktls_key {
        install_ktls(&s, key, false)?;
    }
    let mut s = s;
    let mut buf = vec![0u8; 64 * 1024];
    let (mut got, mut sent) = (0u64, 0u64);
    loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        got += n as u64;
        if !cli.sink {
            s.write_all(&buf[..n])?;
            sent += n as u64;
        }
    }
    if cli.sink {
        s.write_all(&got.to_be_bytes())?;
        sent += 8;
    }
    s.shutdown(Shutdown::Write)?;
    Ok((got, sent))
}

fn server(cli: &Cli) -> Result<Summary> {
    let l = TcpListener::bind(SocketAddr::new(IpAddr::from([0u16; 8]), cli.listen_port))
        .or_else(|_| TcpListener::bind(SocketAddr::new(IpAddr::from([0u8; 4]), cli.listen_port)))
        .with_context(|| format!("listen on port {}", cli.listen_port))?;
    println!(
        "tlshub-bench: listening on port {} ({}{})",
        cli.listen_port,
        if cli.sink { "sink" } else { "echo" },
        if cli.ktls_key.is_some() {
            ", app kTLS"
        } else {
            ""
        }
    );
    let rows = Mutex::new(Vec::new());
    let start = Instant::now();
    let limit = cli.total_connections.unwrap_or(u64::MAX);
    std::thread::scope(|sc| -> Result<()> {
        let mut id = 0u64;
        while id < limit {
            let (s, peer) = match l.accept() {
                Ok(x) => x,
                // A connection reset before accept() (e.g. a fail-closed
                // flow) is the client's failure, not the server's.
                Err(e) if e.raw_os_error() == Some(libc::ECONNABORTED) => {
                    eprintln!("tlshub-bench: accept: {e}");
                    continue;
                }
                Err(e) => return Err(e).context("accept"),
            };
            let rows = &rows;
            let this = id;
            id += 1;
            sc.spawn(move || {
                let t0 = Instant::now();
                let r = serve_conn(cli, s);
                let d = t0.elapsed();
                let (state, got, sent, error) = match r {
                    Ok((g, s)) => ("success", g, s, None),
                    Err(e) => (
                        if is_timeout(&e) { "timeout" } else { "failed" },
                        0,
                        0,
                        Some(e.to_string()),
                    ),
                };
                if cli.verbose || error.is_some() {
                    eprintln!(
                        "conn {this} from {peer}: {state}, {got} B in, {sent} B out{}",
                        error.as_ref().map_or(String::new(), |e| format!(" ({e})"))
                    );
                }
                rows.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(ConnRow {
                        id: this,
                        state,
                        bytes_sent: sent,
                        bytes_received: got,
                        connection_latency_ms: 0.0,
                        first_byte_ms: None,
                        transfer_time_ms: ms(d),
                        throughput_mbps: mbps(got + sent, d),
                        error,
                    });
            });
        }
        Ok(())
    })?;
    let mut rows = rows.into_inner().unwrap_or_else(|p| p.into_inner());
    rows.sort_by_key(|r| r.id);
    Ok(summarize(
        cli,
        format!("port {}", cli.listen_port),
        rows,
        start.elapsed(),
        0,
    ))
}

// ---- output ----

fn print_summary(s: &Summary) {
    println!("tlshub-bench {} -> {} (kTLS: {})", s.mode, s.target, s.ktls);
    println!(
        "  connections: {} total, {} ok, {} failed, {} timed out",
        s.total_connections, s.successful_connections, s.failed_connections, s.timeout_connections
    );
    println!(
        "  bytes: {} sent, {} received",
        s.total_bytes_sent, s.total_bytes_received
    );
    if s.connection_latency_ms.is_some() {
        println!(
            "  connection latency (ms): avg {:.3}, min {:.3}, p50 {:.3}, p99 {:.3}, max {:.3}",
            s.avg_connection_latency_ms,
            s.min_connection_latency_ms,
            s.p50_connection_latency_ms,
            s.p99_connection_latency_ms,
            s.max_connection_latency_ms
        );
    }
    if s.first_byte_ms.is_some() {
        println!(
            "  connect -> first byte (ms): avg {:.3}, p50 {:.3}, p99 {:.3}, max {:.3}",
            s.avg_first_byte_ms, s.p50_first_byte_ms, s.p99_first_byte_ms, s.max_first_byte_ms
        );
    }
    if let (Some(rr), Some(rate)) = (&s.rr_ms, s.rr_per_second) {
        println!(
            "  request/response (ms): avg {:.3}, p50 {:.3}, p99 {:.3}, max {:.3}; {:.1} RR/s",
            rr.avg, rr.p50, rr.p99, rr.max, rate
        );
    }
    println!(
        "  throughput: {:.2} Mbps per connection (avg), {:.2} Mbps aggregate, {:.1} conn/s",
        s.avg_throughput_mbps, s.aggregate_throughput_mbps, s.connections_per_second
    );
    println!(
        "  duration {:.3} s, CPU {:.1} %, peak memory {:.1} MB",
        s.total_duration_s, s.cpu_percent, s.peak_memory_mb
    );
}

fn write_csv(path: &PathBuf, rows: &[ConnRow]) -> Result<()> {
    let mut out = String::from(
        "id,state,bytes_sent,bytes_received,connection_latency_ms,first_byte_ms,transfer_time_ms,throughput_mbps\n",
    );
    for r in rows {
        out += &format!(
            "{},{},{},{},{:.3},{},{:.3},{:.3}\n",
            r.id,
            r.state,
            r.bytes_sent,
            r.bytes_received,
            r.connection_latency_ms,
            r.first_byte_ms.map_or(String::new(), |v| format!("{v:.3}")),
            r.transfer_time_ms,
            r.throughput_mbps
        );
    }
    std::fs::write(path, out).with_context(|| format!("write {}", path.display()))
}

fn run(cli: &Cli) -> Result<bool> {
    if cli.mode == Role::Server && cli.bulk.is_some() {
        bail!("--bulk is a client flag (the server side is --sink)");
    }
    if cli.mode == Role::Client && cli.sink {
        bail!("--sink is a server flag");
    }
    if cli.mode == Role::Server {
        // SAFETY: installs SIG_IGN, no handler code runs.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    }
    let s = match cli.mode {
        Role::Client => client(cli)?,
        Role::Server => server(cli)?,
    };
    print_summary(&s);
    if let Some(p) = &cli.json {
        let mut text = serde_json::to_string_pretty(&s)?;
        text.push('\n');
        std::fs::write(p, text).with_context(|| format!("write {}", p.display()))?;
    }
    if let Some(p) = &cli.csv {
        write_csv(p, &s.connections)?;
    }
    Ok(s.successful_connections == s.total_connections && s.total_connections > 0)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(e) => {
            eprintln!("tlshub-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse() {
        assert_eq!(
            parse_key("000102030405060708090a0b0c0d0e0f").unwrap()[15],
            15
        );
        assert_eq!(&parse_key("fixed").unwrap(), b"tlshub-bench-key");
        assert!(parse_key("0011").is_err());
        assert!(parse_key("zz0102030405060708090a0b0c0d0e0f").is_err());
    }

    #[test]
    fn crypto_info_layout_and_directions() {
        assert_eq!(std::mem::size_of::<CryptoInfoAesGcm128>(), 40);
        let k = [7u8; 16];
        let (c2s, s2c) = (crypto_info(&k, true), crypto_info(&k, false));
        assert_ne!(c2s.key, s2c.key);
        assert_ne!(c2s.salt, s2c.salt);
        assert_eq!(c2s.version, 0x0304);
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&[3.0], 99.0), 3.0);
    }

    /// A server (echo, or `--sink`) on a free loopback port for `n`
    /// connections: its port, and its thread (the count it served).
    fn loopback_server(n: u64, sink: bool) -> (String, std::thread::JoinHandle<u64>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port().to_string();
        drop(l);
        let n = n.to_string();
        let mut args = vec!["b", "--mode", "server", "--total-connections", &n];
        args.extend(["--listen-port", &port]);
        if sink {
            args.push("--sink");
        }
        let cli = Cli::parse_from(args);
        let t = std::thread::spawn(move || server(&cli).unwrap().successful_connections);
        (port, t)
    }

    /// A client of 127.0.0.1 with ARGS after `--target-port` (the port first).
    fn client_cli(args: &[&str]) -> Cli {
        let mut a = vec![
            "b",
            "--mode",
            "client",
            "--target-ip",
            "127.0.0.1",
            "--target-port",
        ];
        a.extend_from_slice(args);
        Cli::parse_from(a)
    }

    #[test]
    fn loopback_echo_and_bulk() {
        // An echo server and a sink on loopback; the client's rows add up.
        let ((ep, e), (sp, s)) = (loopback_server(3, false), loopback_server(3, true));
        std::thread::sleep(Duration::from_millis(200));
        let c = client_cli(&[
            &ep,
            "--data-size",
            "100000",
            "--concurrency",
            "2",
            "--total-connections",
            "3",
        ]);
        let r = client(&c).unwrap();
        assert_eq!(
            (
                r.successful_connections,
                r.total_bytes_sent,
                r.total_bytes_received
            ),
            (3, 300000, 300000)
        );
        assert!(r.p99_first_byte_ms >= r.p50_first_byte_ms && r.p50_first_byte_ms > 0.0);
        assert_eq!(e.join().unwrap(), 3);
        for _ in 0..3 {
            let c = client_cli(&[&sp, "--bulk", "2"]);
            let r = client(&c).unwrap();
            assert_eq!((r.successful_connections, r.total_bytes_sent), (1, 2 << 20));
            assert_eq!(r.mode, "bulk");
        }
        assert_eq!(s.join().unwrap(), 3);
    }

    #[test]
    fn loopback_rr_and_concurrent_bulk() {
        let ((ep, e), (sp, s)) = (loopback_server(1, false), loopback_server(4, true));
        std::thread::sleep(Duration::from_millis(200));
        let r = client(&client_cli(&[&ep, "--rr", "50", "--data-size", "64"])).unwrap();
        assert_eq!(r.mode, "rr");
        assert_eq!((r.successful_connections, r.total_bytes_sent), (1, 50 * 64));
        let rr = r.rr_ms.as_ref().unwrap();
        assert!(rr.p99 >= rr.p50 && rr.p50 > 0.0);
        assert!(r.rr_per_second.unwrap() > 0.0);
        assert_eq!(e.join().unwrap(), 1);
        let r = client(&client_cli(&[&sp, "--bulk", "1", "--concurrency", "4"])).unwrap();
        assert_eq!((r.successful_connections, r.total_bytes_sent), (4, 4 << 20));
        assert_eq!(s.join().unwrap(), 4);
    }
}
