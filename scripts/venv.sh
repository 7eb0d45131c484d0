# Sourced by scripts that run Python against real daemons (functional tests, benchmarks):
# creates tests-functional/.venv with the pinned requirements when missing or stale, and installs
# the npm packages of the Helia peers.
venv=tests-functional/.venv
req=tests-functional/requirements.txt
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$req" "$venv/.requirements"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
  cp "$req" "$venv/.requirements"
fi

js=tests-functional/js
if [ -f "$js/package-lock.json" ] && { [ ! -d "$js/node_modules" ] || [ "$js/package-lock.json" -nt "$js/node_modules/.package-lock.json" ]; }; then
  (cd "$js" && npm ci --no-audit --no-fund --loglevel=error)
fi
