# The datapath tests' harness, without the datapath (tlshub not loaded): the
# two-node pod topology (pods.sh) carries unprivileged apps' TCP between
# nodes over IPv4 and IPv6 (socat echo, nginx + curl, iperf3), the capture
# on the wire between the nodes (link1) is complete, and tlswire.py sees
# every marker the apps sent in plaintext: the control the datapath tests
# invert (--expect tls). Same-node traffic never crosses the wire.
. ./lib.sh
. ./pods.sh
ok() { echo "ok   [${SECONDS}s] $*"; }

! mod_loaded || rmmod_tlshub
topo_setup
status=$(pod_exec a1 cat /proc/self/status)
for f in Uid:65534 Gid:65534 Groups: CapInh:0000000000000000 CapPrm:0000000000000000 \
         CapEff:0000000000000000 CapAmb:0000000000000000; do
    [[ $'\n'"${status//[[:blank:]]/}"$'\n' =~ $'\n'"$f"[0-9]*$'\n' ]] || fail "pod_exec: want $f in /proc/self/status: $status"
done
ok "topology: nodes n1 n2, pods a1 a2 x1 on n1, b1 on n2; pod apps run as nobody, no groups, no capabilities"

topo_mapping "$TOPO_DIR/mapping.conf"
out=$(tlshubctl mapping check "$TOPO_DIR/mapping.conf") || fail "mapping check: $out"
expect_contains "mapping" "default/b1" "$out"
[[ $(<"$TOPO_DIR/mapping.conf") != *x1* ]] || fail "x1 is in the mapping"
ok "topo_mapping: a valid mapping file, a1 a2 b1, x1 left out"

pcap=$TOPO_DIR/link1.pcap
capture_start n1 link1 "$pcap"
app_echo_server b1 7000
app_echo_server a1 7000
app_echo_server a2 7000
app_nginx b1 8080
app_iperf3_server b1 5201
ok "servers up: socat echo (b1, a1, a2), nginx (b1), iperf3 (b1)"

m=$(new_marker)
expect_eq "a1 -> b1 echo, IPv4" "$m-echo4" "$(app_echo a1 "$(pod_ip4 b1)" 7000 "$m-echo4")"
expect_eq "a1 -> b1 echo, IPv6" "$m-echo6" "$(app_echo a1 "$(pod_ip6 b1)" 7000 "$m-echo6")"
expect_eq "b1 -> a1 echo, IPv4" "$m-back4" "$(app_echo b1 "$(pod_ip4 a1)" 7000 "$m-back4")"
expect_eq "x1 (unmapped) -> b1 echo, IPv4" "$m-x1" "$(app_echo x1 "$(pod_ip4 b1)" 7000 "$m-x1")"
ok "socat echo across nodes: a1 -> b1 (IPv4, IPv6), b1 -> a1, x1 -> b1"

echo "$m-body" > "$TOPO_DIR/www-b1/index.html"
expect_eq "curl a1 -> b1, IPv4" "$m-body" "$(pod_exec a1 curl -sS --max-time 60 -H "X-Marker: $m-hdr4" "http://$(pod_addr b1 4):8080/")"
expect_eq "curl a1 -> b1, IPv6" "$m-body" "$(pod_exec a1 curl -sS -g --max-time 60 -H "X-Marker: $m-hdr6" "http://$(pod_addr b1 6):8080/")"
ok "curl a1 -> nginx on b1 (IPv4, IPv6)"

out=$(pod_exec a1 iperf3 -c "$(pod_ip4 b1)" -p 5201 -t 2 -b 8M --extra-data "$m-iperf") || fail "iperf3: $out"
ok "iperf3 a1 -> b1, 2 s at 8 Mbit/s"

expect_eq "a1 -> a2 echo (same node)" "$m-local" "$(app_echo a1 "$(pod_ip4 a2)" 7000 "$m-local")"
expect_eq "a1 -> a2 echo, IPv6 (same node)" "$m-local6" "$(app_echo a1 "$(pod_ip6 a2)" 7000 "$m-local6")"
ok "socat echo a1 -> a2 on the same node (IPv4, IPv6)"

capture_stop
[ "$CAPTURE_DROPPED" = 0 ] || fail "the capture dropped $CAPTURE_DROPPED packets"
ok "capture on link1: $CAPTURE_PACKETS packets, none dropped"

# The control: every marker the apps sent is visible on the wire; who
# talked to whom, streams complete, nothing from the same node; and
# --expect tls says no to this capture. (One python: each start costs
# seconds under TCG. The CLI itself is tested on the host.)
python3 - "$pcap" "$m" <<'PY' || fail "capture contents"
import sys
import tlswire
pcap, m = sys.argv[1], sys.argv[2]
cross = [f"{m}-{s}" for s in ("echo4", "echo6", "back4", "x1", "hdr4", "hdr6", "body", "iperf")]
res = tlswire.analyse(pcap, [x.encode() for x in cross])
fails = tlswire.verdict(res, "plain", 8)
if fails:
    tlswire.human(res, fails, "plain", sys.stdout)
    sys.exit(1)
print("ok   tlswire --expect plain: all 8 cross-node markers seen in their connections")
conns = res["connections"]
def find(client, server):
    got = [c for c in conns if c["client_ip"] == client and c["server"] == server]
    assert len(got) == 1, f"{client} -> {server}: {len(got)} connections"
    return got[0]
# app_echo sends the line and its newline.
for client, server, n in (("10.1.0.11", "10.2.0.21:7000", len(m) + 7), ("fd00:1::11", "[fd00:2::21]:7000", len(m) + 7),
                          ("10.2.0.21", "10.1.0.11:7000", len(m) + 7), ("10.1.0.99", "10.2.0.21:7000", len(m) + 4)):
    c = find(client, server)
    for name, d in c["directions"].items():
        assert d["bytes"] == n and d["isn_known"] and d["fin"] and not d["gaps"], (client, server, name, d)
find("10.1.0.11", "10.2.0.21:8080")
find("fd00:1::11", "[fd00:2::21]:8080")
iperf = [c for c in conns if c["server"] == "10.2.0.21:5201"]
assert len(iperf) == 2, f"iperf3: {len(iperf)} connections (control + data)"
data = max(iperf, key=lambda c: c["directions"]["c2s"]["bytes"])["directions"]["c2s"]
assert data["bytes"] > 50000 and not data["gaps"], data
assert len(conns) == 8, f"{len(conns)} connections on the wire, expected 8: {[(c['client'], c['server']) for c in conns]}"
print(f"ok   wire: 8 connections, streams complete (iperf3 data {data['bytes']} bytes, no gaps)")

local = tlswire.analyse(pcap, [f"{m}-local".encode(), f"{m}-local6".encode()])
assert not any(local["markers_in_raw_pcap"].values()), local["markers_in_raw_pcap"]
assert not [c for c in conns if {c["client_ip"], c["server_ip"]} & {"10.1.0.12", "fd00:1::12"}], "a2's traffic crossed the link"
print("ok   a1 -> a2 (same node): never on the wire")

fails = tlswire.verdict(tlswire.analyse(pcap, [m.encode()], {7000}), "tls", 1)
assert any("not a TLS record chain" in f for f in fails) and any("in plaintext" in f for f in fails), fails
print(f"ok   tlswire --expect tls fails on this capture ({len(fails)} failures)")
PY
topo_teardown
[ -z "$(ip netns list)" ] || fail "netns left after topo_teardown: $(ip netns list)"
ok "topo_teardown: no namespaces left"
