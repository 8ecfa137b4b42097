# bench/lib/ports.sh: ports on 127.0.0.1 for the bench scripts, which
# source it.

# port_open PORT: whether something listens on 127.0.0.1:PORT.
port_open() { (: </dev/tcp/127.0.0.1/"$1") 2>/dev/null; }

# free_port: a TCP port below the ephemeral range that no socket uses
# (listening or not), so that no outgoing connection holds it either.
free_port() {
	local low p i
	read -r low _ </proc/sys/net/ipv4/ip_local_port_range
	for ((i = 0; i < 100; i++)); do
		p=$((10000 + RANDOM % (low - 10000)))
		if ! port_open "$p" && [[ -z $(ss -tanH "sport = :$p") ]]; then
			echo "$p"
			return
		fi
	done
	echo "bench: no free port found" >&2
	return 1
}

# wait_port PORT PID SECONDS: until PORT listens, PID dies or time is up.
wait_port() {
	local port=$1 pid=$2 i
	for ((i = 0; i < $3 * 10; i++)); do
		port_open "$port" && return 0
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}
