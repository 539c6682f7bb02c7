#!/usr/bin/env bash
# Agent Chat UI (built from its source) answering plangate's requests, in headless Chromium.
#
#   examples/agent-chat-ui/check.sh [OUT]        screenshots and a summary go to OUT (./chat-ui-check)
#
# Needs: plangate installed with the server extra (pip install '.[server]'), Node.js 20 with npx,
# git, and a Chromium (Debian's `chromium`, or set CHROMIUM). CHAT_UI_DIR names a checkout of
# langchain-ai/agent-chat-ui to use (else it is cloned, at CHAT_UI_COMMIT); its dependencies are
# installed from the npm registry with its own lockfile. Ports: API_PORT (2124), UI_PORT (3124).
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
OUT="$(mkdir -p "${1:-chat-ui-check}" && cd "${1:-chat-ui-check}" && pwd)"
WORK="$(mktemp -d)"
CHAT_UI_DIR="${CHAT_UI_DIR:-$WORK/agent-chat-ui}"
CHAT_UI_COMMIT="${CHAT_UI_COMMIT:-fdc87e6}"
API_PORT="${API_PORT:-2124}"
UI_PORT="${UI_PORT:-3124}"
PIDS=()
stop() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap stop EXIT

if [ ! -d "$CHAT_UI_DIR" ]; then
  git clone --quiet https://github.com/langchain-ai/agent-chat-ui "$CHAT_UI_DIR"
  git -C "$CHAT_UI_DIR" checkout --quiet "$CHAT_UI_COMMIT"
fi
if [ ! -d "$CHAT_UI_DIR/node_modules" ]; then
  # The pnpm its package.json names (`packageManager`), with its lockfile.
  (cd "$CHAT_UI_DIR" && npx --yes "$(node -p "require('./package.json').packageManager")" \
    install --frozen-lockfile)
fi

# The demo project, served by LangGraph's dev server under `smb`: the send waits for a person.
plangate init --demo "$WORK/project" >/dev/null
(cd "$WORK/project" && PLANGATE_PROFILE=smb LANGGRAPH_CLI_NO_ANALYTICS=1 \
  langgraph dev --host 127.0.0.1 --port "$API_PORT" --no-browser --no-reload \
  >"$OUT/langgraph-dev.log" 2>&1) &
PIDS+=($!)
(cd "$CHAT_UI_DIR" && NEXT_PUBLIC_API_URL="http://127.0.0.1:$API_PORT" \
  NEXT_PUBLIC_ASSISTANT_ID=plangate NEXT_TELEMETRY_DISABLED=1 \
  npx next dev --hostname 127.0.0.1 --port "$UI_PORT" >"$OUT/next-dev.log" 2>&1) &
PIDS+=($!)

python "$HERE/check.py" --api "http://127.0.0.1:$API_PORT" --ui "http://127.0.0.1:$UI_PORT" \
  --plan "$WORK/project/sales_followup.yaml" --out "$OUT"
