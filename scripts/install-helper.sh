#!/usr/bin/env bash
# Puts the pagefs command on the standard PATH that mount(8) gives mount helpers
# (/usr/local/bin), so that `mount -t fuse.pagefs` and fstab lines work: mount.fuse3
# runs the program named after the subtype. Idempotent; run as root.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
target=/usr/local/bin/pagefs
if [ "$(readlink -f "$target" 2>/dev/null)" != "$here/bin/pagefs.js" ]; then
  ln -sfn "$here/bin/pagefs.js" "$target"
  echo "install-helper: $target -> $here/bin/pagefs.js"
fi
