# Helpers for tests/two-node/agent.sh (sourced after lib.sh): the cluster's
# certificates, made with the openssl CLI, and the node's TLSHub agent
# (tlshubd) run in the background with its log in a file.
#
#   ag_pki DIR            a cluster CA and node certificates n1, n2 (SAN
#                         DNS:nN, serverAuth+clientAuth), plus, for the
#                         failure cases, rogue-n2 (n2 by another CA),
#                         evil-n2 (the real CA, SAN DNS:n3) and expired-n2
#                         (the real CA, SAN DNS:n2, expired yesterday)
#   ag_start [CERT [CA]]  start tlshubd for this node (default: nN.pem, ca.pem
#                         from $AG_PKI) logging to $AG_LOG (appended); AG_PID;
#                         AG_RETRY: its --connect-retry (default 4 s);
#                         AG_NODE, AG_MAPPING, AG_LISTEN: --node (default
#                         this node), --mapping, --listen
#   ag_stop [SIGNAL]      stop it (default TERM) and wait for it
#   ag_count TEXT         lines of this node's agent log containing TEXT
#   ag_wait TEXT N [SECS] until ag_count TEXT reaches N
#   ag_stat NAME          a counter of `tlshubctl status --json` (key_waits, ...)
#   ag_peer FIELD         this node's kernel view of the peer (state, epoch, ...)
# fail (lib.sh) also prints the agent log's tail.

AG_PID= AG_LOG= AG_PKI=

ag_pki() {
    local d=$1 n ext
    mkdir -p "$d"
    ext=$d/ext.cnf
    _ag_ca "$d/ca" "tlshub test cluster CA"
    _ag_ca "$d/rogue-ca" "some other cluster CA"
    for n in n1 n2; do _ag_leaf "$d/$n" "$d/ca" "$n"; done
    _ag_leaf "$d/rogue-n2" "$d/rogue-ca" n2
    _ag_leaf "$d/evil-n2" "$d/ca" n3
    _ag_leaf "$d/expired-n2" "$d/ca" n2 -1
    chmod 644 "$d"/*.key
}
_ag_ca() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -keyout "$1.key" -out "$1.pem" -subj "/CN=$2" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
        2>/dev/null || fail "openssl: CA $2"
}
_ag_leaf() {
    local out=$1 ca=$2 name=$3 days=${4:-2}
    printf 'subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=critical,digitalSignature\nbasicConstraints=CA:FALSE\n' \
        "$name" > "$out.ext"
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$name" \
        -keyout "$out.key" -out "$out.csr" 2>/dev/null || fail "openssl: key for $name"
    # days -1: not after = a day before not before (now): expired.
    openssl x509 -req -in "$out.csr" -CA "$ca.pem" -CAkey "$ca.key" -CAcreateserial -days "$days" \
        -extfile "$out.ext" -out "$out.pem" 2>/dev/null || fail "openssl: certificate for $name"
}

ag_start() {
    local cert=${1:-$AG_PKI/$TN_NODE.pem} ca=${2:-$AG_PKI/ca.pem}
    [ -z "$AG_PID" ] || fail "ag_start: an agent runs already ($AG_PID)"
    local started
    started=$(ag_count "listening on")
    echo "=== tlshubd start ($(basename "$cert"), CA $(basename "$ca"))" >> "$AG_LOG"
    local listen=()
    [ -z "${AG_LISTEN:-}" ] || listen=(--listen "$AG_LISTEN")
    tlshubd --node "${AG_NODE:-$TN_NODE}" --cert "$cert" --key "${cert%.pem}.key" --ca "$ca" \
        --mapping "${AG_MAPPING:-$TOPO_DIR/mapping.conf}" --lifetime "${AG_LIFETIME:-3600}" \
        --connect-retry "${AG_RETRY:-4}" "${listen[@]}" >> "$AG_LOG" 2>&1 &
    AG_PID=$!
    # Loading the binary over 9p can take long on a busy host.
    ag_wait "listening on" $((started + 1)) 180 || fail "tlshubd did not start"
}

ag_stop() {
    [ -n "$AG_PID" ] || return 0
    kill "-${1:-TERM}" "$AG_PID" 2>/dev/null || true
    wait "$AG_PID" 2>/dev/null || true
    AG_PID=
}

ag_count() { local n; n=$(grep -c -- "$1" "$AG_LOG" 2>/dev/null) || true; echo "${n:-0}"; }
_ag_reached() { [ "$(ag_count "$1")" -ge "$2" ]; }
ag_wait() { wait_for "${3:-60}" _ag_reached "$1" "$2"; }

# jq, not python: a python start costs seconds in a busy TCG guest.
ag_stat() { tlshubctl status --json | jq -r --arg k "$1" '.stats[$k]'; }
ag_peer() {
    tlshubctl node show --json |
        jq -r --arg n "$TN_PEER" --arg f "$1" '[.[] | select(.name == $n)][0][$f] // "-"'
}

eval "$(declare -f fail | sed '1s/^fail/_ag_tn_fail/')"
fail() {
    if [ -n "$AG_LOG" ] && [ -e "$AG_LOG" ]; then
        echo "--- [$TN_NODE] agent log (last 40 lines)" >&2
        tail -n 40 "$AG_LOG" >&2
    fi
    _ag_tn_fail "$@"
}
