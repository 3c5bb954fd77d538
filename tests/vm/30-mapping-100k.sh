# Replace the table with 100k pods (IPv4 + IPv6 each), dump it back
# identical, look entries up, then replace it again with a small table.
. ./lib.sh
load_module
gen_mapping 100000 > /tmp/big.conf
t0=$(date +%s.%N)
expect_eq "load 100k" "Loaded 100000 pod-node mappings from /tmp/big.conf" "$(tlshubctl mapping load /tmp/big.conf)"
t1=$(date +%s.%N)
tlshubctl mapping show > /tmp/show
t2=$(date +%s.%N)
echo "bench: push 100k: $(echo "$t1 - $t0" | bc)s, dump 100k (mapping show): $(echo "$t2 - $t1" | bc)s"
ref_table /tmp/big.conf > /tmp/ref
cmp /tmp/show /tmp/ref || fail "100k table dump differs"
# Every address survives the round trip: the dump as JSON against the file.
tlshubctl mapping show --json > /tmp/show.json
python3 - /tmp/big.conf /tmp/show.json <<'PY' || fail "100k JSON dump differs"
import ipaddress, json, sys
want = []
for line in open(sys.argv[1]):
    pod, node, *ips = line.split()
    want.append((pod, node, sorted(str(ipaddress.ip_address(i)) for i in ips)))
doc = json.load(open(sys.argv[2]))
pods = doc["pods"] if isinstance(doc, dict) else doc
got = [(p["name"], p["node"], sorted(str(ipaddress.ip_address(i)) for i in p.get("ips", []))) for p in pods]
if got != want:
    print(f"{len(got)} entries vs {len(want)}; first difference:",
          next(((g, w) for g, w in zip(got, want) if g != w), None))
    sys.exit(1)
PY
expect_eq "lookup pod-77777" "node-27" "$(tlshubctl mapping lookup pod-77777)"
expect_eq "lookup 10.1.134.159" "node-$(( 99999 % 50 ))" "$(tlshubctl mapping lookup 10.1.134.159)"
expect_eq "lookup fd00::1:869f" "node-$(( 99999 % 50 ))" "$(tlshubctl mapping lookup fd00::1:869f)"
# Replace again: the old entries are gone.
tlshubctl mapping load ../data/seed-example.conf >/dev/null
tlshubctl mapping lookup pod-5 >/dev/null 2>&1 && fail "old entry survived replace"
expect_eq "after replace" "node-2" "$(tlshubctl mapping lookup api-pod-1)"
