#!/bin/sh
# Create the example overlay's secret files (never committed: secrets/ is gitignored):
#   secrets/cluster-secret   32 random bytes, hex: the cluster secret every node and gateway
#                            proves (--cluster-secret-file)
#   secrets/keys             an admin key and a write key for the gateways (--keys)
#   secrets/tls.crt, tls.key a self-signed certificate for the gateways' TLS port
# Existing files are kept. Usage: ./make-secrets.sh [DIR]   (default: secrets next to this file)
set -eu
dir=${1:-"$(dirname "$0")/secrets"}
mkdir -p "$dir"
umask 077
[ -s "$dir/cluster-secret" ] || openssl rand -hex 32 >"$dir/cluster-secret"
if [ ! -s "$dir/keys" ]; then
    {
        echo "# scope prefix key (gateway/authkeys.h)"
        echo "admin / $(openssl rand -hex 24)"
        echo "write / $(openssl rand -hex 24)"
    } >"$dir/keys"
fi
if [ ! -s "$dir/tls.crt" ] || [ ! -s "$dir/tls.key" ]; then
    openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj "/CN=headwater.example.com" \
        -keyout "$dir/tls.key" -out "$dir/tls.crt" 2>/dev/null
fi
echo "secrets in $dir"
