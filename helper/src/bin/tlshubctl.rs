//! `tlshubctl`: configure and inspect the tlshub kernel module.
//!
//! Shaped after `wg` and `ip`: short verbs, a readable table by default and
//! JSON with `--json`, errors that name the file line, and nothing sent to
//! the kernel until every input has been validated.

use std::collections::BTreeMap;
use std::io::{self, BufWriter, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};
use serde::Serialize;
use tlshub::config::{
    check_local_nodes, check_pod_cidrs, check_service_cidrs, parse_key_timeout, DEFAULT_CONFIG_PATH,
};
use tlshub::mapping::{self, check_node_name, check_pod_name, SeedTable};
use tlshub::netlink::{schema, Client, Event, Flow, Peer, Trace};
use tlshub::{
    k8s, netns, uapi, CaptureConfig, Cidr, Cipher, Mode, NetlinkError, Netns, Node, Pod,
    PodNodeTable, Psk,
};

type Result<T = ()> = anyhow::Result<T>;

#[derive(Parser)]
#[command(
    name = "tlshubctl",
    version,
    about = "Configure and inspect the tlshub kernel module"
)]
struct Cli {
    /// Print every netlink message sent and received (also CAPTURE_DEBUG=1)
    #[arg(short, long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Inspect or change the pod-node mapping
    #[command(subcommand)]
    Mapping(MappingCommand),
    /// Get or set the key-provider mode
    #[command(subcommand)]
    Mode(ModeCommand),
    /// Show version, mode, mapping size and counters
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Load the mapping and set the mode (and the local nodes, cipher, key
    /// timeout, Service CIDRs, pod CIDRs and node-pair secrets, if given)
    /// named by a capture.conf
    Apply {
        #[arg(long, value_name = "FILE", default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
    },
    /// The nodes this kernel serves, and the secrets shared with peer nodes
    #[command(subcommand)]
    Node(NodeCommand),
    /// Get or set the kTLS cipher of new flows
    #[command(subcommand)]
    Cipher(CipherCommand),
    /// Get or set how long a flow may wait for its node-pair secret
    #[command(subcommand)]
    Timeout(TimeoutCommand),
    /// Get or set the Service CIDRs: connects from local pods to them are
    /// decided by where the node's NAT sends them
    #[command(subcommand)]
    ServiceCidr(ServiceCidrCommand),
    /// Get or set the pod CIDRs: an address in them that the mapping does
    /// not name is a pod not mapped yet
    #[command(subcommand)]
    PodCidr(PodCidrCommand),
    /// Show the flows the module tracks
    Flows {
        #[arg(long)]
        json: bool,
    },
    /// Print key-request and flow-key-request events, one per line, until
    /// killed (needs CAP_NET_ADMIN)
    Events,
    /// Stop securing and let go of every socket, so that `rmmod tlshub`
    /// can succeed: new pod-to-pod connections fail closed until the module
    /// is unloaded, flows not secured yet are reset, secured ones go on
    Drain,
}

#[derive(Subcommand)]
enum NodeCommand {
    /// Set the nodes this kernel serves; without NODE, print them
    Local {
        #[arg(value_name = "NODE")]
        nodes: Vec<String>,
        /// Serve no node
        #[arg(long, conflicts_with = "nodes")]
        clear: bool,
        /// Print them as JSON
        #[arg(long, conflicts_with_all = ["nodes", "clear"])]
        json: bool,
    },
    /// Set the secret shared with peer node NODE, read from FILE (32 raw
    /// bytes, or base64 as `wg genpsk` writes; - reads stdin)
    Set {
        node: String,
        kind: SecretKind,
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Epoch of the secret (default: the next one)
        #[arg(long, value_name = "N")]
        epoch: Option<u64>,
        /// The secret expires this many seconds after it is set (default:
        /// never); then new flows to NODE wait and a key request goes out
        #[arg(long, value_name = "SECONDS", value_parser = parse_lifetime)]
        lifetime: Option<Duration>,
        /// The secret of the node pair {LOCAL, NODE} only (LOCAL: a node
        /// this kernel serves); without it, NODE's secret for every local
        /// node that has no pair secret with NODE
        #[arg(long, value_name = "LOCAL")]
        local: Option<String>,
    },
    /// Forget the secret shared with peer node NODE (with --local, the
    /// pair {LOCAL, NODE}'s)
    Del {
        node: String,
        #[arg(long, value_name = "LOCAL")]
        local: Option<String>,
    },
    /// Report that no secret can be had for peer node NODE (a failed
    /// handshake): flows waiting for it are reset at once, its secret is
    /// dropped, and MESSAGE is shown by `node show` (with --local: for the
    /// pair {LOCAL, NODE})
    Fail {
        node: String,
        #[arg(value_name = "MESSAGE")]
        message: String,
        #[arg(long, value_name = "LOCAL")]
        local: Option<String>,
    },
    /// Show peer nodes (a node pair's own secret as LOCAL+NODE): state,
    /// secret epoch ("-": none), age and expiry, flows waiting, last error
    Show {
        #[arg(long)]
        json: bool,
    },
}

/// `--lifetime SECONDS`: a positive number of seconds (fractions allowed),
/// at most what the kernel takes (u32 milliseconds, about 49 days).
fn parse_lifetime(s: &str) -> std::result::Result<Duration, String> {
    let max = Duration::from_millis(u64::from(u32::MAX));
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("'{s}' is not a number of seconds"))?;
    if !secs.is_finite() || secs <= 0.0 {
        return Err(format!("'{s}': a lifetime must be more than 0 seconds"));
    }
    let d = Duration::try_from_secs_f64(secs).map_err(|e| format!("'{s}': {e}"))?;
    if d < Duration::from_millis(1) {
        return Err(format!("'{s}': a lifetime must be at least 1 ms"));
    }
    if d > max {
        return Err(format!("'{s}': at most {} seconds", max.as_millis() / 1000));
    }
    Ok(d)
}

/// What `node set` sets.
#[derive(Clone, Copy, ValueEnum)]
enum SecretKind {
    /// A node-pair pre-shared key
    Psk,
}

#[derive(Subcommand)]
enum CipherCommand {
    /// Print the cipher of new flows
    Get {
        #[arg(long)]
        json: bool,
    },
    /// Set the cipher of new flows
    Set {
        #[arg(value_parser = parse_cipher, value_name = "aes-128-gcm|aes-256-gcm|chacha20-poly1305")]
        cipher: Cipher,
    },
}

#[derive(Subcommand)]
enum TimeoutCommand {
    /// Print the key timeout in milliseconds
    Get {
        #[arg(long)]
        json: bool,
    },
    /// Set the key timeout in milliseconds (100 to 600000)
    Set {
        #[arg(value_parser = parse_timeout, value_name = "MS")]
        ms: u32,
    },
}

#[derive(Subcommand)]
enum ServiceCidrCommand {
    /// Print the Service CIDRs, one per line
    Get {
        #[arg(long)]
        json: bool,
    },
    /// Replace the Service CIDRs (at most 16, IPv4 and/or IPv6, no host
    /// bits set); without CIDR, clear them
    Set {
        #[arg(value_name = "CIDR")]
        cidrs: Vec<String>,
    },
}

#[derive(Subcommand)]
enum PodCidrCommand {
    /// Print the pod CIDRs, one per line
    Get {
        #[arg(long)]
        json: bool,
    },
    /// Replace the pod CIDRs (at most 16, IPv4 and/or IPv6, no host bits
    /// set); without CIDR, clear them
    Set {
        #[arg(value_name = "CIDR")]
        cidrs: Vec<String>,
    },
}

fn parse_cipher(s: &str) -> std::result::Result<Cipher, String> {
    s.parse().map_err(|e: tlshub::UnknownCipher| e.to_string())
}

fn parse_timeout(s: &str) -> std::result::Result<u32, String> {
    parse_key_timeout(s).map_err(|e| e.to_string())
}

#[derive(Subcommand)]
enum MappingCommand {
    /// Replace the kernel's mapping with the contents of FILE
    Load { file: PathBuf },
    /// Validate FILE and print it as a table, without touching the kernel
    Check {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Print the kernel's mapping
    Show {
        #[arg(long)]
        json: bool,
    },
    /// Print the node of a pod, given its name or one of its IPs
    Lookup {
        #[arg(value_name = "POD|IP")]
        key: String,
        #[arg(long)]
        json: bool,
    },
    /// Add or update one pod (NAMESPACE/NAME or NAME; "hostNetwork" after
    /// the IPs marks a pod that shares its node's network, "netns=PATH" or
    /// "netns-cookie=N" binds it to its network namespace)
    Add {
        pod: String,
        node: String,
        #[arg(value_name = "IP|hostNetwork|netns=PATH|netns-cookie=N")]
        ips: Vec<String>,
    },
    /// Add or update one node and where its agent listens
    AddNode {
        node: String,
        #[arg(value_name = "ADDR[:PORT]")]
        addr: Option<String>,
    },
    /// Delete one pod
    Del { pod: String },
    /// Delete one node that no pod uses
    DelNode { node: String },
    /// Print a mapping file for a cluster, from `kubectl get pods -A -o json`
    /// (and `kubectl get nodes -o json` for the nodes' addresses)
    FromK8s {
        #[arg(value_name = "PODS.json")]
        pods: PathBuf,
        #[arg(long, value_name = "NODES.json")]
        nodes: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ModeCommand {
    /// Print the current mode
    Get {
        #[arg(long)]
        json: bool,
    },
    /// Switch the key provider
    Set { mode: ModeArg },
}

#[derive(Clone, Copy, ValueEnum)]
enum ModeArg {
    Tlshub,
    Openssl,
    Boringssl,
}

impl From<ModeArg> for Mode {
    fn from(m: ModeArg) -> Mode {
        match m {
            ModeArg::Tlshub => Mode::Tlshub,
            ModeArg::Openssl => Mode::Openssl,
            ModeArg::Boringssl => Mode::Boringssl,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let verbose =
        cli.verbose || std::env::var("CAPTURE_DEBUG").is_ok_and(|v| !v.is_empty() && v != "0");
    match run(cli.command, verbose) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tlshubctl: {}", explain(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error message (with its context), and a hint where the usual cause is
/// known: operations flagged admin-perm in the spec need `CAP_NET_ADMIN`.
fn explain(e: &anyhow::Error) -> String {
    let kernel = match e.downcast_ref::<NetlinkError>() {
        Some(NetlinkError::Kernel(k)) => k,
        Some(NetlinkError::Join { source, .. })
            if matches!(source.raw_os_error(), Some(libc::EPERM | libc::EACCES)) =>
        {
            return format!("{e:#} (needs CAP_NET_ADMIN; run as root)");
        }
        _ => return format!("{e:#}"),
    };
    let admin_op = kernel
        .op
        .and_then(|name| schema::OPS.iter().find(|op| op.name == name && op.admin));
    match (kernel.errno, admin_op) {
        (libc::EPERM | libc::EACCES, Some(op)) => {
            format!("{e:#} ({} needs CAP_NET_ADMIN; run as root)", op.name)
        }
        _ => format!("{e:#}"),
    }
}

fn connect(verbose: bool) -> std::result::Result<Client, NetlinkError> {
    let trace: Option<Trace> =
        verbose.then(|| Box::new(|line: &str| eprintln!("tlshubctl: {line}")) as Trace);
    Client::connect_with_trace(trace)
}

fn run(command: Command, verbose: bool) -> Result {
    match command {
        Command::Mapping(m) => mapping(m, verbose),
        Command::Mode(ModeCommand::Get { json }) => {
            let mode = connect(verbose)?.mode_get()?;
            #[derive(Serialize)]
            struct Out {
                mode: Mode,
            }
            output(json, &Out { mode }, |w| writeln!(w, "{mode}"))
        }
        Command::Mode(ModeCommand::Set { mode }) => Ok(connect(verbose)?.mode_set(mode.into())?),
        Command::Status { json } => {
            let s = connect(verbose)?.status()?;
            output(json, &s, |w| {
                writeln!(w, "version: {}", s.version)?;
                writeln!(w, "mode: {}", s.mode)?;
                writeln!(w, "pods: {}", s.pods)?;
                writeln!(w, "nodes: {}", s.nodes)?;
                writeln!(w, "generation: {}", s.generation)?;
                for (name, value) in s.stats.counters() {
                    writeln!(w, "{name}: {value}")?;
                }
                writeln!(w, "cipher: {}", or_dash(s.cipher))?;
                writeln!(w, "key-timeout-ms: {}", or_dash(s.key_timeout_ms))?;
                let local = match s.local_nodes.is_empty() {
                    true => "-".to_owned(),
                    false => s.local_nodes.join(" "),
                };
                writeln!(w, "local-nodes: {local}")
            })
        }
        Command::Apply { config } => apply(&config, verbose),
        Command::Node(n) => node(n, verbose),
        Command::Cipher(CipherCommand::Get { json }) => {
            let cipher = connect(verbose)?.config_get()?.cipher;
            #[derive(Serialize)]
            struct Out {
                cipher: Cipher,
            }
            output(json, &Out { cipher }, |w| writeln!(w, "{cipher}"))
        }
        Command::Cipher(CipherCommand::Set { cipher }) => {
            Ok(connect(verbose)?.config_set(Some(cipher), None)?)
        }
        Command::Timeout(TimeoutCommand::Get { json }) => {
            let key_timeout_ms = connect(verbose)?.config_get()?.key_timeout_ms;
            #[derive(Serialize)]
            struct Out {
                key_timeout_ms: u32,
            }
            output(json, &Out { key_timeout_ms }, |w| {
                writeln!(w, "{key_timeout_ms}")
            })
        }
        Command::Timeout(TimeoutCommand::Set { ms }) => {
            Ok(connect(verbose)?.config_set(None, Some(ms))?)
        }
        Command::ServiceCidr(ServiceCidrCommand::Get { json }) => output_cidrs(
            json,
            "service_cidrs",
            &connect(verbose)?.service_cidrs_get()?,
        ),
        Command::ServiceCidr(ServiceCidrCommand::Set { cidrs }) => {
            let cidrs = check_service_cidrs(&cidrs)?;
            Ok(connect(verbose)?.service_cidrs_set(&cidrs)?)
        }
        Command::PodCidr(PodCidrCommand::Get { json }) => {
            output_cidrs(json, "pod_cidrs", &connect(verbose)?.pod_cidrs_get()?)
        }
        Command::PodCidr(PodCidrCommand::Set { cidrs }) => {
            let cidrs = check_pod_cidrs(&cidrs)?;
            Ok(connect(verbose)?.pod_cidrs_set(&cidrs)?)
        }
        Command::Drain => Ok(connect(verbose)?.drain()?),
        Command::Flows { json } => {
            let flows = connect(verbose)?.flows()?;
            output(json, &flows, |w| write_flows(w, &flows))
        }
        Command::Events => events(verbose),
    }
}

/// `apply`: everything in the config (the file itself, the mapping, every
/// secret file) is read and validated before the first request is sent.
/// Then: mapping, mode, cipher and key timeout, secrets, Service CIDRs, pod
/// CIDRs, local nodes; each optional setting only if the file has it.
fn apply(path: &Path, verbose: bool) -> Result {
    let config = CaptureConfig::from_file(path)?;
    let mut table = PodNodeTable::from_file(&config.pod_node_config)?;
    let psks = config.read_psks()?;
    let mut client = connect(verbose);
    // The local nodes this apply sets are the ones whose pods are bound to
    // their network namespaces; without them, the kernel's.
    let local = match &config.local_nodes {
        Some(nodes) => Some(nodes.clone()),
        None => local_nodes_of(&mut client),
    };
    bind_netns(&mut table, local.as_deref(), verbose)?;
    let mut client = client?;
    load(&mut client, &table, &config.pod_node_config)?;
    client.mode_set(config.mode)?;
    println!("Mode set to {}", config.mode);
    if config.cipher.is_some() || config.key_timeout_ms.is_some() {
        client.config_set(config.cipher, config.key_timeout_ms)?;
        if let Some(cipher) = config.cipher {
            println!("Cipher set to {cipher}");
        }
        if let Some(ms) = config.key_timeout_ms {
            println!("Key timeout set to {ms} ms");
        }
    }
    // Secrets before local nodes: flows of a newly served node find their
    // secrets in place instead of waiting for them.
    for (node, psk) in &psks {
        let epoch = client.peer_set(node, psk, None)?;
        println!("Secret for node {node} set (epoch {epoch})");
    }
    if let Some(cidrs) = &config.service_cidrs {
        client.service_cidrs_set(cidrs)?;
        let shown: Vec<String> = cidrs.iter().map(Cidr::to_string).collect();
        println!("Service CIDRs set to {}", shown.join(" "));
    }
    if let Some(cidrs) = &config.pod_cidrs {
        client.pod_cidrs_set(cidrs)?;
        let shown: Vec<String> = cidrs.iter().map(Cidr::to_string).collect();
        println!("Pod CIDRs set to {}", shown.join(" "));
    }
    if let Some(nodes) = &config.local_nodes {
        client.local_nodes_set(nodes)?;
        println!("Local nodes set to {}", nodes.join(" "));
    }
    Ok(())
}

fn node(command: NodeCommand, verbose: bool) -> Result {
    match command {
        NodeCommand::Local {
            nodes,
            clear: false,
            json,
        } if nodes.is_empty() => {
            let nodes = connect(verbose)?.local_nodes_get()?;
            #[derive(Serialize)]
            struct Out<'a> {
                local_nodes: &'a [String],
            }
            output(
                json,
                &Out {
                    local_nodes: &nodes,
                },
                |w| nodes.iter().try_for_each(|n| writeln!(w, "{n}")),
            )
        }
        NodeCommand::Local { nodes, .. } => {
            // `--clear` conflicts with NODE arguments: nodes is empty then.
            check_local_nodes(&nodes)?;
            Ok(connect(verbose)?.local_nodes_set(&nodes)?)
        }
        NodeCommand::Set {
            node,
            kind: SecretKind::Psk,
            file,
            epoch,
            lifetime,
            local,
        } => {
            check_pair(&node, local.as_deref())?;
            let psk = Psk::from_arg(&file)?;
            let epoch =
                connect(verbose)?.peer_set_pair(&node, local.as_deref(), &psk, epoch, lifetime)?;
            let shown = match &local {
                Some(l) => format!("{l}+{node}"),
                None => node.clone(),
            };
            match lifetime {
                Some(l) => println!("{shown} epoch {epoch} lifetime {}", secs(l)),
                None => println!("{shown} epoch {epoch}"),
            }
            Ok(())
        }
        NodeCommand::Del { node, local } => {
            check_pair(&node, local.as_deref())?;
            Ok(connect(verbose)?.peer_del_pair(&node, local.as_deref())?)
        }
        NodeCommand::Fail {
            node,
            message,
            local,
        } => {
            check_pair(&node, local.as_deref())?;
            check_error_message(&message)?;
            Ok(connect(verbose)?.peer_fail_pair(&node, local.as_deref(), &message)?)
        }
        NodeCommand::Show { json } => {
            let peers = connect(verbose)?.peers()?;
            output(json, &peers, |w| write_peers(w, &peers))
        }
    }
}

/// NODE and, with --local, LOCAL: valid node names, and two of them.
fn check_pair(node: &str, local: Option<&str>) -> Result {
    check_node_name(node)?;
    if let Some(l) = local {
        check_node_name(l)?;
        if l == node {
            bail!("--local {l}: a node pair needs two different nodes");
        }
    }
    Ok(())
}

/// A `node fail` message: not empty, no NUL, at most the spec's
/// `error-max-len` bytes (checked before anything is sent).
fn check_error_message(message: &str) -> Result {
    if message.is_empty() {
        bail!("MESSAGE is empty");
    }
    if message.contains('\0') {
        bail!("MESSAGE contains a NUL byte");
    }
    if message.len() > uapi::ERROR_MAX_LEN {
        bail!(
            "MESSAGE is {} bytes long, at most {} are allowed",
            message.len(),
            uapi::ERROR_MAX_LEN
        );
    }
    Ok(())
}

/// `events`: joins the `keys` group and prints each key request and flow
/// key request as it comes, one flushed line each ([`event_line`]). Lost
/// events (the socket buffer overflowed) and malformed ones are reported on
/// stderr and the loop goes on: the kernel repeats a key request after its
/// timeout.
fn events(verbose: bool) -> Result {
    let mut client = connect(verbose)?;
    client.subscribe(uapi::MCGRP_KEYS)?;
    let stdout = io::stdout();
    loop {
        let event = match client.next_event() {
            Ok(event) => event,
            Err(e @ (NetlinkError::EventsLost | NetlinkError::Protocol(_))) => {
                eprintln!("tlshubctl: warning: {e}");
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let mut w = stdout.lock();
        let written = writeln!(w, "{}", event_line(&event)).and_then(|()| w.flush());
        match written {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
            other => other?,
        }
    }
}

/// One `events` line: `key-request node=PEER local=LOCAL`, or
/// `flow-key-request role=ROLE mode=MODE local=IP:PORT remote=IP:PORT
/// local-pod=POD remote-pod=POD peer=NODE client-isn=N server-isn=N` (`-`
/// for what the module did not report). Text from the kernel has its
/// control characters escaped.
fn event_line(event: &Event) -> String {
    match event {
        Event::KeyRequest(e) => format!(
            "key-request node={} local={}",
            printable(&e.node),
            printable(&e.local_node)
        ),
        Event::FlowKeyRequest(e) => {
            let text = |v: &Option<String>| v.as_deref().map_or_else(|| "-".to_owned(), printable);
            format!(
                "flow-key-request role={} mode={} local={} remote={} local-pod={} \
                 remote-pod={} peer={} client-isn={} server-isn={}",
                e.role,
                e.mode,
                e.local,
                e.remote,
                text(&e.local_pod),
                text(&e.remote_pod),
                text(&e.peer_node),
                e.client_isn,
                e.server_isn
            )
        }
    }
}

/// `-` for what the module did not report.
fn or_dash<T: std::fmt::Display>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// Writes `rows` under `header`, each column as wide as its widest cell and
/// two blanks apart; the last column is not padded.
fn write_table<const N: usize>(
    w: &mut dyn Write,
    header: [&str; N],
    rows: &[[String; N]],
) -> io::Result<()> {
    let mut widths = header.map(str::len);
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let line = |w: &mut dyn Write, cells: [&str; N]| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == N {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        writeln!(w, "{}", text.trim_end())
    };
    line(w, header)?;
    for row in rows {
        line(w, std::array::from_fn(|i| row[i].as_str()))?;
    }
    Ok(())
}

/// `node show`: one row per peer; the error text (whatever the key
/// provider reported) with control characters escaped.
fn write_peers(w: &mut dyn Write, peers: &[Peer]) -> io::Result<()> {
    let rows: Vec<[String; 7]> = peers
        .iter()
        .map(|p| {
            let error = match (&p.error, p.error_age_ms) {
                (Some(e), Some(ms)) => format!("{} ({} ago)", printable(e), age(Some(ms))),
                (Some(e), None) => printable(e),
                (None, _) => "-".to_owned(),
            };
            [
                // A node pair's own secret: LOCAL+PEER (names have no '+').
                match &p.local {
                    Some(l) => format!("{l}+{}", p.name),
                    None => p.name.clone(),
                },
                p.state.to_string(),
                or_dash(p.epoch),
                age(p.age_ms),
                age(p.expires_ms),
                p.pending.to_string(),
                error,
            ]
        })
        .collect();
    write_table(
        w,
        [
            "NODE", "STATE", "EPOCH", "AGE", "EXPIRES", "PENDING", "ERROR",
        ],
        &rows,
    )
}

/// `text` with control characters escaped (`\n`, `\u{1b}`).
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| match c.is_control() {
            true => c.escape_default().to_string(),
            false => c.to_string(),
        })
        .collect()
}

/// A duration as seconds with milliseconds.
fn secs(d: Duration) -> String {
    age(Some(d.as_millis().try_into().unwrap_or(u64::MAX)))
}

/// `ip:port`, or `[ip]:port` for IPv6.
fn endpoint(ip: IpAddr, port: u16) -> String {
    std::net::SocketAddr::new(ip, port).to_string()
}

/// A flow's age: seconds with milliseconds.
fn age(ms: Option<u64>) -> String {
    ms.map_or_else(
        || "-".to_owned(),
        |ms| format!("{}.{:03}s", ms / 1000, ms % 1000),
    )
}

/// `flows`: one row per flow.
fn write_flows(w: &mut dyn Write, flows: &[Flow]) -> io::Result<()> {
    let rows: Vec<[String; 9]> = flows
        .iter()
        .map(|f| {
            [
                f.role.to_owned(),
                f.state.to_owned(),
                endpoint(f.local_ip, f.local_port),
                endpoint(f.remote_ip, f.remote_port),
                or_dash(f.local_pod.as_deref()),
                or_dash(f.remote_pod.as_deref()),
                or_dash(f.peer_node.as_deref()),
                or_dash(f.cipher),
                age(f.age_ms),
            ]
        })
        .collect();
    let header = [
        "ROLE",
        "STATE",
        "LOCAL",
        "REMOTE",
        "LOCAL-POD",
        "REMOTE-POD",
        "PEER-NODE",
        "CIPHER",
        "AGE",
    ];
    write_table(w, header, &rows)
}

fn mapping(command: MappingCommand, verbose: bool) -> Result {
    match command {
        MappingCommand::Load { file } => {
            let mut table = PodNodeTable::from_file(&file)?;
            if verbose {
                eprintln!(
                    "tlshubctl: parsed {} pods and {} nodes from {}",
                    table.len(),
                    table.nodes().len(),
                    file.display()
                );
            }
            let mut client = connect(verbose);
            let local = local_nodes_of(&mut client);
            bind_netns(&mut table, local.as_deref(), verbose)?;
            load(&mut client?, &table, &file)
        }
        MappingCommand::Check { file, json } => {
            let table = PodNodeTable::from_file(&file)?;
            #[derive(Serialize)]
            struct Out<'a> {
                nodes: &'a [Node],
                pods: &'a [Pod],
            }
            let out = Out {
                nodes: table.nodes(),
                pods: table.pods(),
            };
            output(json, &out, |w| write!(w, "{table}"))
        }
        MappingCommand::Show { json } => {
            let dump = connect(verbose)?.map_dump()?;
            output(json, &dump, |w| write!(w, "{}", SeedTable(&dump.pods)))
        }
        MappingCommand::Lookup { key, json } => {
            let ip = key.parse::<IpAddr>().ok();
            if ip.is_none() {
                check_pod_name(&key)?;
            }
            let mut client = connect(verbose)?;
            let found = match ip {
                Some(ip) => client.map_get_by_ip(ip)?,
                None => client.map_get_by_name(&key)?,
            };
            let Some(found) = found else {
                bail!("pod not found")
            };
            output(json, &found, |w| {
                write!(w, "{}", found.pod.node)?;
                if found.pod.host_network {
                    write!(w, " hostNetwork")?;
                }
                if let Some(netns) = &found.pod.netns {
                    write!(w, " {netns}")?;
                }
                writeln!(w)
            })
        }
        MappingCommand::Add { pod, node, ips } => {
            let mut pod = Pod::from_columns(&pod, &node, &ips)?;
            let mut client = connect(verbose);
            if let Some(Netns::Path(path)) = &pod.netns {
                let local = local_nodes_of(&mut client);
                if local.is_none_or(|l| l.contains(&pod.node)) {
                    let cookie = netns::cookie_of(path).with_context(|| {
                        format!(
                            "{}{}: cannot resolve the network namespace",
                            mapping::NETNS_PATH,
                            path.display()
                        )
                    })?;
                    pod.netns = Some(Netns::Cookie(cookie)).filter(|_| cookie != 0);
                } else {
                    eprintln!(
                        "tlshubctl: note: this kernel does not serve node {}: \
                         pod {} is not bound to a network namespace",
                        pod.node, pod.name
                    );
                    pod.netns = None;
                }
            }
            Ok(client?.map_add(Some(&pod), None)?)
        }
        MappingCommand::AddNode { node, addr } => {
            let node = Node::parse(&node, addr.as_deref())?;
            Ok(connect(verbose)?.map_add(None, Some(&node))?)
        }
        MappingCommand::Del { pod } => {
            check_pod_name(&pod)?;
            Ok(connect(verbose)?.map_del_pod(&pod)?)
        }
        MappingCommand::DelNode { node } => {
            check_node_name(&node)?;
            Ok(connect(verbose)?.map_del_node(&node)?)
        }
        MappingCommand::FromK8s { pods, nodes } => from_k8s(&pods, nodes.as_deref()),
    }
}

/// `mapping from-k8s`: the converted mapping on stdout, after a comment
/// saying where it came from and what was left out.
fn from_k8s(pods: &Path, nodes: Option<&Path>) -> Result {
    let read =
        |path: &Path| std::fs::read_to_string(path).with_context(|| format!("{}", path.display()));
    let pods_json = read(pods)?;
    let nodes_json = nodes.map(read).transpose()?;
    let c = k8s::convert(&pods_json, nodes_json.as_deref()).with_context(|| {
        let nodes = nodes.map(|n| format!(" and {}", n.display()));
        format!("{}{}", pods.display(), nodes.unwrap_or_default())
    })?;
    let host = c.table.pods().iter().filter(|p| p.host_network).count();
    let header = format!(
        "# tlshubctl mapping from-k8s: {} pods ({host} hostNetwork), {} nodes; \
         skipped {} unscheduled, {} finished\n",
        c.table.len(),
        c.table.nodes().len(),
        c.unscheduled.len(),
        c.finished.len(),
    );
    output(false, &(), |w| {
        w.write_all(header.as_bytes())?;
        let mut conf = Vec::new();
        c.table.write_conf(&mut conf)?;
        w.write_all(&conf)
    })
}

/// The nodes the kernel serves (`node-local-get`); `None` when that cannot
/// be had (no module, no connection): then every pod counts as local.
fn local_nodes_of(client: &mut std::result::Result<Client, NetlinkError>) -> Option<Vec<String>> {
    client.as_mut().ok()?.local_nodes_get().ok()
}

/// Resolves the `netns=PATH` of the pods of the `local` nodes to their
/// cookies (all pods if `local` is `None`); other pods are left unbound.
/// Before anything is sent: an unresolvable path fails the whole load.
fn bind_netns(table: &mut PodNodeTable, local: Option<&[String]>, verbose: bool) -> Result {
    let bound = table.bind_netns(local)?;
    if verbose {
        let scope = match local {
            Some(nodes) => format!("local nodes: {}", nodes.join(" ")),
            None => "local nodes unknown: all pods".to_owned(),
        };
        eprintln!("tlshubctl: {bound} pods bound to their network namespaces ({scope})");
    }
    Ok(())
}

/// Replaces the kernel's table and reports it like the seed did.
fn load(client: &mut Client, table: &PodNodeTable, file: &Path) -> Result {
    let commit = client.replace(table)?;
    if commit.pods as usize != table.len() {
        eprintln!(
            "tlshubctl: warning: kernel holds {} pods after loading {}",
            commit.pods,
            table.len()
        );
    }
    println!(
        "Loaded {} pod-node mappings from {}",
        table.len(),
        file.display()
    );
    Ok(())
}

/// `service-cidr get`, `pod-cidr get`: one CIDR a line, or with `--json`
/// an object whose one member `key` is the list.
fn output_cidrs(json: bool, key: &str, cidrs: &[Cidr]) -> Result {
    output(json, &BTreeMap::from([(key, cidrs)]), |w| {
        cidrs.iter().try_for_each(|c| writeln!(w, "{c}"))
    })
}

/// Writes `value` as JSON or through `text`, buffered (a dump can have 100k
/// rows), and treats a closed pipe (`| head`) as success.
fn output<T: Serialize>(
    json: bool,
    value: &T,
    text: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result {
    let stdout = io::stdout();
    let mut w = BufWriter::new(stdout.lock());
    let written = if json {
        serde_json::to_writer_pretty(&mut w, value)
            .map_err(io::Error::from)
            .and_then(|()| writeln!(w))
    } else {
        text(&mut w)
    }
    .and_then(|()| w.flush());
    match written {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tlshub::netlink::PeerState;

    fn text(f: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> String {
        let mut out = Vec::new();
        f(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn flows() -> Vec<Flow> {
        vec![
            Flow {
                role: "client",
                state: "secured",
                local_ip: "10.1.0.5".parse().unwrap(),
                local_port: 40000,
                remote_ip: "10.2.0.7".parse().unwrap(),
                remote_port: 80,
                local_pod: Some("ns/a".into()),
                remote_pod: Some("ns/b".into()),
                peer_node: Some("node-2".into()),
                cipher: Some(Cipher::Aes128Gcm),
                age_ms: Some(61_005),
                mode: Some(Mode::Tlshub),
            },
            Flow {
                role: "server",
                state: "key-wait",
                local_ip: "fd00::5".parse().unwrap(),
                local_port: 443,
                remote_ip: "fd00::2:7".parse().unwrap(),
                remote_port: 51000,
                local_pod: None,
                remote_pod: None,
                peer_node: None,
                cipher: None,
                age_ms: Some(7),
                mode: None,
            },
        ]
    }

    #[test]
    fn flows_table() {
        assert_eq!(
            text(|w| write_flows(w, &flows())),
            "\
ROLE    STATE     LOCAL           REMOTE             LOCAL-POD  REMOTE-POD  PEER-NODE  CIPHER       AGE
client  secured   10.1.0.5:40000  10.2.0.7:80        ns/a       ns/b        node-2     aes-128-gcm  61.005s
server  key-wait  [fd00::5]:443   [fd00::2:7]:51000  -          -           -          -            0.007s
"
        );
        assert_eq!(
            text(|w| write_flows(w, &[])),
            "ROLE  STATE  LOCAL  REMOTE  LOCAL-POD  REMOTE-POD  PEER-NODE  CIPHER  AGE\n"
        );
    }

    #[test]
    fn flows_json_fields() {
        let json = serde_json::to_value(flows()).unwrap();
        assert_eq!(
            json[0],
            serde_json::json!({
                "role": "client", "state": "secured",
                "local_ip": "10.1.0.5", "local_port": 40000,
                "remote_ip": "10.2.0.7", "remote_port": 80,
                "local_pod": "ns/a", "remote_pod": "ns/b", "peer_node": "node-2",
                "cipher": "aes-128-gcm", "age_ms": 61005, "mode": "tlshub"
            })
        );
        assert_eq!(json[1]["local_ip"], "fd00::5");
        assert_eq!(json[1]["cipher"], serde_json::Value::Null);
    }

    #[test]
    fn peers_table_and_json() {
        let peers = vec![
            Peer {
                name: "node-2".into(),
                local: None,
                last_epoch: None,
                state: PeerState::Established,
                epoch: Some(3),
                pending: 0,
                age_ms: Some(1500),
                expires_ms: Some(58_500),
                error: None,
                error_age_ms: None,
            },
            Peer {
                name: "node-10.example".into(),
                local: None,
                last_epoch: None,
                state: PeerState::Failed,
                epoch: None,
                pending: 12,
                age_ms: None,
                expires_ms: None,
                error: Some("handshake: bad\ncert".into()),
                error_age_ms: Some(2_003),
            },
            Peer {
                name: "n2".into(),
                local: Some("n1".into()),
                last_epoch: Some(1),
                state: PeerState::Established,
                epoch: Some(1),
                pending: 0,
                age_ms: Some(10),
                expires_ms: None,
                error: None,
                error_age_ms: None,
            },
        ];
        assert_eq!(
            text(|w| write_peers(w, &peers)),
            "\
NODE             STATE        EPOCH  AGE     EXPIRES  PENDING  ERROR
node-2           established  3      1.500s  58.500s  0        -
node-10.example  failed       -      -       -        12       handshake: bad\\ncert (2.003s ago)
n1+n2            established  1      0.010s  -        0        -
"
        );
        assert_eq!(
            serde_json::to_value(&peers).unwrap(),
            serde_json::json!([
                {"name": "node-2", "local": null, "last_epoch": null, "state": "established", "epoch": 3,
                 "pending": 0, "age_ms": 1500, "expires_ms": 58500, "error": null,
                 "error_age_ms": null},
                {"name": "node-10.example", "local": null, "last_epoch": null, "state": "failed", "epoch": null,
                 "pending": 12, "age_ms": null, "expires_ms": null,
                 "error": "handshake: bad\ncert", "error_age_ms": 2003},
                {"name": "n2", "local": "n1", "last_epoch": 1, "state": "established", "epoch": 1, "pending": 0,
                 "age_ms": 10, "expires_ms": null, "error": null, "error_age_ms": null}
            ])
        );
    }

    #[test]
    fn event_lines() {
        use tlshub::netlink::{FlowKeyRequest, KeyRequest, Role};
        assert_eq!(
            event_line(&Event::KeyRequest(KeyRequest {
                node: "node-2".into(),
                local_node: "node-1".into()
            })),
            "key-request node=node-2 local=node-1"
        );
        let mut req = FlowKeyRequest {
            role: Role::Client,
            mode: Mode::Openssl,
            local: "10.1.0.5:40000".parse().unwrap(),
            remote: "10.2.0.7:8080".parse().unwrap(),
            local_pod: Some("ns/a".into()),
            remote_pod: Some("ns/b".into()),
            peer_node: Some("node-2".into()),
            cipher: Some(Cipher::Aes128Gcm),
            client_isn: 3_735_928_559,
            server_isn: 7,
        };
        assert_eq!(
            event_line(&Event::FlowKeyRequest(req.clone())),
            "flow-key-request role=client mode=openssl local=10.1.0.5:40000 \
             remote=10.2.0.7:8080 local-pod=ns/a remote-pod=ns/b peer=node-2 \
             client-isn=3735928559 server-isn=7"
        );
        req.role = Role::Server;
        req.mode = Mode::Boringssl;
        req.local = "[fd00::5]:443".parse().unwrap();
        req.remote = "[fd00::2:7]:51000".parse().unwrap();
        req.local_pod = None;
        req.remote_pod = None;
        req.peer_node = None;
        assert_eq!(
            event_line(&Event::FlowKeyRequest(req)),
            "flow-key-request role=server mode=boringssl local=[fd00::5]:443 \
             remote=[fd00::2:7]:51000 local-pod=- remote-pod=- peer=- \
             client-isn=3735928559 server-isn=7"
        );
    }

    #[test]
    fn lifetime_and_message_checks() {
        assert_eq!(parse_lifetime("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_lifetime("0.25"), Ok(Duration::from_millis(250)));
        assert!(parse_lifetime("0").is_err());
        assert!(parse_lifetime("-1").is_err());
        assert!(parse_lifetime("nan").is_err());
        assert!(parse_lifetime("0.0001").is_err());
        assert!(parse_lifetime("4294967").is_ok());
        assert!(parse_lifetime("4294968").is_err());
        assert!(parse_lifetime("soon").is_err());
        assert!(check_error_message("handshake failed").is_ok());
        assert!(check_error_message(&"x".repeat(128)).is_ok());
        assert_eq!(
            check_error_message(&"x".repeat(129))
                .unwrap_err()
                .to_string(),
            "MESSAGE is 129 bytes long, at most 128 are allowed"
        );
        assert!(check_error_message("").is_err());
        assert!(check_error_message("a\0b").is_err());
    }

    #[test]
    fn cli_shapes() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let parse = |args: &[&str]| Cli::try_parse_from([&["tlshubctl"], args].concat());
        assert!(parse(&["node", "local"]).is_ok());
        assert!(parse(&["node", "local", "a", "b"]).is_ok());
        assert!(parse(&["node", "local", "--clear"]).is_ok());
        assert!(parse(&["node", "local", "--clear", "a"]).is_err());
        assert!(parse(&["node", "set", "n", "psk", "-", "--epoch", "4"]).is_ok());
        assert!(parse(&["node", "set", "n", "key", "f"]).is_err());
        assert!(parse(&["node", "set", "n", "psk"]).is_err());
        assert!(parse(&["node", "del", "n"]).is_ok());
        assert!(parse(&["node", "set", "n", "psk", "f", "--lifetime", "2"]).is_ok());
        assert!(parse(&["node", "set", "n", "psk", "f", "--lifetime", "0"]).is_err());
        assert!(parse(&["node", "fail", "n", "handshake failed"]).is_ok());
        assert!(parse(&["node", "fail", "n"]).is_err());
        assert!(parse(&["node", "show", "--json"]).is_ok());
        assert!(parse(&["cipher", "set", "chacha20-poly1305"]).is_ok());
        assert!(parse(&["cipher", "set", "rot13"]).is_err());
        assert!(parse(&["cipher", "get"]).is_ok());
        assert!(parse(&["timeout", "set", "100"]).is_ok());
        assert!(parse(&["timeout", "set", "99"]).is_err());
        assert!(parse(&["timeout", "get", "--json"]).is_ok());
        assert!(parse(&["service-cidr", "set", "10.96.0.0/12", "fd00:96::/108"]).is_ok());
        assert!(parse(&["service-cidr", "set"]).is_ok());
        assert!(parse(&["service-cidr", "get"]).is_ok());
        assert!(parse(&["service-cidr", "get", "--json"]).is_ok());
        assert!(parse(&["service-cidr", "get", "10.96.0.0/12"]).is_err());
        assert!(parse(&["service-cidr"]).is_err());
        assert!(parse(&["pod-cidr", "set", "10.244.0.0/16", "fd00:10:244::/56"]).is_ok());
        assert!(parse(&["pod-cidr", "set"]).is_ok());
        assert!(parse(&["pod-cidr", "get"]).is_ok());
        assert!(parse(&["pod-cidr", "get", "--json"]).is_ok());
        assert!(parse(&["pod-cidr", "get", "10.244.0.0/16"]).is_err());
        assert!(parse(&["pod-cidr"]).is_err());
        assert!(parse(&["pod-cidrs", "get"]).is_err());
        assert!(parse(&["flows", "--json"]).is_ok());
        assert!(parse(&["events"]).is_ok());
    }
}
