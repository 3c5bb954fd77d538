# A hole left by an earlier netfilter hook does not reset a healthy flow
# (review L1). tests/modules/nfsteal (built by scripts/test) sits on
# LOCAL_OUT ahead of the wire guard in every namespace and consumes every
# Nth payload segment of port 7400 (NF_STOLEN, as an NFQUEUE drop does):
# TCP counts it as sent, so the next segments reach the guard past bytes
# it never saw. The guard holds them back (dropped, counted in
# guard-holds, the flow untouched) until TCP retransmits the hole. A
# secured bulk transfer a1 -> b1 (IPv4, then IPv6) completes with the
# right sha256, no flow is reset (reset-guard, guard-drops stay 0), holds
# were counted, and the wire carries TLS records only.
. ./lib.sh
. ./pods.sh
fail() { rmmod nfsteal 2>/dev/null || true; dp_fail "$@"; }

ko=$(cd ../modules/nfsteal && pwd)/nfsteal.ko
[ -e "$ko" ] || fail "$ko is not built (scripts/test builds it)"
dp_setup
tlshubctl node set n1 psk "$TOPO_DIR/psk" >/dev/null
tlshubctl node set n2 psk "$TOPO_DIR/psk" >/dev/null
pod_bg b1 python3 dpapp.py server 7400 --mode hash >"$TOPO_DIR/hash.log" 2>&1
wait_log "$TOPO_DIR/hash.log" "listening on" 60 || fail "the server did not start"
insmod "$ko" port=7400 every=25 || fail "insmod nfsteal"
pcap=$TOPO_DIR/link1.pcap
capture_start n1 link1 "$pcap" tcp port 7400
before=$(tlshubctl status --json)

for fam in 4 6; do
    host=$(pod_ip$fam b1)
    touch "$TOPO_DIR/go"; chmod 644 "$TOPO_DIR/go"
    pod_bg a1 python3 dpapp.py stream "$host" 7400 --go-file "$TOPO_DIR/go" --pause 0.002 \
        >"$TOPO_DIR/stream$fam.log" 2>&1
    stream=$BG_PID
    sleep 12
    rm -f "$TOPO_DIR/go"
    wait "$stream" || fail "IPv$fam transfer: $(cat "$TOPO_DIR/stream$fam.log")"
    ok "IPv$fam: $(grep '^ok' "$TOPO_DIR/stream$fam.log")"
done

after=$(tlshubctl status --json)
stolen=$(cat /sys/module/nfsteal/parameters/stolen)
holds=$(( $(stat_of "$after" guard_holds) - $(stat_of "$before" guard_holds) ))
[ "$stolen" -ge 4 ] || fail "nfsteal took only $stolen segments: no hole to speak of"
[ "$holds" -ge 1 ] || fail "$stolen segments stolen but the guard held none back (guard-holds +$holds)"
for k in reset_guard guard_drops install_failures reset_install; do
    expect_eq "status $k" "$(stat_of "$before" $k)" "$(stat_of "$after" $k)"
done
ok "$stolen segments stolen ahead of the guard: $holds held back at the holes, no flow reset"

capture_stop
out=$(tlswire "$pcap" --expect tls --port 7400 --min-conns 2) || { echo "$out"; fail "the wire is not TLS-only"; }
echo "$out" | tail -n 1
ok "wire (link1): TLS records only"

rmmod nfsteal || fail "rmmod nfsteal"
topo_teardown
unload_module
