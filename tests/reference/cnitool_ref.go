// A reference caller for the cnitool tests: the command line of upstream's
// cnitool (containernetworking/cni cnitool/), driving Debian's libcni
// (golang-github-appc-cni-dev) so that the tests compare our cnitool with the
// library that defines the result cache.  Written for the tests, built offline
// by tests/integration/tools/cnitool_ref.py; CNITOOL_CACHE_DIR moves the cache
// as it does for our cnitool.  libcni 1.1.2 has no GC or STATUS.
package main

import (
	"context"
	"crypto/sha512"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
)

func fail(err error) {
	fmt.Fprintf(os.Stderr, "%s\n", err)
	os.Exit(1)
}

func main() {
	if len(os.Args) < 4 {
		fail(fmt.Errorf("usage: %s add|check|del <net> <netns>", os.Args[0]))
	}
	dir := os.Getenv("NETCONFPATH")
	if dir == "" {
		dir = "/etc/cni/net.d"
	}
	list, err := libcni.LoadConfList(dir, os.Args[2])
	if err != nil {
		fail(err)
	}
	rt := &libcni.RuntimeConf{IfName: os.Getenv("CNI_IFNAME")}
	if rt.IfName == "" {
		rt.IfName = "eth0"
	}
	if caps := os.Getenv("CAP_ARGS"); caps != "" {
		if err := json.Unmarshal([]byte(caps), &rt.CapabilityArgs); err != nil {
			fail(err)
		}
	}
	if args := os.Getenv("CNI_ARGS"); args != "" {
		for _, pair := range strings.Split(args, ";") {
			kv := strings.Split(pair, "=")
			if len(kv) != 2 || kv[0] == "" || kv[1] == "" {
				fail(fmt.Errorf("invalid CNI_ARGS pair %q", pair))
			}
			rt.Args = append(rt.Args, [2]string{kv[0], kv[1]})
		}
	}
	if rt.NetNS, err = filepath.Abs(os.Args[3]); err != nil {
		fail(err)
	}
	sum := sha512.Sum512([]byte(rt.NetNS))
	rt.ContainerID = fmt.Sprintf("cnitool-%x", sum[:10])
	cacheDir := os.Getenv("CNITOOL_CACHE_DIR")
	cni := libcni.NewCNIConfigWithCacheDir(filepath.SplitList(os.Getenv("CNI_PATH")), cacheDir, nil)
	ctx := context.Background()
	switch os.Args[1] {
	case "add":
		result, err := cni.AddNetworkList(ctx, list, rt)
		if result != nil {
			_ = result.Print()
		}
		if err != nil {
			fail(err)
		}
	case "check":
		if err := cni.CheckNetworkList(ctx, list, rt); err != nil {
			fail(err)
		}
	case "del":
		if err := cni.DelNetworkList(ctx, list, rt); err != nil {
			fail(err)
		}
	default:
		fail(fmt.Errorf("unknown command %q", os.Args[1]))
	}
}
