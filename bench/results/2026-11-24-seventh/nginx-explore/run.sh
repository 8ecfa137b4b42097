#!/bin/bash
# boshd direct, behind nginx without upstream keepalive, and with it.
# usage: run.sh OUTDIR
set -u
out=$1; mkdir -p $out; B=/tmp/ngx
pids=()
cleanup() { for p in "${pids[@]}"; do kill $p 2>/dev/null; done; sleep 0.5; }
trap cleanup EXIT
$B/benchxmpp -listen 127.0.0.1:25222 > $out/benchxmpp.log 2>&1 & pids+=($!)
$B/boshd --listen 127.0.0.1:25280 --upstream localhost=127.0.0.1:25222 --upstream-tls plaintext --polling 0 \
  --max-wait 60s --inactivity 60s --log-level warn --max-sessions-per-ip 0 > $out/boshd.log 2>&1 & bpid=$!; pids+=($bpid)
sleep 1
mkconf() { # NAME KEEPALIVE(0/1)
  local d=$out/nginx-$1; mkdir -p $d/tmp; chmod -R 777 $d
  local up="" pass="http://127.0.0.1:25280/http-bind" conn=""
  if [[ $2 != 0 ]]; then
    up="upstream boshd { server 127.0.0.1:25280; keepalive $2; }"
    pass="http://boshd/http-bind"; conn='proxy_set_header Connection "";'
  fi
  cat > $d/nginx.conf <<CONF
worker_processes 1;
error_log $d/error.log warn;
pid $d/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $d/tmp; proxy_temp_path $d/tmp;
  $up
  server {
    listen 127.0.0.1:25290;
    location /http-bind {
      proxy_pass $pass;
      proxy_http_version 1.1;
      $conn
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_buffering off;
      tcp_nodelay on;
      proxy_read_timeout 90s;
    }
  }
}
CONF
}
load() { # LABEL URL ALSO args...
  local label=$1 url=$2 also=$3; shift 3
  $B/boshload --url $url --domain localhost --json $out/$label.json --pid $bpid ${also:+--also-pid $also} "$@" > $out/$label.out 2>&1
  echo "== $label"; grep -E "^  (round|poll|chat|push|cpu)" $out/$label.out | head -10
}
poll_args="--sessions 100 --rate 1000 --hold 0 --poll --chat-for 15s --duration 40s"
chat_args="--sessions 100 --rate 1000 --login user%d:password --pairs 50 --rate-per-pair 200 --chat-for 15s --drain 3s --duration 60s"
for rep in 1 2; do
  [[ -n ${NODIRECT:-} ]] || load direct-poll-$rep http://127.0.0.1:25280/http-bind "" $poll_args
  for ka in ${KAS:-0 32}; do
    mkconf ka$ka $ka
    nginx -c $out/nginx-ka$ka/nginx.conf -p $out/nginx-ka$ka || exit 1
    sleep 0.5
    npid=$(pgrep -P $(cat $out/nginx-ka$ka/nginx.pid) | head -1)
    load nginx-ka$ka-poll-$rep http://127.0.0.1:25290/http-bind "$npid" $poll_args
    load nginx-ka$ka-chat-$rep http://127.0.0.1:25290/http-bind "$npid" $chat_args
    kill $(cat $out/nginx-ka$ka/nginx.pid); sleep 1
  done
  [[ -n ${NODIRECT:-} ]] || load direct-chat-$rep http://127.0.0.1:25280/http-bind "" $chat_args
done
