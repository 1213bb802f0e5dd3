package cluster

import (
	"encoding/base64"
	"fmt"

	"github.com/gotodo/todo"
)

// List names are not valid NATS subjects or KV keys ("Bob's list", "..",
// "x*", a space): each is written in subjects and keys as the unpadded
// base64url of its UTF-8 bytes, whose alphabet (A-Z a-z 0-9 - _) is valid
// in both and which decodes back to the name exactly. A 255-byte name
// gives a 340-byte token.
var nameEncoding = base64.RawURLEncoding

func encodeName(name string) string { return nameEncoding.EncodeToString([]byte(name)) }

func decodeName(token string) (string, error) {
	b, err := nameEncoding.DecodeString(token)
	if err != nil {
		return "", fmt.Errorf("cluster: bad list token %q: %w", token, err)
	}
	return string(b), nil
}

// validName is the todo package's rule (see [todo.ErrInvalidName]): a
// node checks a name before it routes it, so that a bad name is refused
// where it arrives and never travels.
func validName(name string) error { return todo.ValidName(name) }

// Subjects and names of the JetStream assets.
const (
	listsStream   = "TODO_LISTS"    // the lists' change logs, one subject per list
	listPrefix    = "todo.l."       // + encoded name: a list's subject
	nodesBucket   = "todo_nodes"    // node name → liveness record
	ownersBucket  = "todo_owners"   // encoded list name → owner record
	rpcPrefix     = "todo.rpc."     // + encoded node name: forwarded requests
	clusterName   = "todo"          // the NATS cluster name of embedded servers
	peersFileName = "cluster-peers" // in the data directory: learned peers
)

func listSubject(name string) string { return listPrefix + encodeName(name) }
func rpcSubject(node string) string  { return rpcPrefix + encodeName(node) }
