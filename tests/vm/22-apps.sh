# Unmodified apps across nodes are secured transparently: with tlshub
# serving n1 and n2 and a node-pair secret set, nginx + curl (a small page,
# and a 4 MiB file served with `sendfile on`, checked by sha256 at the
# client), iperf3 (a few seconds, and -R) and a socat echo work between a1
# (n1) and b1 (n2), in both directions (a1 -> b1 and b1 -> a1), over IPv4
# and IPv6. Every app run carries its own random marker (URL, page body,
# file content, iperf3 --extra-data, echo data), and the capture on the wire
# between the nodes (link1) holds nothing but TLS record chains from ISN+1
# and no marker (tlswire --expect tls). kTLS counters rise in both pod
# netns, `tlshubctl status` counts every flow secured with no install
# failure and no reset, and `tlshubctl flows --json` lists both ends of a
# transfer while it runs (role, peer node, cipher, state).
. ./lib.sh
. ./pods.sh
ok() { echo "ok   $* [${SECONDS}s]"; }

# stat_of JSON NAME: one counter of `tlshubctl status --json`.
stat_of() { jq -r --arg k "$2" '.stats[$k] // .[$k] // empty' <<<"$1"; }

# nginx_sendfile POD PORT: nginx (root master, nobody worker) serving
# $TOPO_DIR/www-POD with sendfile on (pods.sh's app_nginx leaves it off),
# big.bin at 1 MB/s.
nginx_sendfile() {
    local pod=$1 port=$2 d=$TOPO_DIR/nginx-sf-$1-$2
    mkdir -p "$d" "$TOPO_DIR/www-$pod"
    chmod 755 "$TOPO_DIR/www-$pod"
    cat > "$d/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 1;
user nobody nogroup;
pid $d/nginx.pid;
error_log $d/error.log notice;
events { worker_connections 64; }
http {
    access_log $d/access.log;
    client_body_temp_path $d/body;
    proxy_temp_path $d/proxy;
    fastcgi_temp_path $d/fastcgi;
    uwsgi_temp_path $d/uwsgi;
    scgi_temp_path $d/scgi;
    sendfile on;
    tcp_nopush on;
    server {
        listen $port;
        listen [::]:$port;
        root $TOPO_DIR/www-$pod;
        # Paced by the sender: the capture in the VM (tcpdump -s 0,
        # immediate mode) drops packets of line-rate bursts.
        location = /big.bin { limit_rate 1m; }
    }
}
EOF
    pod_bg_root "$pod" nginx -e "$d/error.log" -p "$d" -c "$d/nginx.conf" >"$d/stderr.log" 2>&1
    pod_wait_listen "$pod" "$port"
}

# wait_has SECS FILE STRING: until a line of FILE contains STRING (builtins only).
_has() { local l; [ -r "$1" ] || return 1; while IFS= read -r l || [ -n "$l" ]; do [[ $l != *"$2"* ]] || return 0; done < "$1"; return 1; }
wait_has() { local end=$((SECONDS + $1)); until _has "$2" "$3"; do [ $SECONDS -lt $end ] || return 1; sleep 0.1; done; }

# diag: what the servers and the kernel said (on failure).
diag() {
    local f
    for f in "$TOPO_DIR"/nginx-sf-*/error.log "$TOPO_DIR"/*.log; do [ -e "$f" ] && { echo "== $f"; tail -n 15 "$f"; }; done
    ss -N b1 -tan 2>/dev/null | head -20; ss -N a1 -tan 2>/dev/null | head -20
    tlshubctl status | grep -v ': 0$'; tlshubctl flows; dmesg | tail -n 20
}

# Every failure shows the servers' logs and the module's counters first.
fail() { trap - EXIT; diag >&2 || true; echo "FAIL: $*" >&2; topo_teardown; exit 1; }

dp_setup
tlshubctl node set n1 psk "$TOPO_DIR/psk" >/dev/null
tlshubctl node set n2 psk "$TOPO_DIR/psk" >/dev/null
ok "module serves n1 and n2, one secret for the pair"

m=$(new_marker)
declare -A big_sha
for pod in a1 b1; do
    mkdir -p "$TOPO_DIR/www-$pod"
    echo "$m-page-$pod" > "$TOPO_DIR/www-$pod/index.html"
    # 4 MiB (far beyond socket buffers and one sendfile chunk; the VM moves
    # about 0.5 MB/s): markers at the start, in the middle and at the end.
    { echo "$m-big-$pod-start"; head -c 2097152 /dev/urandom; echo "$m-big-$pod-middle"
      head -c 2097152 /dev/urandom; echo "$m-big-$pod-end"; } > "$TOPO_DIR/www-$pod/big.bin"
    sha=$(sha256sum "$TOPO_DIR/www-$pod/big.bin")
    big_sha[$pod]=${sha%% *}
done
chmod -R a+rX "$TOPO_DIR"/www-*
for pod in a1 b1; do
    nginx_sendfile "$pod" 8080
    app_iperf3_server "$pod" 5201
    app_echo_server "$pod" 7000
done
ok "servers up in a1 and b1: nginx (sendfile on), iperf3, socat echo"

before=$(tlshubctl status --json)
declare -A tx0 rx0
for pod in a1 b1; do tx0[$pod]=$(tls_stat "$pod" TlsTxSw); rx0[$pod]=$(tls_stat "$pod" TlsRxSw); done

pcap=$TOPO_DIR/link1.pcap
capture_start n1 link1 "$pcap"
markers=()
conns=0
for pair in "a1 b1" "b1 a1"; do
    read -r c s <<<"$pair"
    for fam in 4 6; do
        host=$(pod_addr "$s" $fam)
        ip=$( [ $fam = 4 ] && pod_ip4 "$s" || pod_ip6 "$s")
        what="$c -> $s IPv$fam"

        q="$m-url-$c$fam"
        body=$(pod_exec "$c" curl -sS -g --max-time 60 "http://$host:8080/index.html?$q") || fail "$what: curl small page"
        expect_eq "$what: page" "$m-page-$s" "$body"
        markers+=("$q" "$m-page-$s")

        sha=$(pod_exec "$c" curl -sS -g --max-time 300 "http://$host:8080/big.bin" | sha256sum) || fail "$what: curl big file"
        expect_eq "$what: sha256 of the 4 MiB file (sendfile)" "${big_sha[$s]}" "${sha%% *}"
        markers+=("$m-big-$s-start" "$m-big-$s-middle" "$m-big-$s-end")

        for rev in "" -R; do
            x="$m-iperf-$c$fam${rev:+R}"
            if [ "$pair$fam$rev" = "a1 b14" ]; then
                # The long transfer during which the flows are listed.
                pod_bg "$c" iperf3 -c "$ip" -p 5201 -t 20 -b 2M --forceflush --extra-data "$x" >"$TOPO_DIR/iperf3-long.log" 2>&1
                ipid=$BG_PID
                # Once the first second of data went through.
                wait_has 60 "$TOPO_DIR/iperf3-long.log" "sec " || fail "iperf3 did not start: $(cat "$TOPO_DIR/iperf3-long.log")"
                flows=$(tlshubctl flows --json) || fail "tlshubctl flows --json"
                wait "$ipid" || fail "$what: iperf3 $rev: $(cat "$TOPO_DIR/iperf3-long.log")"
                n=$(jq --arg a "$(pod_ip4 a1)" --arg b "$(pod_ip4 b1)" '[.[] | select(.remote_port == 5201 and .local_ip == $a and .remote_ip == $b
                        and .role == "client" and .peer_node == "n2" and .cipher == "aes-128-gcm" and .state == "secured"
                        and .local_pod == "default/a1" and .remote_pod == "default/b1")] | length' <<<"$flows")
                [ "$n" -ge 1 ] || fail "flows --json during iperf3: no secured client flow a1 -> b1:5201 (peer n2, aes-128-gcm): $flows"
                n=$(jq --arg a "$(pod_ip4 a1)" --arg b "$(pod_ip4 b1)" '[.[] | select(.local_port == 5201 and .local_ip == $b and .remote_ip == $a
                        and .role == "server" and .peer_node == "n1" and .cipher == "aes-128-gcm" and .state == "secured")] | length' <<<"$flows")
                [ "$n" -ge 1 ] || fail "flows --json during iperf3: no secured server flow b1:5201 <- a1 (peer n1): $flows"
                ok "tlshubctl flows --json during iperf3 a1 -> b1 lists both ends: client (peer n2) and server (peer n1), aes-128-gcm, secured"
            else
                out=$(pod_exec "$c" iperf3 -c "$ip" -p 5201 -t 2 -b 4M $rev --extra-data "$x" 2>&1) || fail "$what: iperf3 $rev: $out"
            fi
            markers+=("$x")
        done

        e="$m-echo-$c$fam"
        expect_eq "$what: echo" "$e" "$(app_echo "$c" "$host" 7000 "$e")"
        markers+=("$e")
        conns=$((conns + 7))   # page, file, 2 x iperf3 (control + data), echo
        ok "$what: curl page, curl 4 MiB (sha256 ok), iperf3, iperf3 -R, socat echo"
    done
done
capture_stop
[ "$CAPTURE_DROPPED" = 0 ] || fail "the capture dropped $CAPTURE_DROPPED packets: the wire proof needs all of them"

margs=()
for x in "${markers[@]}"; do margs+=(--marker "$x"); done
out=$(tlswire "$pcap" --expect tls --min-conns "$conns" "${margs[@]}") || { echo "$out"; fail "the wire is not TLS-only"; }
echo "$out" | tail -2
ok "wire (link1): $conns connections, every byte a TLS record, none of ${#markers[@]} markers"

for pod in a1 b1; do
    tx=$(tls_stat "$pod" TlsTxSw) rx=$(tls_stat "$pod" TlsRxSw)
    [ "$tx" -ge $((tx0[$pod] + conns)) ] || fail "$pod TlsTxSw rose from ${tx0[$pod]} to $tx, expected +$conns"
    [ "$rx" -ge $((rx0[$pod] + conns)) ] || fail "$pod RxSw rose from ${rx0[$pod]} to $rx, expected +$conns"
    [ "$(tls_stat "$pod" TlsDecryptError)" = 0 ] || fail "$pod TlsDecryptError $(tls_stat "$pod" TlsDecryptError)"
done
ok "kTLS in both pods: TlsTxSw/TlsRxSw +$conns or more, no decrypt error"

after=$(tlshubctl status --json)
s0=$(stat_of "$before" flows_secured) s1=$(stat_of "$after" flows_secured)
[ -n "$s0" ] && [ -n "$s1" ] || fail "no flows_secured in status --json: $after"
[ "$s1" -ge $((s0 + 2 * conns)) ] || fail "flows-secured rose from $s0 to $s1, expected +$((2 * conns)) (both ends)"
for k in install_failures reset_key_timeout reset_install reset_stale_sender reset_unsupported reset_unload; do
    expect_eq "status $k" 0 "$(stat_of "$after" $k)"
done
ok "tlshubctl status: flows_secured $s0 -> $s1, install_failures 0, no resets"

topo_teardown
unload_module
