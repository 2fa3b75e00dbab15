#!/usr/bin/env bash
# After the suite: no admin token, consumer key, Stripe secret key or webhook
# signing secret, or test card number may appear
# in what the tests leave behind (screenshots, driver logs, package test
# output) or in the demo's data directory. Exits non-zero naming the file.
set -euo pipefail
cd "$(dirname "$0")/.."
PATTERNS=(
  'tga_[0-9a-z]{26}_[A-Za-z0-9_-]{20,}'   # admin tokens
  'tg_[0-9a-z]{12}_[A-Za-z0-9_-]{20,}'    # consumer keys
  '(sk|rk)_(test|live)_[A-Za-z0-9]{10,}'  # Stripe secret and restricted keys
  'whsec_[A-Za-z0-9_]{10,}'               # Stripe webhook signing secrets
  '4242424242424242|4000000000000002|4000000000009995|4000000000000069|4000000000000127|4000000000000341|5555555555554444'
)
DIRS=()
for d in test-artifacts .demo/console; do [ -d "$d" ] && DIRS+=("$d"); done
[ ${#DIRS[@]} -eq 0 ] && { echo "scan-secrets: nothing to scan"; exit 0; }
found=0
for p in "${PATTERNS[@]}"; do
  if grep -rIlaE "$p" "${DIRS[@]}" 2>/dev/null; then found=1; fi
done
if [ "$found" -ne 0 ]; then
  echo "scan-secrets: the files above contain a secret" >&2
  exit 1
fi
echo "scan-secrets: no token, key or card number in ${DIRS[*]}"
