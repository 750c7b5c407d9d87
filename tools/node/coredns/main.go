// CoreDNS with only the plugins the test cluster's DNS uses (tools/cluster/node_config.py
// writes its Corefile): the kubernetes plugin answers for cluster.local, and nothing is
// forwarded, so no query leaves this machine. A custom main as CoreDNS documents for
// choosing plugins at compile time; it builds in a fraction of the time of the full
// binary (no cloud DNS providers, no forward, no dnstap). Built by ../build.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
)

// The order a query passes the plugins in: the order of CoreDNS's own plugin.cfg.
var directives = []string{
	"bind",
	"ready",
	"errors",
	"log",
	"cache",
	"kubernetes",
}

func init() {
	dnsserver.Directives = directives
}

func main() {
	coremain.Run()
}
