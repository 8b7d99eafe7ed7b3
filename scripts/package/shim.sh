#!/bin/sh
# bin/msp-handler: the command every HandlerManifest.json verb names. It runs
# the handler binary built for this machine's architecture
# (bin/<arch>/msp-handler) with the same arguments, so one package serves
# amd64 and arm64 VMs and the manifest stays architecture-free.
set -eu
machine=$(uname -m)
case "$machine" in
x86_64 | amd64) arch=amd64 ;;
aarch64 | arm64) arch=arm64 ;;
*)
	echo "msp-handler: unsupported machine architecture '$machine': this package carries x86_64 (amd64) and aarch64 (arm64) binaries only" >&2
	exit 6 # GPA's "unsupported OS" exit code (handler-contract.md §8.6)
	;;
esac
dir=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
handler="$dir/$arch/msp-handler"
if [ ! -x "$handler" ]; then
	# waagent sets u+x on extracted files; a hand-unpacked zip may not.
	chmod u+x "$handler" 2>/dev/null || true
fi
exec "$handler" "$@"
