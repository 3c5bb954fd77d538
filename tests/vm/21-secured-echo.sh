# The datapath's first proof: with tlshub serving both nodes (n1, n2) of
# the one-kernel topology and a node-pair secret set, a socat echo between
# pods on different nodes is keyed in-kernel: the apps (unprivileged,
# unmodified) see their bytes, the wire between the nodes carries only
# contiguous TLS application-data records from ISN+1 (no marker), kTLS
# counters rise, and the flow shows in `tlshubctl flows`. Same-node and
# unmapped traffic stays plain (the controls).
. ./lib.sh
. ./pods.sh
ok() { echo "ok   $*"; }

load_module
topo_setup
topo_mapping "$TOPO_DIR/mapping.conf"
tlshubctl mapping load "$TOPO_DIR/mapping.conf" >/dev/null
tlshubctl node local n1 n2
expect_eq "local nodes" "n1 n2" "$(tlshubctl node local | tr '\n' ' ' | sed 's/ $//')"
head -c 32 /dev/urandom > "$TOPO_DIR/psk"
tlshubctl node set n1 psk "$TOPO_DIR/psk"
tlshubctl node set n2 psk "$TOPO_DIR/psk"
ok "module serves n1 and n2, one secret for the pair"

tx_a=$(tls_stat a1 TlsTxSw) rx_b=$(tls_stat b1 TlsRxSw)
pcap=$TOPO_DIR/link1.pcap
capture_start n1 link1 "$pcap"
app_echo_server b1 7000
app_echo_server a2 7000
m=$(new_marker)
expect_eq "a1 -> b1 echo, IPv4" "$m-echo4" "$(app_echo a1 "$(pod_ip4 b1)" 7000 "$m-echo4")"
expect_eq "a1 -> b1 echo, IPv6" "$m-echo6" "$(app_echo a1 "$(pod_ip6 b1)" 7000 "$m-echo6")"
# An IPv6 socket to b1's IPv4 address as v4-mapped IPv6 (dual-stack apps):
# the same pods, the same keys as plain IPv4.
expect_eq "a1 -> b1 echo, v4-mapped IPv6" "$m-mapped" "$(app_echo a1 "::ffff:$(pod_ip4 b1)" 7000 "$m-mapped")"
expect_eq "x1 (unmapped) -> b1 echo" "$m-plain" "$(app_echo x1 "$(pod_ip4 b1)" 7000 "$m-plain")"
expect_eq "a1 -> a2 echo (same node)" "$m-local" "$(app_echo a1 "$(pod_ip4 a2)" 7000 "$m-local")"
capture_stop
ok "apps see their bytes"

tlshubctl status
tlshubctl flows || true
nsenter --net=/run/netns/a1 cat /proc/net/tls_stat
out=$(tlswire "$pcap" --expect tls --port 7000 --host "$(pod_ip4 a1)" --marker "$m-echo4") || { echo "$out"; fail "IPv4 flow is not TLS on the wire"; }
echo "$out" | tail -3
out=$(tlswire "$pcap" --expect tls --port 7000 --host "$(pod_ip6 a1)" --marker "$m-echo6") || { echo "$out"; fail "IPv6 flow is not TLS on the wire"; }
out=$(tlswire "$pcap" --expect tls --port 7000 --host "$(pod_ip4 a1)" --min-conns 2 --marker "$m-mapped") || { echo "$out"; fail "v4-mapped flow is not TLS on the wire"; }
expect_contains "flows secured" "flows_secured: 6" "$(tlshubctl status)"
out=$(tlswire "$pcap" --expect plain --marker "$m-plain") || { echo "$out"; fail "control (unmapped) not plain"; }
! grep -q "$m-local" "$pcap" || fail "same-node traffic crossed the wire"
[ "$(tls_stat a1 TlsTxSw)" -ge $((tx_a + 3)) ] || fail "a1 TlsTxSw rose from $tx_a to $(tls_stat a1 TlsTxSw) only"
[ "$(tls_stat b1 TlsRxSw)" -ge $((rx_b + 2)) ] || fail "b1 TlsRxSw rose from $rx_b to $(tls_stat b1 TlsRxSw) only"
ok "wire: secured flows are TLS records only; controls plain"
topo_teardown
unload_module
