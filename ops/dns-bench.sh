#!/usr/bin/env bash
# Geo DNS answers per CPU-second, side by side: Arbor's origin DNS and PowerDNS with its geoip
# backend (Debian pdns-server + pdns-backend-geoip), answering the same steered name
# (edge.arbor.test) from the same synthetic MaxMind database and the same three-region
# topology, measured by dnsperf sending an EDNS client subnet with every query.
#
#   ops/dns-bench.sh [seconds per run]        (default 10)
#
# Environment:
#   ARBOR_BIN_DIR         arbor, arbor-origin and arbor-edge (default: $CARGO_TARGET_DIR/release,
#                         or target/release; built with `cargo build --release` if missing)
#   DNS_BENCH_CLIENTS     dnsperf clients (default 8)
#   DNS_BENCH_OUTSTANDING dnsperf outstanding queries (default 256)
#   DNS_BENCH_IP_BASE     the loopback network `arbor up` binds (default 127.42)
#
# What it does: installs dnsperf, pdns-server, pdns-backend-geoip and dig through apt if they
# are missing; starts `arbor up --edges 3 --no-impair` (the origin's response rate limit off:
# every query comes from one address); writes a PowerDNS geoip zone from the cluster's
# cluster.json (service edge.arbor.test → '%cc.regions.arbor.test', one A record per region,
# %cc being the region name the database stores as country.iso_code) and starts pdns_server
# on the same database; checks with dig that both answer each region's client subnet with the
# same edge; then for each server runs dnsperf with ECS for one region's subnet and reads the
# server's CPU time (utime + stime of its process, /proc/<pid>/stat) before and after.
#
# Output: one line per run and a Markdown table: answers/s, server CPU seconds, answers per
# CPU-second. PowerDNS runs twice: as shipped (packet cache on: repeated queries from one
# subnet are answered from the cache) and with the packet cache off (every answer computed,
# which is what Arbor always does).
set -euo pipefail

seconds="${1:-10}"
clients="${DNS_BENCH_CLIENTS:-8}"
outstanding="${DNS_BENCH_OUTSTANDING:-256}"
ip_base="${DNS_BENCH_IP_BASE:-127.42}"
pdns_port=7953
root="$(cd "$(dirname "$0")/.." && pwd)"

need=()
command -v dnsperf >/dev/null || need+=(dnsperf)
command -v pdns_server >/dev/null || need+=(pdns-server)
ls /usr/lib/*/pdns/libgeoipbackend.so >/dev/null 2>&1 || need+=(pdns-backend-geoip)
command -v dig >/dev/null || need+=(bind9-dnsutils)
if ((${#need[@]})); then
  echo "installing ${need[*]}" >&2
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get install -y --no-install-recommends "${need[@]}" >&2
fi

bin="${ARBOR_BIN_DIR:-${CARGO_TARGET_DIR:-$root/target}/release}"
if ! [ -x "$bin/arbor" ] || ! [ -x "$bin/arbor-origin" ] || ! [ -x "$bin/arbor-edge" ]; then
  echo "building release binaries into $bin" >&2
  (cd "$root" && cargo build --release -p arbor-ops -p arbor-origin -p arbor-edge >&2)
fi

work="$(mktemp -d /tmp/arbor-dns-bench.XXXXXX)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The cluster: origin (with DNS) and three edges, which register and heartbeat as usual.
ARBOR_ORIGIN_DNS_RRL_RESPONSES_PER_S=0 ARBOR_ORIGIN_LOG_LEVEL=warn \
  "$bin/arbor" --data-dir "$work/cluster" up --edges 3 --no-impair --ip-base "$ip_base" \
  --origin-bin "$bin/arbor-origin" --edge-bin "$bin/arbor-edge" >"$work/up.log" 2>&1 &
pids+=($!)
for _ in $(seq 300); do
  [ -s "$work/cluster/cluster.json" ] && break
  kill -0 "${pids[0]}" 2>/dev/null || { cat "$work/up.log" >&2; exit 1; }
  sleep 0.2
done
[ -s "$work/cluster/cluster.json" ] || { echo "arbor up did not start" >&2; cat "$work/up.log" >&2; exit 1; }

# One line per region: region, IPv4 subnet, the first edge's address; then the DNS address
# and the origin's pid.
python3 - "$work/cluster/cluster.json" >"$work/topology" <<'EOF'
import json, sys, urllib.parse
c = json.load(open(sys.argv[1]))
dns = c["dns"]
for r in dns["regions"]:
    edge = next(e for e in c["edges"] if e["region"] == r["region"])
    host = urllib.parse.urlsplit(edge["http_url"]).hostname
    print("region", r["region"], r["client_subnet"], host)
host, port = dns["addr"].rsplit(":", 1)
print("dns", host, port, c["origin"]["pid"], dns["zone"])
EOF
read -r _ arbor_host arbor_port arbor_pid zone < <(grep '^dns ' "$work/topology")

# PowerDNS: the same zone, steered by the region name in the same database.
{
  echo "domains:"
  echo "- domain: $zone"
  echo "  ttl: 30"
  echo "  records:"
  echo "    $zone:"
  echo "      - soa: ns1.$zone hostmaster.$zone 1 3600 600 86400 30"
  echo "      - ns: ns1.$zone"
  echo "    ns1.$zone:"
  echo "      - a: $arbor_host"
  first=""
  while read -r _ region _ ip; do
    echo "    $region.regions.$zone:"
    echo "      - a: $ip"
    [ -n "$first" ] || first="$ip"
  done < <(grep '^region ' "$work/topology")
  # Unknown clients: the first region's edge, as Arbor's default region.
  echo "    unknown.regions.$zone:"
  echo "      - a: $first"
  echo "  services:"
  echo "    edge.$zone: '%cc.regions.$zone'"
} >"$work/zones.yaml"

start_pdns() { # $1: extra flags
  mkdir -p "$work/pdns"
  # shellcheck disable=SC2086
  pdns_server --no-config --daemon=no --guardian=no --disable-syslog --write-pid=no \
    --socket-dir="$work/pdns" --local-address="$arbor_host" --local-port="$pdns_port" \
    --launch=geoip --geoip-zones-file="$work/zones.yaml" \
    --geoip-database-files="mmdb:$work/cluster/geo.mmdb" --edns-subnet-processing=yes \
    --loglevel=3 $1 >"$work/pdns.log" 2>&1 &
  pdns_pid=$!
  pids+=("$pdns_pid")
  for _ in $(seq 100); do
    dig +short +time=1 +tries=1 @"$arbor_host" -p "$pdns_port" "$zone" SOA >/dev/null 2>&1 && return
    sleep 0.1
  done
  echo "pdns_server did not start" >&2; cat "$work/pdns.log" >&2; exit 1
}

stop_pdns() {
  kill "$pdns_pid" 2>/dev/null || true
  wait "$pdns_pid" 2>/dev/null || true
}

# Both servers answer each region's subnet with that region's edge.
check() { # $1: port
  local ok=1
  while read -r _ region subnet ip; do
    got="$(dig +short +time=2 +tries=1 @"$arbor_host" -p "$1" "edge.$zone" A +subnet="$subnet" | tail -1)"
    if [ "$got" != "$ip" ]; then
      echo "port $1: $subnet ($region) got '$got', want $ip" >&2
      ok=0
    fi
  done < <(grep '^region ' "$work/topology")
  [ "$ok" = 1 ]
}

cpu_seconds() { # $1: pid → utime+stime of the process, in seconds
  python3 - "$1" <<'EOF'
import os, sys
fields = open(f"/proc/{sys.argv[1]}/stat").read().rsplit(")", 1)[1].split()
print((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))
EOF
}

# ECS for the first region's subnet: family 1, source /24, scope 0, three address bytes.
read -r _ _ bench_subnet _ < <(grep '^region ' "$work/topology" | head -1)
ecs_hex="$(python3 -c "import ipaddress,sys; n=ipaddress.ip_network(sys.argv[1]); print('0001%02x00' % n.prefixlen + n.network_address.packed[:(n.prefixlen+7)//8].hex())" "$bench_subnet")"
echo "edge.$zone A" >"$work/queries"

run() { # $1: name, $2: port, $3: server pid → one table row
  local before after
  before="$(cpu_seconds "$3")"
  dnsperf -s "$arbor_host" -p "$2" -d "$work/queries" -l "$seconds" -c "$clients" \
    -q "$outstanding" -E "8:$ecs_hex" >"$work/dnsperf.out" 2>&1
  after="$(cpu_seconds "$3")"
  cat "$work/dnsperf.out" >&2
  python3 - "$1" "$before" "$after" "$work/dnsperf.out" <<'EOF'
import re, sys
name, before, after, path = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
out = open(path).read()
completed = int(re.search(r"Queries completed:\s+(\d+)", out).group(1))
lost = int(re.search(r"Queries lost:\s+(\d+)", out).group(1))
qps = float(re.search(r"Queries per second:\s+([\d.]+)", out).group(1))
noerror = re.search(r"NOERROR (\d+)", out)
cpu = after - before
per_cpu = completed / cpu if cpu > 0 else 0
print(f"{name}|{qps:.0f}|{cpu:.2f}|{per_cpu:.0f}|{completed}|{lost}|{noerror.group(1) if noerror else 0}")
EOF
}

check "$arbor_port" || { echo "Arbor's answers are wrong" >&2; exit 1; }
start_pdns ""
check "$pdns_port" || { echo "PowerDNS's answers are wrong" >&2; exit 1; }
stop_pdns

results=()
results+=("$(run "Arbor origin (hickory, steer)" "$arbor_port" "$arbor_pid")")
start_pdns ""
results+=("$(run "PowerDNS 4.7 geoip, packet cache on" "$pdns_port" "$pdns_pid")")
stop_pdns
start_pdns "--cache-ttl=0 --query-cache-ttl=0 --negquery-cache-ttl=0"
results+=("$(run "PowerDNS 4.7 geoip, no packet cache" "$pdns_port" "$pdns_pid")")
stop_pdns

echo
echo "dnsperf -l $seconds -c $clients -q $outstanding -E 8:$ecs_hex (ECS $bench_subnet), $(nproc) cores"
echo
echo "| server | answers/s | server CPU s | answers per CPU-second | completed | lost | NOERROR |"
echo "|---|---|---|---|---|---|---|"
for r in "${results[@]}"; do echo "| ${r//|/ | } |"; done
