# Rotation never drops a flow (issue 15, spec §3 "Which epoch keys a
# flow"). This kernel serves n1 and n2: for a flow a1 (n1) -> b1 (n2) the
# client end keys with the entry of peer n2, the server end with that of
# peer n1, so setting one entry before the other is exactly a rotation's
# round trip, when one agent has installed the new epoch and the other not
# yet. Before, the two ends then keyed the flow with different secrets and
# it failed (EBADMSG, reset). Now the client announces its epoch in its
# ISN's low 2 bits, and:
# (A) the client switched first (n2 at epoch 2, n1 at 1): the server end
#     waits for epoch 2 — no key request, no reset — and is keyed once it
#     comes; the SYN's ISN carries 2 in its low bits;
# (B) the server switched first (n1 at 3, n2 at 2): a1 -> b1's client
#     announces 2, the server keys with its previous secret (2); b1 -> a1
#     announces 3 and its server end waits for 3;
# (C) an epoch neither current, previous nor next (two ahead): reset at
#     once, counted in reset-key-epoch, never keyed;
# (D) both entries at one epoch, both directions work;
# (E) the server end's secret expired a second ago (a late renewal): a
#     flow announced under it is keyed within the 10 s grace, no key wait;
#     and the wire of every flow above was TLS records only.
. ./lib.sh
. ./pods.sh

dp_setup
tlshubctl timeout set 20000 >/dev/null
for i in 1 2 3 5; do head -c 32 /dev/urandom > "$TOPO_DIR/p$i"; done
a4=$(pod_ip4 a1)
b4=$(pod_ip4 b1)
m=$(new_marker)
pod_bg b1 python3 dpapp.py server 7500 >"$TOPO_DIR/server-b.log" 2>&1
pod_bg a1 python3 dpapp.py server 7501 >"$TOPO_DIR/server-a.log" 2>&1
pod_wait_listen b1 7500
pod_wait_listen a1 7501
pcap=$TOPO_DIR/link1.pcap
capture_start n1 link1 "$pcap"
stats() { tlshubctl status --json; }
waiting() { [ "$(tlshubctl flows --json | jq '[.[] | select(.state == "key-wait")] | length')" -ge "$1" ]; }

[ "$(tlshubctl node set n1 psk "$TOPO_DIR/p1")" = "n1 epoch 1" ] || dp_fail "node set n1 epoch 1"
[ "$(tlshubctl node set n2 psk "$TOPO_DIR/p1")" = "n2 epoch 1" ] || dp_fail "node set n2 epoch 1"
out=$(pod_exec a1 python3 dpapp.py probe "$b4" 7500 --expect ok --marker "$m-base" --timeout 20) \
    || dp_fail "a1 -> b1 at epoch 1: $out"

# (A) The client's side switched first.
tlshubctl node set n2 psk "$TOPO_DIR/p2" >/dev/null
s0=$(stats)
pod_bg a1 python3 dpapp.py probe "$b4" 7500 --expect ok --marker "$m-a" --timeout 30 >"$TOPO_DIR/a.log" 2>&1
pa=$BG_PID
wait_for 30 waiting 1 || dp_fail "(A) the server end of a1 -> b1 does not wait for epoch 2: $(tlshubctl flows)"
nap; nap
kill -0 "$pa" 2>/dev/null || dp_fail "(A) the flow ended before n1 had epoch 2: $(cat "$TOPO_DIR/a.log")"
s1=$(stats)
[ "$(stat_of "$s1" key_requests)" = "$(stat_of "$s0" key_requests)" ] \
    || dp_fail "(A) waiting for the next epoch sent a key request"
[ "$(tlshubctl node set n1 psk "$TOPO_DIR/p2")" = "n1 epoch 2" ] || dp_fail "(A) node set n1 epoch 2"
wait "$pa" || dp_fail "(A) the flow whose client announced epoch 2 failed: $(cat "$TOPO_DIR/a.log")"
syn=$(tcpdump -nn -S -r "$pcap" "tcp[tcpflags] == tcp-syn and dst port 7500" 2>/dev/null | tail -n 1)
[[ $syn =~ seq\ ([0-9]+) ]] || dp_fail "(A) no SYN to b1:7500 in the capture: $syn"
[ $((BASH_REMATCH[1] & 3)) = 2 ] || dp_fail "(A) the SYN's ISN ${BASH_REMATCH[1]} does not carry epoch 2 in its low bits"
ok "(A) client at epoch 2, server at 1: the server end waited (no key request) and was keyed with epoch 2 when it came; the SYN's ISN ends in 2"

# (B) The server's side switched first.
tlshubctl node set n1 psk "$TOPO_DIR/p3" >/dev/null
out=$(pod_exec a1 python3 dpapp.py probe "$b4" 7500 --expect ok --marker "$m-b1" --timeout 20) \
    || dp_fail "(B) a1 -> b1, client at 2, server at 3 (previous 2): $out"
pod_bg b1 python3 dpapp.py probe "$a4" 7501 --expect ok --marker "$m-b2" --timeout 30 >"$TOPO_DIR/b.log" 2>&1
pb=$BG_PID
wait_for 30 waiting 1 || dp_fail "(B) the server end of b1 -> a1 does not wait for epoch 3: $(tlshubctl flows)"
tlshubctl node set n2 psk "$TOPO_DIR/p3" >/dev/null
wait "$pb" || dp_fail "(B) b1 -> a1 (client at 3, server at 2 then 3) failed: $(cat "$TOPO_DIR/b.log")"
ok "(B) server at 3: a1 -> b1 (announcing 2) keyed with its previous secret; b1 -> a1 (announcing 3) waited for 3"

# (C) Two epochs ahead: no secret of it will come.
[ "$(tlshubctl node set n1 psk "$TOPO_DIR/p5" --epoch 5)" = "n1 epoch 5" ] || dp_fail "(C) node set n1 epoch 5"
s0=$(stats)
out=$(pod_exec b1 python3 dpapp.py probe "$a4" 7501 --expect fail --marker "$m-c" --timeout 20 --max-block 10) \
    || dp_fail "(C) b1 -> a1 announcing 5 to an end at 3 (previous 2) was not reset at once: $out"
s1=$(stats)
[ "$(stat_of "$s1" reset_key_epoch)" -gt "$(stat_of "$s0" reset_key_epoch)" ] \
    || dp_fail "(C) reset-key-epoch did not count it: $(stat_of "$s1" reset_key_epoch)"
out=$(pod_exec a1 python3 dpapp.py probe "$b4" 7500 --expect ok --marker "$m-c2" --timeout 20) \
    || dp_fail "(C) a1 -> b1 announcing 3 to an end at 5 (previous 3): $out"
ok "(C) an epoch two ahead is reset at once (reset-key-epoch), never keyed; the other direction uses the previous secret"

# (D) Both at 5.
tlshubctl node set n2 psk "$TOPO_DIR/p5" --epoch 5 >/dev/null
for d in "a1 $b4 7500" "b1 $a4 7501"; do
    set -- $d
    out=$(pod_exec "$1" python3 dpapp.py probe "$2" "$3" --expect ok --marker "$m-d" --timeout 20) \
        || dp_fail "(D) $1 -> $2 at epoch 5: $out"
done
# (E) A renewal that lands just after the lifetime: the server end's secret
# expired a second ago, the client's has not; the client announces it
# (it was valid): keyed within the 10 s grace, no key wait.
head -c 32 /dev/urandom > "$TOPO_DIR/p6"
tlshubctl node set n2 psk "$TOPO_DIR/p6" --epoch 6 >/dev/null || dp_fail "(E) node set n2 epoch 6"
tlshubctl node set n1 psk "$TOPO_DIR/p6" --epoch 6 --lifetime 2 >/dev/null || dp_fail "(E) node set n1 epoch 6, 2 s"
s0=$(stats)
# The connect starts at once after the sleep: 1 s past the lifetime, well
# inside the grace; the state is checked after.
sleep 3
out=$(pod_exec a1 python3 dpapp.py probe "$b4" 7500 --expect ok --marker "$m-e" --timeout 20) \
    || dp_fail "(E) a1 -> b1 announcing epoch 6 a second after the server end's expired: $out"
s1=$(stats)
[[ $(tlshubctl node show) == *"n1 "*expired* ]] || dp_fail "(E) n1's secret did not expire: $(tlshubctl node show)"
[ "$(stat_of "$s1" key_waits)" = "$(stat_of "$s0" key_waits)" ] || dp_fail "(E) the flow waited for a key"
ok "(E) the server end's secret expired 1 s before: a flow announced under it is still keyed (10 s grace), no key wait"

capture_stop
[ "$CAPTURE_DROPPED" = 0 ] || dp_fail "the capture dropped $CAPTURE_DROPPED packets"
out=$(tlswire "$pcap" --expect tls --port 7500 --port 7501 --min-conns 6 --marker "$m") \
    || { echo "$out"; dp_fail "the wire is not TLS-only"; }
ok "(D) both directions at epoch 5; wire (link1): TLS records only, no marker"

topo_teardown
unload_module
