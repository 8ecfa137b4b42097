#!/bin/bash
# N idle sessions through nginx with worker_connections WC: run.sh N WC OUT
set -u
n=$1; wc=$2; out=$3; B=/tmp/ngx; mkdir -p $out/tmp; chmod -R 777 $out
ulimit -n 20000
$B/benchxmpp -listen 127.0.0.1:26222 > $out/benchxmpp.log 2>&1 & bx=$!
$B/boshd --listen 127.0.0.1:26280 --upstream localhost=127.0.0.1:26222 --upstream-tls plaintext \
  --max-wait 60s --inactivity 60s --log-level warn --max-sessions-per-ip 0 --max-sessions 9000 > $out/boshd.log 2>&1 & bpid=$!
cat > $out/nginx.conf <<CONF
worker_processes 1;
worker_rlimit_nofile 20000;
error_log $out/error.log warn;
pid $out/nginx.pid;
events { worker_connections $wc; }
http {
  access_log off;
  client_body_temp_path $out/tmp; proxy_temp_path $out/tmp;
  upstream boshd { server 127.0.0.1:26280; keepalive 256; keepalive_timeout 30s; }
  server {
    listen 127.0.0.1:26290;
    location /http-bind {
      proxy_pass http://boshd/http-bind;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      tcp_nodelay on;
      proxy_read_timeout 90s;
    }
  }
}
CONF
sleep 1
nginx -c $out/nginx.conf -p $out; sleep 0.5
w=$(pgrep -P $(cat $out/nginx.pid) | head -1)
$B/boshload --url ${URL:-http://127.0.0.1:26290/http-bind} --domain localhost --sessions $n --rate 1000 --login 'user%d:password' \
  --max-setup 64 --settle 10s --pid $bpid --also-pid $w --exit-after-sample --duration 120s --json $out/idle.json > $out/idle.out 2>&1
grep -E "^  (established|failures|pid|stack)|^ +[0-9]+ +[a-z]" $out/idle.out
grep -c "worker_connections" $out/error.log
kill $(cat $out/nginx.pid) $bpid $bx; sleep 1
