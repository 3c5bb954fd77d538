//! `tlshubctl`: configure and inspect the tlshub kernel module.
//!
//! Shaped after `wg` and `ip`: short verbs, a readable table by default and
//! JSON with `--json`, errors that name the file line, and nothing sent to
//! the kernel until every input has been validated.

use std::io::{self, BufWriter, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};
use serde::Serialize;
use tlshub::config::DEFAULT_CONFIG_PATH;
use tlshub::mapping::{check_node_name, check_pod_name, SeedTable};
use tlshub::netlink::{schema, Client, Trace};
use tlshub::{k8s, CaptureConfig, Mode, NetlinkError, Node, Pod, PodNodeTable};

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
    /// Load the mapping and set the mode named by a capture.conf
    Apply {
        #[arg(long, value_name = "FILE", default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
    },
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
    /// the IPs marks a pod that shares its node's network)
    Add {
        pod: String,
        node: String,
        #[arg(value_name = "IP|hostNetwork")]
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
                writeln!(w, "lookups: {}", s.stats.lookups)?;
                writeln!(w, "lookup-misses: {}", s.stats.lookup_misses)?;
                writeln!(w, "map-updates: {}", s.stats.map_updates)
            })
        }
        Command::Apply { config } => {
            let config = CaptureConfig::from_file(&config)?;
            let table = PodNodeTable::from_file(&config.pod_node_config)?;
            let mut client = connect(verbose)?;
            load(&mut client, &table, &config.pod_node_config)?;
            client.mode_set(config.mode)?;
            println!("Mode set to {}", config.mode);
            Ok(())
        }
    }
}

fn mapping(command: MappingCommand, verbose: bool) -> Result {
    match command {
        MappingCommand::Load { file } => {
            let table = PodNodeTable::from_file(&file)?;
            if verbose {
                eprintln!(
                    "tlshubctl: parsed {} pods and {} nodes from {}",
                    table.len(),
                    table.nodes().len(),
                    file.display()
                );
            }
            load(&mut connect(verbose)?, &table, &file)
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
            output(json, &found, |w| match found.pod.host_network {
                true => writeln!(w, "{} hostNetwork", found.pod.node),
                false => writeln!(w, "{}", found.pod.node),
            })
        }
        MappingCommand::Add { pod, node, ips } => {
            let pod = Pod::from_columns(&pod, &node, &ips)?;
            Ok(connect(verbose)?.map_add(Some(&pod), None)?)
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
