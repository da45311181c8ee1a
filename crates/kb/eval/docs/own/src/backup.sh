#!/usr/bin/env bash
# Nightly backup of the photo archive to the external disk.
# Keeps the last 7 daily copies; older ones are deleted.
set -euo pipefail

SRC=/home/kim/Fotos
DEST=/mnt/extern/backup
KEEP=7

# Abort when the external disk is not mounted, so we never fill the root file system.
mountpoint -q /mnt/extern || { echo "external disk not mounted" >&2; exit 1; }

stamp=$(date +%F)
rsync -a --delete --link-dest="$DEST/latest" "$SRC/" "$DEST/$stamp/"
ln -sfn "$DEST/$stamp" "$DEST/latest"

# Remove copies beyond the newest $KEEP.
ls -1d "$DEST"/20* | sort | head -n -"$KEEP" | xargs -r rm -rf
