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
#     (EINVAL, named), --local the peer itself (refused before sending);
# (D) a refused peer-set's error ack echoes the request with the PSK
#     zeroed (the module wipes it in the request message);
# (E) spec §3's epoch rule after `node del` and `node fail` (review L3):
#     the last epoch is kept; it is refused (EEXIST), older ones too, and
#     the next `node set` without --epoch takes the one after it.
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

# (D) Secrets do not come back in error acks.
out=$(python3 pskecho.py n9) || dp_fail "(D) $out"
tlshubctl node del n9
ok "(D) $out"

# (E) An epoch names one secret, also after delete and failure.
head -c 32 /dev/urandom > "$TOPO_DIR/e1"
head -c 32 /dev/urandom > "$TOPO_DIR/e2"
[ "$(tlshubctl node set n8 psk "$TOPO_DIR/e1" --epoch 4)" = "n8 epoch 4" ] || dp_fail "(E) node set n8 --epoch 4"
tlshubctl node del n8
if out=$(tlshubctl node set n8 psk "$TOPO_DIR/e2" --epoch 4 2>&1); then dp_fail "(E) epoch 4 reused after node del: $out"; fi
[[ $out == *"(EEXIST)"* ]] || dp_fail "(E) epoch 4 after del: $out"
if out=$(tlshubctl node set n8 psk "$TOPO_DIR/e2" --epoch 3 2>&1); then dp_fail "(E) epoch 3 accepted after del of 4: $out"; fi
[ "$(tlshubctl node show --json | jq -r '.[] | select(.name == "n8") | .last_epoch')" = 4 ] \
    || dp_fail "(E) node show --json: last_epoch of n8 is not 4: $(tlshubctl node show --json)"
[ "$(tlshubctl node set n8 psk "$TOPO_DIR/e2")" = "n8 epoch 5" ] || dp_fail "(E) the next epoch after del is not 5"
tlshubctl node fail n8 "test failure"
if out=$(tlshubctl node set n8 psk "$TOPO_DIR/e1" --epoch 5 2>&1); then dp_fail "(E) epoch 5 reused after node fail: $out"; fi
[ "$(tlshubctl node set n8 psk "$TOPO_DIR/e1")" = "n8 epoch 6" ] || dp_fail "(E) the next epoch after fail is not 6"
tlshubctl node del n8
ok "(E) after node del and node fail an epoch is never reused (EEXIST, older refused, last_epoch shown); the next one follows it"

capture_stop
[ "$CAPTURE_DROPPED" = 0 ] || dp_fail "the capture dropped $CAPTURE_DROPPED packets"
out=$(tlswire "$pcap" --expect tls --port 7500 --min-conns 3 --marker "$m") \
    || { echo "$out"; dp_fail "the wire is not TLS-only"; }
ok "wire (link1): TLS records only, no marker"

topo_teardown
unload_module
