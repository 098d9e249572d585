#!/usr/bin/env bash
# Install the LiteLLM proxy in its own venv (bench/.venv-litellm), for side-by-side
# benchmarks only -- never in the product's environment. `pip install 'litellm[proxy]'`
# fails here (its extra pins a package the registry does not serve), so: download the
# pinned wheel, check its sha256, install it with the proxy's runtime deps by hand.
# Never litellm 1.82.7 or 1.82.8.
set -euo pipefail
cd "$(dirname "$0")"
VERSION=1.110.2
WHEEL_SHA256=${LITELLM_WHEEL_SHA256:-}
VENV=.venv-litellm
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
tmp=$(mktemp -d)
"$VENV/bin/pip" download -q --no-deps "litellm==$VERSION" -d "$tmp"
wheel=$(ls "$tmp"/litellm-"$VERSION"-*.whl)
actual=$(sha256sum "$wheel" | cut -d' ' -f1)
expected=$(cat litellm.sha256 2>/dev/null || true)
if [ -n "$WHEEL_SHA256" ]; then expected=$WHEEL_SHA256; fi
if [ -n "$expected" ] && [ "$actual" != "$expected" ]; then
  echo "litellm wheel sha256 $actual does not match $expected" >&2; exit 1
fi
echo "$actual" > litellm.sha256
"$VENV/bin/pip" install -q "$wheel" gunicorn uvicorn granian uvloop fastapi starlette backoff \
  pyyaml rq websockets orjson apscheduler PyJWT cryptography semver python-multipart \
  expression fastapi-sso mcp soundfile opentelemetry-api opentelemetry-sdk \
  litellm-enterprise prisma httptools
echo "litellm $VERSION installed in bench/$VENV (wheel sha256 $actual)"
