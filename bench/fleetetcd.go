package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"sluice/internal/fleet"
)

// grpcSentMetric counts the bytes etcd sent to its clients over gRPC:
// watch events, lease keepalive answers and the answers to every request.
const grpcSentMetric = "etcd_network_client_grpc_sent_bytes_total"

// etcdCluster is the fleet figures' etcd: n members on free loopback
// ports, each with a metrics listener, data under the bench's temporary
// directory.
type etcdCluster struct {
	procs   []*proc
	clients []string // client URLs
	metrics []string // metrics URLs
}

// etcdPorts are one member's client, peer and metrics ports.
type etcdPorts struct{ client, peer, metrics int }

// startEtcd starts an n-member cluster in dir and waits until a write
// succeeds. On failure it stops what it started.
func startEtcd(ctx context.Context, etcdBin, dir string, n int) (*etcdCluster, error) {
	ports := make([]etcdPorts, n)
	var initial []string
	for i := range ports {
		for _, p := range []*int{&ports[i].client, &ports[i].peer, &ports[i].metrics} {
			var err error
			if *p, err = freePort(); err != nil {
				return nil, err
			}
		}
		initial = append(initial, fmt.Sprintf("m%d=http://127.0.0.1:%d", i, ports[i].peer))
	}
	c := &etcdCluster{}
	for i, p := range ports {
		if err := c.startMember(ctx, etcdBin, dir, i, p, strings.Join(initial, ",")); err != nil {
			c.stop()
			return nil, err
		}
	}
	if err := c.waitWritable(ctx); err != nil {
		c.stop()
		return nil, err
	}
	return c, nil
}

// startMember starts member i with ports p.
func (c *etcdCluster) startMember(ctx context.Context, etcdBin, dir string, i int, p etcdPorts, initial string) error {
	mdir := filepath.Join(dir, fmt.Sprintf("etcd-m%d", i))
	if err := os.MkdirAll(mdir, 0o755); err != nil {
		return err
	}
	client := fmt.Sprintf("http://127.0.0.1:%d", p.client)
	peer := fmt.Sprintf("http://127.0.0.1:%d", p.peer)
	metrics := fmt.Sprintf("http://127.0.0.1:%d", p.metrics)
	argv := []string{etcdBin, "--name", fmt.Sprintf("m%d", i), "--data-dir", filepath.Join(mdir, "data"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", initial, "--initial-cluster-state", "new",
		"--listen-metrics-urls", metrics}
	pr, err := startProc(ctx, fmt.Sprintf("etcd m%d", i), mdir, argv, p.client, tcpListening)
	if err != nil {
		return err
	}
	c.procs = append(c.procs, pr)
	c.clients = append(c.clients, client)
	c.metrics = append(c.metrics, metrics+"/metrics")
	return nil
}

// waitWritable waits until the cluster takes a write: it has a leader.
func (c *etcdCluster) waitWritable(ctx context.Context) error {
	cli, err := fleet.Connect(fleet.Options{Endpoints: c.clients})
	if err != nil {
		return err
	}
	defer cli.Close()
	deadline := time.Now().Add(startTimeout)
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := cli.Put(pctx, "/bench/health", "ok")
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("etcd did not take a write within %v: %w", startTimeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// endpoints is the client URLs, for --etcd.
func (c *etcdCluster) endpoints() string { return strings.Join(c.clients, ",") }

// stop stops every member.
func (c *etcdCluster) stop() {
	for _, p := range c.procs {
		if p.stop() != nil {
			p.kill()
		}
	}
}

// cpu is the CPU time every member has used.
func (c *etcdCluster) cpu() (time.Duration, error) {
	var pids []int
	for _, p := range c.procs {
		pids = append(pids, p.cmd.Process.Pid)
	}
	return cpuTime(pids)
}

// sentBytes is what every member has sent to its clients over gRPC.
func (c *etcdCluster) sentBytes(ctx context.Context) (float64, error) {
	var total float64
	for _, u := range c.metrics {
		v, err := scrapeCounter(ctx, u, grpcSentMetric)
		if err != nil {
			return 0, err
		}
		total += v
	}
	return total, nil
}

// scrapeCounter reads url, a Prometheus text exposition, and sums the
// samples of the metric name.
func scrapeCounter(ctx context.Context, url, name string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	return sumSamples(resp.Body, name)
}

// sumSamples sums the samples of the metric name in r, a Prometheus text
// exposition; a metric that is absent is an error.
func sumSamples(r io.Reader, name string) (float64, error) {
	var total float64
	found := false
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest != "" && rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		fields := strings.Fields(rest[strings.LastIndexByte(rest, '}')+1:])
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %q: %w", name, line, err)
		}
		total += v
		found = true
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	if !found {
		return 0, fmt.Errorf("no %s in the metrics", name)
	}
	return total, nil
}

// connectFleet makes an etcd client for the fleet's keys at the default
// prefix, as sluice cluster push does.
func connectFleet(c *etcdCluster) (*clientv3.Client, fleet.Options, error) {
	o, err := fleet.OptionsFrom(c.endpoints(), "", "", "", "")
	if err != nil {
		return nil, o, err
	}
	cli, err := fleet.Connect(o)
	return cli, o, err
}
