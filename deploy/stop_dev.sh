#!/usr/bin/env bash
# Stops the stack that deploy/start_dev.sh started. Volumes (database, objects, Redis, Dapr
# scheduler) are kept unless --purge is given; deploy/.env.dev is always kept.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
ENV_FILE=deploy/.env.dev

down_args=()
case "${1:-}" in
  "") ;;
  --purge) down_args+=(--volumes) ;;
  *)
    echo "usage: deploy/stop_dev.sh [--purge]" >&2
    exit 2
    ;;
esac

if [[ -f "$ENV_FILE" ]]; then
  docker compose --env-file "$ENV_FILE" down ${down_args[@]+"${down_args[@]}"}
else
  # docker-compose.yml insists on these secrets even to tear down; their values do not matter here.
  VAULT_KEYS=unused APP_API_TOKEN=unused DAPR_API_TOKEN=unused MODELPLANE_API_CLIENT_SECRET=unused \
    KEYCLOAK_ADMIN_CLIENT_SECRET=unused \
    docker compose down ${down_args[@]+"${down_args[@]}"}
fi
