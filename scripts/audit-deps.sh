#!/usr/bin/env bash
# The installed dependencies checked for known vulnerabilities with pip-audit (PyPA), from its own
# virtualenv (var/audit-venv) so it adds nothing to the project's.
#
# Policy (docs/development.md, "Dependencies"): a finding fails the run unless
# scripts/audit-ignore.txt lists its id with the reason and a date to look again. When the
# vulnerability service cannot be reached (a build network without PyPI's JSON API or OSV), the
# run says so loudly and does not fail: the check is then owed, not passed.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p var
AUDIT=var/audit-venv
if [ ! -x "$AUDIT/bin/pip-audit" ]; then
  python3 -m venv "$AUDIT"
  "$AUDIT/bin/pip" install -q pip-audit 2> var/audit-install.log
fi
.venv/bin/pip freeze --exclude-editable | grep -v '^-e ' > var/audit-requirements.txt
ignores=()
while read -r id _; do
  [ -n "$id" ] && ignores+=(--ignore-vuln "$id")
done < <(grep -v '^\s*#' scripts/audit-ignore.txt || true)
set +e
"$AUDIT/bin/pip-audit" -r var/audit-requirements.txt --no-deps --disable-pip --progress-spinner off \
  -f json -o var/pip-audit.json "${ignores[@]}" 2> var/pip-audit.log
rc=$?
set -e
if [ ! -s var/pip-audit.json ]; then
  echo "pip-audit: WARNING: no result; the vulnerability service was not reached (var/pip-audit.log):"
  tail -1 var/pip-audit.log
  echo "pip-audit: the dependency check is OWED for this run, not passed"
  exit 0
fi
"$AUDIT/bin/python" - <<'PY'
import json, sys
deps = json.load(open("var/pip-audit.json"))["dependencies"]
skipped = [d for d in deps if d.get("skip_reason")]
found = [(d["name"], d["version"], v["id"]) for d in deps for v in d.get("vulns", [])]
audited = len(deps) - len(skipped)
print(f"pip-audit: {audited} of {len(deps)} dependencies audited, {len(found)} known vulnerabilities")
for name, version, vid in found:
    print(f"pip-audit: {name} {version}: {vid} (fix it, or list it in scripts/audit-ignore.txt)")
if found:
    sys.exit(1)
if skipped:
    print(f"pip-audit: WARNING: {len(skipped)} could not be audited (the index has no record of "
          f"them, e.g. {skipped[0]['skip_reason']!r}): the check is OWED for those, not passed")
PY
exit 0
