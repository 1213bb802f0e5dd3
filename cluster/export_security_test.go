package cluster

import (
	"context"
	"encoding/json"
	"time"
)

// Test hooks of security.go.

// Ports returns the URLs of every listener the node's embedded server
// opened (clients, routes, monitoring, websocket, profiling),
// as the server reports them: nil when the node has no embedded server.
func (n *Node) Ports() []string {
	if n.srv == nil {
		return nil
	}
	p := n.srv.PortsInfo(time.Second)
	if p == nil {
		return nil
	}
	var urls []string
	for _, u := range [][]string{p.Nats, p.Cluster, p.Monitoring, p.WebSocket, p.Profile} {
		urls = append(urls, u...)
	}
	return urls
}

// Varz is the embedded server's /varz as JSON, as its monitoring port
// would serve it (a node opens none).
func (n *Node) Varz() ([]byte, error) {
	v, err := n.srv.Varz(nil)
	if err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

// MetaPeers are the servers the node's JetStream meta group knows of.
func (n *Node) MetaPeers() []string { return n.srv.JetStreamClusterPeers() }

// StartLoggingEveryRefusal starts a node that logs every refused route
// and client, as the embedded server does: the broken twin of the test
// that a refusal is logged once.
func StartLoggingEveryRefusal(ctx context.Context, o Options) (*Node, error) {
	return start(ctx, o, seams{everyRefusal: true})
}

// RoutedTo names the servers the node's embedded server has routes to.
func (n *Node) RoutedTo() []string {
	rz, err := n.srv.Routez(nil)
	if err != nil {
		return nil
	}
	var names []string
	for _, r := range rz.Routes {
		names = append(names, r.RemoteName)
	}
	return names
}
