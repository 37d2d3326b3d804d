package main

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// vineyardd's IPC protocol, as its own client speaks it (vineyard 0.24.2, src/common/util/
// protocols.cc and src/server/async/socket_server.cc upstream): each message, either way, is a
// little-endian uint64 length followed by that many bytes of JSON with a "type" field. A new
// connection must send register_request before anything else. An error reply carries a
// non-zero "code" and a "message" instead of the reply's fields.

// maxReply bounds what one reply may make the exporter allocate (vineyardd's own limit on a
// request is 256 MiB; a status reply is ~200 bytes, a listing ~280 bytes per object).
const maxReply = 64 << 20

// Status is vineyardd's instance_status reply.
type Status struct {
	InstanceID       uint64 `json:"instance_id"`
	Deployment       string `json:"deployment"`
	MemoryUsage      uint64 `json:"memory_usage"`
	MemoryLimit      uint64 `json:"memory_limit"`
	DeferredRequests uint64 `json:"deferred_requests"`
	IPCConnections   uint64 `json:"ipc_connections"`
	RPCConnections   uint64 `json:"rpc_connections"`
}

// Objects is what a metadata listing found: the objects of this instance (blobs excluded) and
// whether the listing stopped at its limit (Count then misses some).
type Objects struct {
	Count     int
	Truncated bool
}

// ReplyError is an error vineyardd answered with.
type ReplyError struct {
	Code    int
	Message string
}

func (e *ReplyError) Error() string {
	return fmt.Sprintf("vineyardd replied with error code %d: %s", e.Code, e.Message)
}

// Conn is one registered IPC connection to vineyardd. Not safe for concurrent use.
type Conn struct {
	conn        net.Conn
	Version     string // vineyardd's version, from its register reply
	InstanceID  uint64
	RPCEndpoint string // host:port vineyardd advertises for RPC ("0.0.0.0:0" without RPC)
}

// Dial connects to the socket at path and registers, all within timeout.
func Dial(path string, timeout time.Duration) (*Conn, error) {
	return dial("unix", path, timeout)
}

// DialRPC connects to vineyardd's RPC port at addr (host:port) and registers. The RPC server
// speaks the same messages as the socket, without file descriptors.
func DialRPC(addr string, timeout time.Duration) (*Conn, error) {
	return dial("tcp", addr, timeout)
}

func dial(network, addr string, timeout time.Duration) (*Conn, error) {
	c, err := net.DialTimeout(network, addr, timeout)
	if err != nil {
		return nil, err
	}
	conn := &Conn{conn: c}
	var reply struct {
		InstanceID  uint64 `json:"instance_id"`
		Version     string `json:"version"`
		RPCEndpoint string `json:"rpc_endpoint"`
	}
	// The version is the client's; vineyardd 0.24.2 only logs it.
	req := map[string]any{"type": "register_request", "version": "0.24.2"}
	if err := conn.roundTrip(req, "register_reply", &reply, timeout); err != nil {
		c.Close()
		return nil, fmt.Errorf("register: %w", err)
	}
	conn.Version, conn.InstanceID, conn.RPCEndpoint = reply.Version, reply.InstanceID, reply.RPCEndpoint
	return conn, nil
}

// Close ends the connection.
func (c *Conn) Close() error { return c.conn.Close() }

// Status asks for the instance status.
func (c *Conn) Status(timeout time.Duration) (Status, error) {
	var reply struct {
		Meta *Status `json:"meta"`
	}
	req := map[string]any{"type": "instance_status_request"}
	if err := c.roundTrip(req, "instance_status_reply", &reply, timeout); err != nil {
		return Status{}, err
	}
	if reply.Meta == nil {
		return Status{}, errors.New("instance_status_reply without meta")
	}
	return *reply.Meta, nil
}

// Objects lists up to limit metadata entries (vineyardd lists every instance's: the metadata
// is cluster-wide) and counts those of instance, blobs excluded: a put array is one object.
func (c *Conn) Objects(instance uint64, limit int, timeout time.Duration) (Objects, error) {
	var reply struct {
		Content map[string]struct {
			InstanceID *uint64 `json:"instance_id"`
			TypeName   string  `json:"typename"`
		} `json:"content"`
	}
	req := map[string]any{"type": "list_data_request", "pattern": "*", "regex": false, "limit": limit}
	if err := c.roundTrip(req, "get_data_reply", &reply, timeout); err != nil {
		return Objects{}, err
	}
	out := Objects{Truncated: len(reply.Content) >= limit}
	for _, meta := range reply.Content {
		if meta.InstanceID != nil && *meta.InstanceID == instance && !isBlob(meta.TypeName) {
			out.Count++
		}
	}
	return out, nil
}

func isBlob(typeName string) bool {
	return typeName == "vineyard::Blob" || strings.HasPrefix(typeName, "vineyard::Blob<")
}

// roundTrip sends req and decodes the reply, which must be of type want, into out.
func (c *Conn) roundTrip(req map[string]any, want string, out any, timeout time.Duration) error {
	if err := c.conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	frame := make([]byte, 8+len(body))
	binary.LittleEndian.PutUint64(frame, uint64(len(body)))
	copy(frame[8:], body)
	if _, err := c.conn.Write(frame); err != nil {
		return err
	}
	// Exactly the framed reply is read: a file descriptor vineyardd passes next travels with
	// the following byte, which a plain read would consume and close (recvFD reads it).
	var header [8]byte
	if _, err := io.ReadFull(c.conn, header[:]); err != nil {
		return err
	}
	n := binary.LittleEndian.Uint64(header[:])
	if n > maxReply {
		return fmt.Errorf("reply of %d bytes is over the %d-byte limit", n, maxReply)
	}
	reply := make([]byte, n)
	if _, err := io.ReadFull(c.conn, reply); err != nil {
		return err
	}
	var head struct {
		Type    string `json:"type"`
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(reply, &head); err != nil {
		return fmt.Errorf("reply is not JSON: %w", err)
	}
	if head.Code != 0 {
		return &ReplyError{Code: head.Code, Message: head.Message}
	}
	if head.Type != want {
		return fmt.Errorf("expected a %s, got %q", want, head.Type)
	}
	return json.Unmarshal(reply, out)
}
