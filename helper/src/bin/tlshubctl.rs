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
use tlshub::netlink::{schema, Client, Event, Flow, Peer, Status, Trace};
use tlshub::{
    k8s, netns, source, uapi, CaptureConfig, Cidr, Cipher, Mode, NetlinkError, Netns, Node, Pod,
    PodNodeTable, Psk,
};

type Result<T = ()> = anyhow::Result<T>;

#[derive(Parser)]
#[command(
    name = "tlshubctl",
    version,
    about = "Configure and inspect the tlshub kernel module",
    after_help = EXIT_CODES
)]
struct Cli {
    /// Print every netlink message sent and received (also CAPTURE_DEBUG=1)
    #[arg(short, long, global = true)]
    verbose: bool,
    /// Print JSON instead of text; its keys are the text output's names
    /// (a table's column NAME is key `name`; durations in JSON are `*_ms`)
    #[arg(short, long, global = true)]
    json: bool,
    /// Without a command: `status`
    #[command(subcommand)]
    command: Option<Command>,
}

/// The exit codes, as `--help` shows them.
const EXIT_CODES: &str = "\
Exit status:
  0  success
  1  failure (the kernel refused, a file could not be read or is invalid,
     no module loaded)
  2  usage error (unknown command or flag, an invalid argument)
  3  not found (`mapping lookup` found no pod; a pod, node or peer secret
     to delete or change does not exist)";

/// [`EXIT_CODES`] as values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exit {
    Failure = 1,
    Usage = 2,
    NotFound = 3,
}

/// An invalid command-line argument, found by our own checks after clap's
/// (a node name, a CIDR, a message): exits [`Exit::Usage`] like clap's.
#[derive(Debug, thiserror::Error)]
#[error("{0:#}")]
struct UsageError(anyhow::Error);

/// What `mapping lookup` found nothing for: exits [`Exit::NotFound`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct NotFound(String);

/// `r`, its error marked as a usage error.
fn usage<T, E: Into<anyhow::Error>>(r: std::result::Result<T, E>) -> Result<T> {
    r.map_err(|e| UsageError(e.into()).into())
}

/// The global flags every command sees.
#[derive(Clone, Copy)]
struct Opts {
    verbose: bool,
    json: bool,
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
    Status,
    /// Load the mapping and set the mode (and the local nodes, cipher, key
    /// timeout, Service CIDRs, pod CIDRs and node-pair secrets, if given)
    /// named by a capture.conf
    Apply {
        /// The capture.conf to apply
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
    Flows,
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
        /// The nodes this kernel serves (replaces the list)
        #[arg(value_name = "NODE")]
        nodes: Vec<String>,
        /// Serve no node
        #[arg(long, conflicts_with = "nodes")]
        clear: bool,
    },
    /// Set the secret shared with peer node NODE, read from FILE (32 raw
    /// bytes, or base64 as `wg genpsk` writes; - reads stdin)
    Set {
        /// The peer node
        node: String,
        /// What FILE holds
        kind: SecretKind,
        /// The secret: 32 raw bytes or base64 (- reads standard input)
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
    /// pair {LOCAL, NODE}'s); the mapping keeps NODE (`mapping del-node`
    /// removes a node from the mapping)
    #[command(visible_alias = "del")]
    Forget {
        /// The peer node
        node: String,
        /// Only the pair {LOCAL, NODE}'s secret (LOCAL: a node this kernel
        /// serves)
        #[arg(long, value_name = "LOCAL")]
        local: Option<String>,
    },
    /// Report that no secret can be had for peer node NODE (a failed
    /// handshake): flows waiting for it are reset at once, its secret is
    /// dropped, and MESSAGE is shown by `node show` (with --local: for the
    /// pair {LOCAL, NODE})
    Fail {
        /// The peer node
        node: String,
        /// Why (at most 128 bytes), shown by `node show`
        #[arg(value_name = "MESSAGE")]
        message: String,
        /// Only the pair {LOCAL, NODE} (LOCAL: a node this kernel serves)
        #[arg(long, value_name = "LOCAL")]
        local: Option<String>,
    },
    /// Show peer nodes (a node pair's own secret as LOCAL+NODE): state,
    /// secret epoch ("-": none), age and expiry, flows waiting, last error
    Show,
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
    Get,
    /// Set the cipher of new flows
    Set {
        /// The cipher
        #[arg(value_parser = parse_cipher, value_name = "aes-128-gcm|aes-256-gcm|chacha20-poly1305")]
        cipher: Cipher,
    },
}

#[derive(Subcommand)]
enum TimeoutCommand {
    /// Print the key timeout in milliseconds
    Get,
    /// Set the key timeout in milliseconds (100 to 600000)
    Set {
        /// Milliseconds (100 to 600000)
        #[arg(value_parser = parse_timeout, value_name = "MS")]
        ms: u32,
    },
}

#[derive(Subcommand)]
enum ServiceCidrCommand {
    /// Print the Service CIDRs, one per line
    Get,
    /// Replace the Service CIDRs (at most 16, IPv4 and/or IPv6, no host
    /// bits set); without CIDR, clear them
    Set {
        /// The CIDRs (none: clear them)
        #[arg(value_name = "CIDR")]
        cidrs: Vec<String>,
    },
}

#[derive(Subcommand)]
enum PodCidrCommand {
    /// Print the pod CIDRs, one per line
    Get,
    /// Replace the pod CIDRs (at most 16, IPv4 and/or IPv6, no host bits
    /// set); without CIDR, clear them
    Set {
        /// The CIDRs (none: clear them)
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
    Load {
        /// The mapping file (- reads standard input)
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Validate FILE and print it as a table, without touching the kernel
    Check {
        /// The mapping file (- reads standard input)
        file: PathBuf,
    },
    /// Print the kernel's mapping (the seed's table; with --json, pods and
    /// nodes in full)
    Show {
        /// Print it as a mapping file that `mapping load` reads back: node
        /// lines (agent addresses), then pod lines (IPs, hostNetwork, netns)
        #[arg(long, conflicts_with = "json")]
        conf: bool,
    },
    /// Print the node of a pod, given its name or one of its IPs
    Lookup {
        /// A pod name (NAMESPACE/NAME or NAME) or one of its IPs
        #[arg(value_name = "POD|IP")]
        key: String,
    },
    /// Add or update one pod (NAMESPACE/NAME or NAME; "hostNetwork" after
    /// the IPs marks a pod that shares its node's network, "netns=PATH" or
    /// "netns-cookie=N" binds it to its network namespace)
    Add {
        /// The pod (NAMESPACE/NAME or NAME)
        pod: String,
        /// The node it runs on
        node: String,
        /// Its IPs, then optionally "hostNetwork", "netns=PATH" or
        /// "netns-cookie=N"
        #[arg(value_name = "IP|hostNetwork|netns=PATH|netns-cookie=N")]
        ips: Vec<String>,
    },
    /// Add or update one node and where its agent listens
    AddNode {
        /// The node's name
        node: String,
        /// Where its TLSHub agent listens (default port 7443)
        #[arg(value_name = "ADDR[:PORT]")]
        addr: Option<String>,
    },
    /// Delete one pod
    Del {
        /// The pod (NAMESPACE/NAME or NAME)
        pod: String,
    },
    /// Delete one node that no pod uses
    DelNode {
        /// The node's name
        node: String,
    },
    /// Print a mapping file for a cluster, from `kubectl get pods -A -o json`
    /// (and `kubectl get nodes -o json` for the nodes' addresses)
    FromK8s {
        /// The output of `kubectl get pods -A -o json`
        #[arg(value_name = "PODS.json")]
        pods: PathBuf,
        /// The output of `kubectl get nodes -o json` (agent addresses)
        #[arg(long, value_name = "NODES.json")]
        nodes: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ModeCommand {
    /// Print the current mode
    Get,
    /// Switch the key provider
    Set {
        /// tlshub (node-pair secrets, no per-flow handshake), or openssl /
        /// boringssl (a TLS handshake per flow by the agents' workers)
        mode: ModeArg,
    },
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
    let opts = Opts {
        verbose,
        json: cli.json,
    };
    match run(cli.command.unwrap_or(Command::Status), opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tlshubctl: {}", explain(&e));
            ExitCode::from(exit_code(&e) as u8)
        }
    }
}

/// Which [`Exit`] an error is: a usage error, a lookup that found nothing
/// or a kernel `ENOENT` (what was named does not exist), else a failure.
fn exit_code(e: &anyhow::Error) -> Exit {
    if e.chain().any(|c| c.is::<UsageError>()) {
        return Exit::Usage;
    }
    let not_found = e.chain().any(|c| {
        c.is::<NotFound>()
            || matches!(c.downcast_ref::<NetlinkError>(),
                        Some(NetlinkError::Kernel(k)) if k.errno == libc::ENOENT)
    });
    match not_found {
        true => Exit::NotFound,
        false => Exit::Failure,
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

fn run(command: Command, Opts { verbose, json }: Opts) -> Result {
    match command {
        Command::Mapping(m) => mapping(m, Opts { verbose, json }),
        Command::Mode(ModeCommand::Get) => {
            let mode = connect(verbose)?.mode_get()?;
            #[derive(Serialize)]
            struct Out {
                mode: Mode,
            }
            output(json, &Out { mode }, |w| writeln!(w, "{mode}"))
        }
        Command::Mode(ModeCommand::Set { mode }) => Ok(connect(verbose)?.mode_set(mode.into())?),
        Command::Status => {
            let s = connect(verbose)?.status()?;
            output(json, &s, |w| write_status(w, &s))
        }
        Command::Apply { config } => apply(&config, verbose),
        Command::Node(n) => node(n, Opts { verbose, json }),
        Command::Cipher(CipherCommand::Get) => {
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
        Command::Timeout(TimeoutCommand::Get) => {
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
        Command::ServiceCidr(ServiceCidrCommand::Get) => output_cidrs(
            json,
            "service_cidrs",
            &connect(verbose)?.service_cidrs_get()?,
        ),
        Command::ServiceCidr(ServiceCidrCommand::Set { cidrs }) => {
            let cidrs = usage(check_service_cidrs(&cidrs))?;
            Ok(connect(verbose)?.service_cidrs_set(&cidrs)?)
        }
        Command::PodCidr(PodCidrCommand::Get) => {
            output_cidrs(json, "pod_cidrs", &connect(verbose)?.pod_cidrs_get()?)
        }
        Command::PodCidr(PodCidrCommand::Set { cidrs }) => {
            let cidrs = usage(check_pod_cidrs(&cidrs))?;
            Ok(connect(verbose)?.pod_cidrs_set(&cidrs)?)
        }
        Command::Drain => Ok(connect(verbose)?.drain()?),
        Command::Flows => {
            let flows = connect(verbose)?.flows()?;
            output(json, &flows_json(&flows), |w| write_flows(w, &flows))
        }
        Command::Events => events(verbose, json),
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

fn node(command: NodeCommand, Opts { verbose, json }: Opts) -> Result {
    match command {
        NodeCommand::Local {
            nodes,
            clear: false,
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
            usage(check_local_nodes(&nodes))?;
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
            usage(check_pair(&node, local.as_deref()))?;
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
        NodeCommand::Forget { node, local } => {
            usage(check_pair(&node, local.as_deref()))?;
            Ok(connect(verbose)?.peer_del_pair(&node, local.as_deref())?)
        }
        NodeCommand::Fail {
            node,
            message,
            local,
        } => {
            usage(check_pair(&node, local.as_deref()))?;
            usage(check_error_message(&message))?;
            Ok(connect(verbose)?.peer_fail_pair(&node, local.as_deref(), &message)?)
        }
        NodeCommand::Show => {
            let peers = connect(verbose)?.peers()?;
            output(json, &peers_json(&peers), |w| write_peers(w, &peers))
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
fn events(verbose: bool, json: bool) -> Result {
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
        let line = match json {
            true => event_json(&event).to_string(),
            false => event_line(&event),
        };
        let written = writeln!(w, "{line}").and_then(|()| w.flush());
        match written {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
            other => other?,
        }
    }
}

/// An event's fields, named as its `events` line names them: `event`
/// (`key-request` or `flow-key-request`), then `node` and `local` of a key
/// request, or `role mode local remote local-pod remote-pod peer
/// client-isn server-isn` of a flow key request (null: what the module did
/// not report).
fn event_fields(event: &Event) -> Vec<(&'static str, serde_json::Value)> {
    use serde_json::Value;
    let text = |v: &Option<String>| v.clone().map_or(Value::Null, Value::String);
    match event {
        Event::KeyRequest(e) => vec![
            ("event", "key-request".into()),
            ("node", e.node.clone().into()),
            ("local", e.local_node.clone().into()),
        ],
        Event::FlowKeyRequest(e) => vec![
            ("event", "flow-key-request".into()),
            ("role", e.role.to_string().into()),
            ("mode", e.mode.to_string().into()),
            ("local", e.local.to_string().into()),
            ("remote", e.remote.to_string().into()),
            ("local-pod", text(&e.local_pod)),
            ("remote-pod", text(&e.remote_pod)),
            ("peer", text(&e.peer_node)),
            ("client-isn", e.client_isn.into()),
            ("server-isn", e.server_isn.into()),
        ],
    }
}

/// One `events` line: the event's name, then `name=value` for each other
/// field (`-` for null). Text from the kernel has its control characters
/// escaped.
fn event_line(event: &Event) -> String {
    let mut fields = event_fields(event).into_iter();
    let mut line = fields
        .next()
        .and_then(|(_, v)| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    for (name, value) in fields {
        let value = match value {
            serde_json::Value::Null => "-".to_owned(),
            serde_json::Value::String(s) => printable(&s),
            other => other.to_string(),
        };
        line.push_str(&format!(" {name}={value}"));
    }
    line
}

/// One `events --json` line: an object of [`event_fields`], names with
/// `_` for `-`.
fn event_json(event: &Event) -> serde_json::Value {
    let fields = event_fields(event)
        .into_iter()
        .map(|(name, value)| (name.replace('-', "_"), value));
    serde_json::Value::Object(fields.collect())
}

/// `status`: one `name: value` line each, named as in `--json` (the
/// counters of its `stats` object in line, in spec order).
fn write_status(w: &mut dyn Write, s: &Status) -> io::Result<()> {
    writeln!(w, "version: {}", s.version)?;
    writeln!(w, "mode: {}", s.mode)?;
    writeln!(w, "pods: {}", s.pods)?;
    writeln!(w, "nodes: {}", s.nodes)?;
    writeln!(w, "generation: {}", s.generation)?;
    for (name, value) in s.stats.counters() {
        writeln!(w, "{}: {value}", name.replace('-', "_"))?;
    }
    writeln!(w, "cipher: {}", or_dash(s.cipher))?;
    writeln!(w, "key_timeout_ms: {}", or_dash(s.key_timeout_ms))?;
    let local = match s.local_nodes.is_empty() {
        true => "-".to_owned(),
        false => s.local_nodes.join(" "),
    };
    writeln!(w, "local_nodes: {local}")
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

/// A row of `flows --json`: the flow, and its `local` and `remote`
/// columns as the table shows them.
#[derive(Serialize)]
struct FlowRow<'a> {
    #[serde(flatten)]
    flow: &'a Flow,
    local: String,
    remote: String,
}

fn flows_json(flows: &[Flow]) -> Vec<FlowRow<'_>> {
    flows
        .iter()
        .map(|flow| FlowRow {
            flow,
            local: endpoint(flow.local_ip, flow.local_port),
            remote: endpoint(flow.remote_ip, flow.remote_port),
        })
        .collect()
}

/// A row of `node show --json`: the peer, and its `node` column (`NODE`,
/// or `LOCAL+NODE` for a node pair's own secret).
#[derive(Serialize)]
struct PeerRow<'a> {
    node: String,
    #[serde(flatten)]
    peer: &'a Peer,
}

fn peers_json(peers: &[Peer]) -> Vec<PeerRow<'_>> {
    peers
        .iter()
        .map(|peer| PeerRow {
            node: peer_label(peer),
            peer,
        })
        .collect()
}

/// A peer's `NODE` cell: a node pair's own secret is LOCAL+PEER (names
/// have no '+').
fn peer_label(p: &Peer) -> String {
    match &p.local {
        Some(l) => format!("{l}+{}", p.name),
        None => p.name.clone(),
    }
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
                peer_label(p),
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

fn mapping(command: MappingCommand, Opts { verbose, json }: Opts) -> Result {
    match command {
        MappingCommand::Load { file } => {
            let mut table = PodNodeTable::from_file(&file)?;
            if verbose {
                eprintln!(
                    "tlshubctl: parsed {} pods and {} nodes from {}",
                    table.len(),
                    table.nodes().len(),
                    source::name_of(&file)
                );
            }
            let mut client = connect(verbose);
            let local = local_nodes_of(&mut client);
            bind_netns(&mut table, local.as_deref(), verbose)?;
            load(&mut client?, &table, &file)
        }
        MappingCommand::Check { file } => {
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
        MappingCommand::Show { conf } => {
            let dump = connect(verbose)?.map_dump()?;
            output(json, &dump, |w| match conf {
                true => write_conf(w, &dump),
                false => write!(w, "{}", SeedTable(&dump.pods)),
            })
        }
        MappingCommand::Lookup { key } => {
            let ip = key.parse::<IpAddr>().ok();
            if ip.is_none() {
                usage(check_pod_name(&key))?;
            }
            let mut client = connect(verbose)?;
            let found = match ip {
                Some(ip) => client.map_get_by_ip(ip)?,
                None => client.map_get_by_name(&key)?,
            };
            let Some(found) = found else {
                return Err(NotFound("pod not found".to_owned()).into());
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
            let mut pod = usage(Pod::from_columns(&pod, &node, &ips))?;
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
            let node = usage(Node::parse(&node, addr.as_deref()))?;
            Ok(connect(verbose)?.map_add(None, Some(&node))?)
        }
        MappingCommand::Del { pod } => {
            usage(check_pod_name(&pod))?;
            Ok(connect(verbose)?.map_del_pod(&pod)?)
        }
        MappingCommand::DelNode { node } => {
            usage(check_node_name(&node))?;
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

/// `mapping show --conf`: the live mapping as a mapping file (node lines,
/// then pod lines, as [`PodNodeTable::write_conf`] writes them), which
/// `mapping load` reads back into the same table.
fn write_conf(w: &mut dyn Write, dump: &tlshub::netlink::MapDump) -> io::Result<()> {
    writeln!(
        w,
        "# tlshubctl mapping show --conf: {} pods, {} nodes, generation {}",
        dump.pods.len(),
        dump.nodes.len(),
        dump.generation
    )?;
    dump.nodes.iter().try_for_each(|n| writeln!(w, "{n}"))?;
    dump.pods.iter().try_for_each(|p| writeln!(w, "{p}"))
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
        source::name_of(file)
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

    /// The pair {n1, n2}'s own secret, established at epoch 1.
    fn pair_peer() -> Peer {
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
        }
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
            pair_peer(),
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

    /// Every argument of every command has help text (review: `--json`
    /// flags had none).
    #[test]
    fn every_argument_has_help() {
        use clap::CommandFactory;
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub.get_about().is_none() {
                    missing.push(format!("{path} {} (command)", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "tlshubctl", &mut missing);
        assert!(missing.is_empty(), "without help text: {missing:#?}");
    }

    /// `status` names each line as `status --json` names its key.
    #[test]
    fn status_text_names_are_json_keys() {
        let status = Status {
            version: "1".into(),
            mode: Mode::Tlshub,
            pods: 2,
            nodes: 1,
            generation: 3,
            stats: Default::default(),
            cipher: Some(Cipher::Aes128Gcm),
            key_timeout_ms: Some(5000),
            local_nodes: vec!["n1".into()],
        };
        let names: Vec<String> = text(|w| write_status(w, &status))
            .lines()
            .map(|l| l.split_once(": ").unwrap().0.to_owned())
            .collect();
        let json = serde_json::to_value(&status).unwrap();
        let mut keys = Vec::new();
        for (k, v) in json.as_object().unwrap() {
            match v.as_object() {
                Some(nest) => keys.extend(nest.keys().cloned()),
                None => keys.push(k.clone()),
            }
        }
        let (mut a, mut b) = (names.clone(), keys);
        a.sort();
        b.sort();
        assert_eq!(a, b);
        assert!(names.contains(&"lookup_misses".to_owned()));
    }

    /// Each table column NAME is the JSON key `name` (`name_ms` for a
    /// duration), in `flows` and `node show`.
    #[test]
    fn table_columns_are_json_keys() {
        fn check(header: &str, row: &serde_json::Value) {
            let obj = row.as_object().unwrap();
            for col in header.split_whitespace() {
                let key = col.to_lowercase().replace('-', "_");
                assert!(
                    obj.contains_key(&key) || obj.contains_key(&format!("{key}_ms")),
                    "column {col}: no key {key} in {row}"
                );
            }
        }
        let flows = flows();
        let header = text(|w| write_flows(w, &flows));
        let json = serde_json::to_value(flows_json(&flows)).unwrap();
        check(header.lines().next().unwrap(), &json[0]);
        assert_eq!(json[1]["local"], "[fd00::5]:443");
        let peers = vec![pair_peer()];
        let header = text(|w| write_peers(w, &peers));
        let json = serde_json::to_value(peers_json(&peers)).unwrap();
        check(header.lines().next().unwrap(), &json[0]);
        assert_eq!(json[0]["node"], "n1+n2");
    }

    /// Exit codes: our own argument checks are usage errors (2), a lookup
    /// miss and a kernel ENOENT are "not found" (3), the rest failures.
    #[test]
    fn exit_codes() {
        let e = usage(check_pair("n1", Some("n1"))).unwrap_err();
        assert_eq!(exit_code(&e), Exit::Usage);
        let e = anyhow::Error::from(NotFound("pod not found".into()));
        assert_eq!(exit_code(&e), Exit::NotFound);
        assert_eq!(e.to_string(), "pod not found");
        let e = anyhow::anyhow!("boom");
        assert_eq!(exit_code(&e), Exit::Failure);
        let e = anyhow::Error::from(NetlinkError::EventsLost).context("events");
        assert_eq!(exit_code(&e), Exit::Failure);
    }

    #[test]
    fn events_json_names_match_text() {
        use tlshub::netlink::KeyRequest;
        let ev = Event::KeyRequest(KeyRequest {
            node: "node-2".into(),
            local_node: "node-1".into(),
        });
        assert_eq!(
            event_json(&ev),
            serde_json::json!({"event": "key-request", "node": "node-2", "local": "node-1"})
        );
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
        assert!(parse(&["node", "forget", "n", "--local", "l"]).is_ok());
        assert!(parse(&[]).is_ok_and(|c| c.command.is_none()));
        assert!(parse(&["-j", "status"]).is_ok_and(|c| c.json));
        assert!(parse(&["status", "-j"]).is_ok_and(|c| c.json));
        assert!(parse(&["flows", "--json"]).is_ok_and(|c| c.json));
        assert!(parse(&["events", "--json"]).is_ok());
        assert!(parse(&["mapping", "show", "--conf"]).is_ok());
        assert!(parse(&["mapping", "show", "--conf", "--json"]).is_err());
        assert!(parse(&["mapping", "load", "-"]).is_ok());
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
