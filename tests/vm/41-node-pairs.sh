# Secrets per node pair (review M8, issue 15). This kernel serves n1 and
# n2, so a flow a1 (n1) -> b1 (n2) has both ends here: the client end's
# peer is n2, the server end's is n1. Keyed per peer node, the two ends
# could only agree if secret(n1) == secret(n2). Now:
# (A) `node set n2 psk S --local n1` (the pair {n1, n2}) secures a1 -> b1
#     alone (both ends use the pair's one entry); a flow that waited on
#     the peers' own entries before the pair's secret came is keyed at once;
#     node show lists it as n1+n2, JSON "local": "n1";
# (B) the peers' own secrets differ (n1: W1, n2: W2): the pair's secret
#     still wins; once the pair's secret is deleted, a1 -> b1 falls back to
#     the peers' own, which differ: it fails closed (never plaintext);
# (C) bad input changes nothing: --local a node this kernel does not serve
#     (EINVAL, named), --local the peer itself (refused before sending).
. ./lib.sh
. ./pods.sh

dp_setup
tlshubctl timeout set 20000 >/dev/null
head -c 32 /dev/urandom > "$TOPO_DIR/w1"
head -c 32 /dev/urandom > "$TOPO_DIR/w2"
v4=$(pod_ip4 b1)
m=$(new_marker)
pod_bg b1 python3 dpapp.py server 7500 >"$TOPO_DIR/server.log" 2>&1
pod_wait_listen b1 7500
pcap=$TOPO_DIR/link1.pcap
capture_start n1 link1 "$pcap"

# (A) A flow that waits (no secret at all), then the pair's secret.
pod_bg a1 python3 dpapp.py probe "$v4" 7500 --expect ok --marker "$m-wait" --timeout 30 >"$TOPO_DIR/wait.log" 2>&1
waiter=$BG_PID
kw() { [ "$(tlshubctl flows --json | jq '[.[] | select(.state == "key-wait")] | length')" -ge 2 ]; }
wait_for 30 kw || dp_fail "(A) both ends of a1 -> b1 do not wait for keys: $(tlshubctl flows)"
out=$(tlshubctl node set n2 psk "$TOPO_DIR/psk" --local n1) || dp_fail "(A) node set n2 --local n1: $out"
[ "$out" = "n1+n2 epoch 1" ] || dp_fail "(A) node set printed '$out'"
wait "$waiter" || dp_fail "(A) the flow that waited was not secured by the pair's secret: $(cat "$TOPO_DIR/wait.log")"
out=$(pod_exec a1 python3 dpapp.py probe "$v4" 7500 --expect ok --marker "$m-a" --timeout 20) \
    || dp_fail "(A) a1 -> b1 with only the pair's secret: $out"
show=$(tlshubctl node show --json)
[ "$(jq -r '[.[] | select(.local == "n1" and .name == "n2")] | length' <<<"$show")" = 1 ] \
    || dp_fail "(A) node show --json has no n1+n2 entry: $show"
text=$(tlshubctl node show)
[[ $text == *"n1+n2 "*established* ]] || dp_fail "(A) node show: $text"
ok "(A) the pair {n1, n2}'s one secret secures a1 -> b1 (both ends here); a flow that waited on the peers' entries was keyed when it came; node show: n1+n2"

# (B) Different secrets for the peers themselves: the pair's wins.
tlshubctl node set n1 psk "$TOPO_DIR/w1" >/dev/null
tlshubctl node set n2 psk "$TOPO_DIR/w2" >/dev/null
out=$(pod_exec a1 python3 dpapp.py probe "$v4" 7500 --expect ok --marker "$m-b" --timeout 20) \
    || dp_fail "(B) a1 -> b1 with the pair's secret and different peer secrets: $out"
tlshubctl node del n2 --local n1 || dp_fail "(B) node del n2 --local n1"
out=$(pod_exec a1 python3 dpapp.py probe "$v4" 7500 --expect fail --marker "$m-fallback" --timeout 20) \
    || dp_fail "(B) without the pair's secret the ends use different secrets, yet a1 -> b1 did not fail: $out"
if out=$(tlshubctl node del n2 --local n1 2>&1); then dp_fail "(B) a second del succeeded: $out"; fi
ok "(B) the pair's secret wins over the peers' own (which differ); deleted, a1 -> b1 fails closed on the peers' different secrets"

# (C) Bad input.
entries() { tlshubctl node show --json | jq -c 'map({name, local, epoch, state})'; }
before=$(entries)
if out=$(tlshubctl node set n2 psk "$TOPO_DIR/psk" --local n3 2>&1); then dp_fail "(C) --local n3 accepted: $out"; fi
[[ $out == *"not a node this kernel serves"* ]] || dp_fail "(C) --local n3: $out"
if out=$(tlshubctl node set n2 psk "$TOPO_DIR/psk" --local n2 2>&1); then dp_fail "(C) --local n2 accepted: $out"; fi
[[ $out == *"two different nodes"* ]] || dp_fail "(C) --local n2: $out"
[ "$(entries)" = "$before" ] || dp_fail "(C) a refused node set changed the table"
ok "(C) --local a node not served here: refused ($out), nothing changed"

capture_stop
[ "$CAPTURE_DROPPED" = 0 ] || dp_fail "the capture dropped $CAPTURE_DROPPED packets"
out=$(tlswire "$pcap" --expect tls --port 7500 --min-conns 3 --marker "$m") \
    || { echo "$out"; dp_fail "the wire is not TLS-only"; }
ok "wire (link1): TLS records only, no marker"

topo_teardown
unload_module
