package config_test

import (
	"fmt"

	"github.com/boshd/boshd/config"
)

func ExampleConfig_Validate() {
	cfg := config.Default()
	cfg.MaxWait = 0
	cfg.LogLevel = "loud"
	fmt.Println(cfg.Validate())
	// Output:
	// config: max_wait: must be between 1s and 1h, got "0s"
	// config: log_level: must be debug, info, warn or error, got "loud"
}

func ExampleSettings() {
	for _, s := range config.Settings() {
		if s.Reloadable {
			fmt.Printf("%s (--%s, %s)\n", s.Key, s.Flag(), s.Env())
		}
	}
	// Output:
	// cors_origins (--cors-origins, BOSHD_CORS_ORIGINS)
	// trusted_proxies (--trusted-proxies, BOSHD_TRUSTED_PROXIES)
	// cluster_secret_file (--cluster-secret-file, BOSHD_CLUSTER_SECRET_FILE)
	// upstreams (--upstreams, BOSHD_UPSTREAMS)
	// route_allow (--route-allow, BOSHD_ROUTE_ALLOW)
	// max_sessions (--max-sessions, BOSHD_MAX_SESSIONS)
	// max_sessions_per_ip (--max-sessions-per-ip, BOSHD_MAX_SESSIONS_PER_IP)
}
