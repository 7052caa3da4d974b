#!/bin/bash
# The admission webhook's certificate without cert-manager, with openssl:
#
#   bash packaging/kubernetes/make-webhook-cert.sh DIR [--apply] [--days N]
#
# writes DIR/ca.crt, DIR/ca.key (a CA of its own: only the API server has to
# trust it), DIR/tls.crt and DIR/tls.key (the server certificate for
# ocigate-webhook.ocigate.svc[.cluster.local], EC P-256, serverAuth) and
# DIR/ca-bundle.b64 (caBundle). With --apply it also runs
#   kubectl -n ocigate create secret tls ocigate-webhook-tls ... (or replaces it)
#   kubectl patch mutatingwebhookconfiguration ocigate-image-rewrite (caBundle)
# (apply the manifests first, or run it again after). Run it again before
# --days (default 825) are over; ocigate picks the new files up by itself.
set -euo pipefail

dir=${1:?usage: make-webhook-cert.sh DIR [--apply] [--days N]}
shift
apply=no
days=825
svc=ocigate-webhook
ns=ocigate
while [ $# -gt 0 ]; do
	case "$1" in
	--apply) apply=yes; shift ;;
	--days) days=$2; shift 2 ;;
	*) echo "make-webhook-cert.sh: unknown argument $1" >&2; exit 2 ;;
	esac
done
mkdir -p "$dir"
umask 077

openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
	-keyout "$dir/ca.key" -out "$dir/ca.crt" -days "$days" \
	-subj "/CN=ocigate webhook CA" \
	-addext "basicConstraints=critical,CA:TRUE" \
	-addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
	-keyout "$dir/tls.key" -out "$dir/tls.csr" -subj "/CN=$svc.$ns.svc" 2>/dev/null
cat >"$dir/ext.cnf" <<EXT
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:$svc.$ns.svc,DNS:$svc.$ns.svc.cluster.local
EXT
openssl x509 -req -in "$dir/tls.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
	-CAcreateserial -out "$dir/tls.crt" -days "$days" -extfile "$dir/ext.cnf" 2>/dev/null
rm -f "$dir/tls.csr" "$dir/ext.cnf" "$dir/ca.srl"
base64 -w0 "$dir/ca.crt" >"$dir/ca-bundle.b64"
chmod 0644 "$dir/ca.crt" "$dir/tls.crt" "$dir/ca-bundle.b64"

if [ "$apply" = yes ]; then
	kubectl -n "$ns" create secret tls ocigate-webhook-tls \
		--cert="$dir/tls.crt" --key="$dir/tls.key" --dry-run=client -o yaml |
		kubectl apply -f -
	kubectl patch mutatingwebhookconfiguration ocigate-image-rewrite --type=json \
		-p "[{\"op\":\"replace\",\"path\":\"/webhooks/0/clientConfig/caBundle\",\"value\":\"$(cat "$dir/ca-bundle.b64")\"}]"
fi
echo "$dir/tls.crt $dir/tls.key $dir/ca.crt"
